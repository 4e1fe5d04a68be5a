#include "worker/federated_client.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>
#include <thread>

#include "common/node_lines.h"
#include "worker/trainer.h"

namespace phalanx::worker {

using Clock = std::chrono::steady_clock;

struct FederatedWorker::Hosted {
  int64_t id = 0;
  double tau = 0;  // virtual time units
  std::vector<uint32_t> idx;
  std::vector<float> update;  // Δ (or θ⁺) waiting for its push
  int64_t base_version = 0;
  int64_t trainings = 0;
  Clock::time_point due;
  bool waiting = false;    // pushed; waiting for the servers' version to include it
  int64_t visible_at = 0;  // the version that includes its update
};

FederatedWorker::FederatedWorker(const FederatedClientOptions& options, Client* client,
                                 const Model* model, const Dataset* train,
                                 const Partition* partition, const Dataset* test,
                                 std::ostream* progress)
    : options_(options),
      client_(client),
      model_(model),
      train_(train),
      partition_(partition),
      test_(test),
      progress_(progress) {
  const uint64_t rows = DenseRows(model_->dense_size(), options_.dense_row_dim);
  keys_.resize(rows);
  std::iota(keys_.begin(), keys_.end(), 0);
  theta_.assign(rows * options_.dense_row_dim, 0.0f);
  grad_.assign(theta_.size(), 0.0f);
  eval_.assign(theta_.size(), 0.0f);
}

Result<int64_t> FederatedWorker::PullModel(int64_t client, float* out) {
  PullResult r;
  PHX_RETURN_IF_ERROR(client_->Pull(kDenseTable, keys_, options_.dense_row_dim,
                                    /*min_version=*/0, out, &r, /*keys_unique=*/true,
                                    static_cast<int32_t>(client)));
  return r.version;
}

// Pull tagged with the client (the servers time its round trip from here),
// then K local SGD steps of fresh batches drawn with replacement from its
// shard, as the simulator's clients do.
Status FederatedWorker::Start(Hosted& h) {
  const auto started = Clock::now();
  PHX_ASSIGN_OR_RETURN(h.base_version, PullModel(h.id, theta_.data()));
  std::mt19937_64 rng(options_.seed * 1000003 + static_cast<uint64_t>(h.id) * 7919 +
                      static_cast<uint64_t>(h.trainings));
  std::uniform_int_distribution<size_t> pick(0, h.idx.size() - 1);
  std::vector<size_t> batch(static_cast<size_t>(options_.batch_size));
  h.update.assign(theta_.begin(), theta_.end());  // θ, becomes θ⁺ below
  const float lr = static_cast<float>(options_.learning_rate);
  SparseRows none;
  const size_t d = model_->dense_size();
  for (int k = 0; k < options_.local_steps; ++k) {
    for (auto& b : batch) b = h.idx[pick(rng)];
    std::fill(grad_.begin(), grad_.end(), 0.0f);
    const float loss =
        model_->LossAndGradient(*train_, batch, h.update.data(), none, grad_.data(), nullptr);
    if (k == 0) {
      loss_sum_ += loss;
      loss_count_++;
    }
    for (size_t j = 0; j < d; ++j) h.update[j] -= lr * grad_[j];
  }
  if (!options_.send_model) {
    for (size_t j = 0; j < h.update.size(); ++j) h.update[j] -= theta_[j];
  }
  h.trainings++;
  h.waiting = false;
  h.due = started + std::chrono::duration_cast<Clock::duration>(
                        std::chrono::duration<double>(h.tau * options_.time_unit_s));
  return Status::Ok();
}

Result<double> FederatedWorker::Evaluate(int64_t* version) {
  PHX_ASSIGN_OR_RETURN(*version, PullModel(-1, eval_.data()));
  SparseRows none;
  return Accuracy(*model_, *test_, eval_.data(), none);
}

Status FederatedWorker::Run(double* final_accuracy) {
  const auto& o = options_;
  std::vector<Hosted> hosted;
  for (int64_t c = o.rank; c < o.clients; c += o.workers) {
    Hosted h;
    h.id = c;
    h.tau = o.fastest_percent < 0 || o.clients <= 1
                ? 0.0
                : 1.0 - (static_cast<double>(c) / static_cast<double>(o.clients - 1)) *
                            o.fastest_percent / 100.0;
    partition_->ClientIndices(c, &h.idx);
    if (h.idx.empty()) return FailedPrecondition("client " + std::to_string(c) + " has no data");
    hosted.push_back(std::move(h));
  }
  if (hosted.empty()) return FailedPrecondition("this worker hosts no client");
  spdlog::info("federated worker {}: hosting {} of {} clients", o.rank, hosted.size(), o.clients);
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(o.duration_s));
  const auto eval_every =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.eval_every_s));
  auto next_eval = start;
  int64_t first_version = -1, pushed = 0, refused = 0;
  double stale_sum = 0;  // this worker's accepted updates since the last line
  int64_t stale_n = 0;
  double accuracy = -1;
  auto report = [&](bool last) -> Status {
    int64_t v = 0;
    PHX_ASSIGN_OR_RETURN(accuracy, Evaluate(&v));
    if (first_version < 0) first_version = v;
    ProgressLine line;
    line.rank = o.rank;
    line.round = v - first_version;
    line.version = v;
    line.wall = std::chrono::duration<double>(Clock::now() - start).count();
    line.loss = loss_count_ > 0 ? loss_sum_ / static_cast<double>(loss_count_) : 0.0;
    line.test_accuracy = accuracy;
    line.updates = pushed;
    if (stale_n > 0) line.staleness_mean = stale_sum / static_cast<double>(stale_n);
    stale_sum = 0;
    stale_n = 0;
    line.refused = refused;
    line.final = last;
    *progress_ << FormatProgressLine(line) << std::endl;
    loss_sum_ = 0;
    loss_count_ = 0;
    return Status::Ok();
  };
  for (auto& h : hosted)
    PHX_RETURN_IF_ERROR(Start(h).WithContext("client " + std::to_string(h.id)));
  while (Clock::now() < end) {
    if (o.evaluate && Clock::now() >= next_eval) {
      PHX_RETURN_IF_ERROR(report(false).WithContext("evaluating"));
      next_eval += eval_every;
    }
    // Clients waiting for the trigger: one untagged pull tells who may restart.
    bool any_waiting = false;
    for (auto& h : hosted) any_waiting |= h.waiting;
    if (any_waiting) {
      PHX_ASSIGN_OR_RETURN(int64_t v, PullModel(-1, eval_.data()));
      for (auto& h : hosted) {
        if (h.waiting && v >= h.visible_at) PHX_RETURN_IF_ERROR(Start(h));
      }
    }
    Hosted* next = nullptr;
    for (auto& h : hosted) {
      if (!h.waiting && (!next || h.due < next->due)) next = &h;
    }
    auto wake = std::min(end, o.evaluate ? next_eval : end);
    if (next) wake = std::min(wake, next->due);
    if (any_waiting) wake = std::min(wake, Clock::now() + std::chrono::milliseconds(5));
    if (wake > Clock::now()) std::this_thread::sleep_until(wake);
    if (!next || Clock::now() < next->due) continue;
    Hosted& h = *next;
    PullResult ack;
    Status s;
    auto id =
        client_->PushAsync(kDenseTable, keys_, o.dense_row_dim, h.update.data(), h.base_version,
                           /*all_servers=*/false, /*keys_unique=*/true, static_cast<int32_t>(h.id));
    s = id.ok() ? client_->Wait(*id, &ack) : id.status();
    if (s.ok()) {
      pushed++;
      // Staleness as the servers saw it: the ack's version is one past the
      // version the update met (min over shards).
      stale_sum += static_cast<double>(std::max<int64_t>(0, ack.version - 1 - h.base_version));
      stale_n++;
    } else if (s.code() == StatusCode::kAborted || s.code() == StatusCode::kInvalidArgument) {
      // Too stale or non-finite: the servers dropped it (and count it).
      if (++refused <= 5) spdlog::warn("client {}: update refused: {}", h.id, s.ToString());
    } else {
      return s.WithContext("client " + std::to_string(h.id) + " pushing its update");
    }
    if (o.wait_for_trigger && s.ok()) {
      // The ack's version is the one that includes this update (the largest
      // over the shards would be exact; the smallest errs towards waiting less).
      h.waiting = true;
      h.visible_at = ack.version;
    } else {
      PHX_RETURN_IF_ERROR(Start(h).WithContext("client " + std::to_string(h.id)));
    }
  }
  if (o.evaluate) PHX_RETURN_IF_ERROR(report(true).WithContext("evaluating"));
  if (final_accuracy) *final_accuracy = accuracy;
  spdlog::info("federated worker {}: {} updates pushed, {} refused", o.rank, pushed, refused);
  return Status::Ok();
}

}  // namespace phalanx::worker
