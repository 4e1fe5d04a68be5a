#include "worker/trainer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>
#include <thread>

#include "common/node_lines.h"

namespace phalanx::worker {

using Clock = std::chrono::steady_clock;

Trainer::Trainer(const TrainerOptions& options, Client* client, const Model* model,
                 const Dataset* train, std::vector<size_t> shard, const Dataset* test,
                 std::ostream* progress)
    : options_(options),
      client_(client),
      model_(model),
      train_(train),
      shard_(std::move(shard)),
      test_(test),
      progress_(progress),
      byzantine_(options.byzantine) {
  uint64_t rows = DenseRows(model_->dense_size(), options_.dense_row_dim);
  dense_keys_.resize(rows);
  std::iota(dense_keys_.begin(), dense_keys_.end(), 0);
  dense_.assign(rows * options_.dense_row_dim, 0.0f);
  dense_grad_.assign(rows * options_.dense_row_dim, 0.0f);
}

Status Trainer::PullDense(int64_t min_version, int64_t* version) {
  PullResult r;
  PHX_RETURN_IF_ERROR(client_->Pull(kDenseTable, dense_keys_, options_.dense_row_dim, min_version,
                                    dense_.data(), &r, /*keys_unique=*/true));
  *version = r.version;
  return Status::Ok();
}

Status Trainer::PullRows(std::span<const uint64_t> keys, int64_t min_version, SparseRows* rows,
                         int64_t* version) {
  uint32_t dim = static_cast<uint32_t>(model_->embedding_dim());
  rows->keys.assign(keys.begin(), keys.end());
  rows->values.resize(keys.size() * dim);
  PullResult r;
  PHX_RETURN_IF_ERROR(client_->Pull(kEmbeddingTable, rows->keys, dim, min_version,
                                    rows->values.data(), &r, /*keys_unique=*/true));
  *version = r.version;
  return Status::Ok();
}

Result<double> Trainer::Evaluate(int64_t min_version) {
  int64_t v = 0;
  PHX_RETURN_IF_ERROR(PullDense(min_version, &v));
  SparseRows rows;
  if (model_->embedding_dim() > 0) {
    std::vector<size_t> all(test_->size());
    std::iota(all.begin(), all.end(), 0);
    std::vector<uint64_t> keys = model_->SparseKeys(*test_, all);
    PHX_RETURN_IF_ERROR(PullRows(keys, min_version, &rows, &v));
  }
  return Accuracy(*model_, *test_, dense_.data(), rows);
}

void Trainer::ApplyMomentum(const SparseRows& rows, std::vector<float>* sparse_grad) {
  const float beta = static_cast<float>(options_.momentum);
  if (dense_momentum_.empty()) dense_momentum_.assign(dense_grad_.size(), 0.0f);
  for (size_t i = 0; i < dense_grad_.size(); ++i) {
    dense_momentum_[i] = beta * dense_momentum_[i] + (1 - beta) * dense_grad_[i];
    dense_grad_[i] = dense_momentum_[i];
  }
  const size_t dim = model_->embedding_dim();
  for (size_t j = 0; j < rows.keys.size(); ++j) {
    auto& m = row_momentum_[rows.keys[j]];
    if (m.empty()) m.assign(dim, 0.0f);
    float* g = sparse_grad->data() + j * dim;
    for (size_t c = 0; c < dim; ++c) {
      m[c] = beta * m[c] + (1 - beta) * g[c];
      g[c] = m[c];
    }
  }
}

bool Trainer::FetchHonest(int64_t round, std::vector<float>* samples) {
  if (!honest_peek_) {
    auto p = HonestPeek::Create(client_->view(), client_->id(), options_.honest_timeout_ms,
                                WireLimits{});
    if (!p.ok()) {
      if (++honest_failures_ <= 3) spdlog::warn("omniscient attack: {}", p.status().ToString());
      return false;
    }
    honest_peek_ = std::move(*p);
  }
  int h = 0;
  auto r = honest_peek_->Fetch(kDenseTable, dense_keys_, options_.dense_row_dim, round, &h);
  if (!r.ok() || h < 2) {
    if (++honest_failures_ <= 3) {
      spdlog::warn("omniscient attack: no honest gradients for round {} ({}); using own estimate",
                   round, r.ok() ? "fewer than 2 honest workers" : r.status().ToString());
    }
    // A dead socket state is not worth keeping: reconnect next time.
    if (!r.ok() && r.status().code() != StatusCode::kAborted) honest_peek_.reset();
    return false;
  }
  *samples = std::move(*r);
  return true;
}

Status Trainer::Lie(const std::vector<size_t>& batch, const SparseRows& rows,
                    std::vector<float>* sparse_grad, const std::vector<size_t>& order,
                    std::mt19937_64& rng, int64_t round) {
  std::vector<float> samples;
  if (byzantine_.needs_honest() && FetchHonest(round, &samples)) {
    // The honest workers' actual gradients of this round.
  } else if (byzantine_.needs_samples()) {
    // Non-omniscient estimate of the honest gradients: this batch plus a few
    // more from the attacker's own shard, at the current parameters.
    samples = dense_grad_;
    std::vector<float> g(dense_grad_.size());
    std::vector<float> sg(sparse_grad->size());
    std::uniform_int_distribution<size_t> pick(0, order.size() - 1);
    for (int b = 1; b < byzantine_.sample_batches(); ++b) {
      std::vector<size_t> extra;
      for (size_t i = 0; i < batch.size(); ++i) extra.push_back(order[pick(rng)]);
      std::fill(g.begin(), g.end(), 0.0f);
      // Rows of keys outside this batch read as zero: the estimate covers the
      // dense part only, which is what ALIE/FOE corrupt.
      model_->LossAndGradient(*train_, extra, dense_.data(), rows, g.data(),
                              sg.empty() ? nullptr : sg.data());
      samples.insert(samples.end(), g.begin(), g.end());
    }
  }
  PHX_RETURN_IF_ERROR(byzantine_.Corrupt(dense_grad_, samples));
  byzantine_.CorruptRows(*sparse_grad);
  return Status::Ok();
}

// Issues both pushes, then waits for both: the shards work on them in parallel.
Status Trainer::PushGradients(const SparseRows& rows, const std::vector<float>& sparse_grad,
                              int64_t dense_version, int64_t sparse_version, int* errors) {
  PHX_ASSIGN_OR_RETURN(uint64_t dense_push,
                       client_->PushAsync(kDenseTable, dense_keys_, options_.dense_row_dim,
                                          dense_grad_.data(), dense_version, true,
                                          /*keys_unique=*/true));
  uint64_t sparse_push = 0;
  if (model_->embedding_dim() > 0) {
    PHX_ASSIGN_OR_RETURN(sparse_push,
                         client_->PushAsync(kEmbeddingTable, rows.keys,
                                            static_cast<uint32_t>(model_->embedding_dim()),
                                            sparse_grad.data(), sparse_version, true,
                                            /*keys_unique=*/true));
  }
  return WaitPushes(dense_push, sparse_push, errors);
}

Status Trainer::WaitPushes(uint64_t dense_push, uint64_t sparse_push, int* errors) {
  for (uint64_t id : {dense_push, sparse_push}) {
    if (id == 0) continue;
    Status s = client_->Wait(id);
    if (!s.ok()) {
      // A push for a closed round, one dropped for NaN, or one to a server
      // that died (its replacement restarts from a snapshot) is not fatal:
      // the next pull realigns this worker with the servers' version.
      if (s.code() == StatusCode::kAborted || s.code() == StatusCode::kInvalidArgument ||
          s.code() == StatusCode::kFailedPrecondition || s.code() == StatusCode::kAlreadyExists ||
          s.code() == StatusCode::kUnavailable) {
        if (++*errors <= 5) spdlog::warn("worker {}: push: {}", client_->rank(), s.ToString());
      } else {
        return s.WithContext("pushing gradients");
      }
    }
  }
  return Status::Ok();
}

Status Trainer::EvaluateAtEnd(int first_step, int64_t dense_version, double* final_accuracy) {
  if (!options_.evaluate && options_.evaluate_if_evaluator_lost && final_accuracy) {
    // The evaluator (rank 0) died and is not back: the lowest live rank
    // reports the final model instead, so a run still ends with a result.
    ClusterView v = client_->view();
    bool evaluator_alive = false;
    int lowest_live = -1;
    for (const auto& w : v.workers) {
      if (!w.alive) continue;
      if (w.rank == 0) evaluator_alive = true;
      if (lowest_live < 0 || w.rank < lowest_live) lowest_live = w.rank;
    }
    if (!evaluator_alive && lowest_live == client_->rank()) {
      spdlog::warn("worker {}: the evaluator (rank 0) is gone; evaluating the final model",
                   client_->rank());
      auto acc = Evaluate(options_.synchronous ? dense_version + 1 : 0);
      if (!acc.ok()) return acc.status().WithContext("evaluating");
      *final_accuracy = *acc;
    }
  }
  if (options_.evaluate && first_step >= options_.rounds) {
    // Joined after the others finished every round: still report the model.
    int64_t want = options_.synchronous ? dense_version + 1 : 0;
    auto acc = Evaluate(want);
    if (!acc.ok()) return acc.status().WithContext("evaluating");
    ProgressLine line;
    line.rank = client_->rank();
    line.round = options_.rounds;
    line.version = dense_version;
    line.test_accuracy = *acc;
    *progress_ << FormatProgressLine(line) << std::endl;
    if (final_accuracy) *final_accuracy = *acc;
  }
  return Status::Ok();
}

Status Trainer::Run(double* final_accuracy) {
  if (shard_.empty()) return FailedPrecondition("this worker's data shard is empty");
  const bool sparse = model_->embedding_dim() > 0;
  const uint32_t emb_dim = static_cast<uint32_t>(model_->embedding_dim());
  std::mt19937_64 rng(options_.seed * 7919 + static_cast<uint64_t>(client_->rank()));
  std::vector<size_t> order = shard_;
  std::shuffle(order.begin(), order.end(), rng);
  size_t cursor = 0;
  std::vector<size_t> batch;
  SparseRows rows;
  std::vector<float> sparse_grad;
  int64_t dense_version = -1, sparse_version = -1;
  double loss_sum = 0;
  int loss_count = 0;
  uint64_t rows_moved = 0;
  int errors = 0;
  auto start = Clock::now();
  auto last_log = start;
  uint64_t rows_at_last_log = 0;
  int first_step = 0;
  if (options_.synchronous) {
    // A worker joining a running job (a restarted rank or a new one) starts
    // at the cluster's current round with the current model.
    PHX_RETURN_IF_ERROR(PullDense(0, &dense_version).WithContext("pulling dense rows"));
    first_step = static_cast<int>(std::clamp<int64_t>(dense_version, 0, options_.rounds));
    if (first_step > 0) spdlog::info("worker {}: joining at round {}", client_->rank(), first_step);
    dense_version = first_step - 1;
  }

  for (int step = first_step; step < options_.rounds; ++step) {
    batch.clear();
    for (int i = 0; i < options_.batch_size; ++i) {
      if (cursor == order.size()) {
        std::shuffle(order.begin(), order.end(), rng);
        cursor = 0;
      }
      batch.push_back(order[cursor++]);
    }
    // Sync: wait for the round after the one we last pushed.
    int64_t want_dense = options_.synchronous ? dense_version + 1 : 0;
    PHX_RETURN_IF_ERROR(PullDense(want_dense, &dense_version).WithContext("pulling dense rows"));
    rows_moved += dense_keys_.size();
    if (sparse) {
      std::vector<uint64_t> keys = model_->SparseKeys(*train_, batch);
      int64_t want = options_.synchronous ? sparse_version + 1 : 0;
      PHX_RETURN_IF_ERROR(
          PullRows(keys, want, &rows, &sparse_version).WithContext("pulling embedding rows"));
      sparse_grad.assign(rows.keys.size() * emb_dim, 0.0f);
      rows_moved += keys.size();
    }
    std::fill(dense_grad_.begin(), dense_grad_.end(), 0.0f);
    float loss = model_->LossAndGradient(*train_, batch, dense_.data(), rows, dense_grad_.data(),
                                         sparse ? sparse_grad.data() : nullptr);
    loss_sum += loss;
    loss_count++;
    if (options_.step_delay_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(options_.step_delay_ms));
    }
    if (byzantine_.silent(step)) {
      // Never pushes. Rounds go on without it (by timeout, then without
      // waiting once it is out of the quorum), so it follows the cluster's
      // round rather than its own count, and stops when the job's last round
      // is open instead of waiting for one that never comes.
      if (options_.synchronous) {
        dense_version = std::min<int64_t>(dense_version, options_.rounds - 1);
        step = static_cast<int>(std::max<int64_t>(step, dense_version));
      }
    } else {
      if (byzantine_.active(step)) {
        PHX_RETURN_IF_ERROR(Lie(batch, rows, &sparse_grad, order, rng, dense_version));
      } else if (options_.momentum > 0) {
        ApplyMomentum(rows, &sparse_grad);
      }
      PHX_RETURN_IF_ERROR(PushGradients(rows, sparse_grad, dense_version, sparse_version, &errors));
      rows_moved += dense_keys_.size() + rows.keys.size();
    }

    bool last = step + 1 == options_.rounds;
    bool eval_now = options_.evaluate && ((step + 1) % options_.eval_every == 0 || last);
    if ((step + 1) % options_.log_every == 0 || eval_now || last) {
      auto now = Clock::now();
      double dt = std::chrono::duration<double>(now - last_log).count();
      ProgressLine line;
      line.rank = client_->rank();
      line.round = step + 1;
      line.version = dense_version;
      line.loss = loss_sum / std::max(1, loss_count);
      line.wall = std::chrono::duration<double>(now - start).count();
      line.rows_per_s = dt > 0 ? static_cast<double>(rows_moved - rows_at_last_log) / dt : 0.0;
      if (eval_now) {
        // Evaluate on the model after this round closed.
        int64_t want = options_.synchronous ? dense_version + 1 : 0;
        auto acc = Evaluate(want);
        if (!acc.ok()) return acc.status().WithContext("evaluating");
        // Re-pulled rows shift the version we read; keep the training one.
        line.test_accuracy = *acc;
        if (last && final_accuracy) *final_accuracy = *acc;
        if (options_.synchronous) dense_version = want - 1;
      }
      *progress_ << FormatProgressLine(line) << std::endl;
      loss_sum = 0;
      loss_count = 0;
      last_log = now;
      rows_at_last_log = rows_moved;
    }
  }
  return EvaluateAtEnd(first_step, dense_version, final_accuracy);
}

}  // namespace phalanx::worker
