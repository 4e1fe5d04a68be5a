#include "ps/internal/sync_round.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "aggregators/gram.h"

namespace phalanx::ps::internal {

// An exponent of all ones marks both NaN and Inf; written on the bits so the
// loop vectorises.
bool AllFinite(std::span<const float> v) {
  const uint32_t* bits = reinterpret_cast<const uint32_t*>(v.data());
  uint32_t bad = 0;
  for (size_t i = 0; i < v.size(); ++i) bad |= ((bits[i] & 0x7f800000u) == 0x7f800000u);
  return bad == 0;
}

SyncRound::SyncRound(uint32_t table_id, std::unique_ptr<EmbeddingTable> table,
                     aggregators::Aggregator* rule, ServerMetrics* metrics, int round_timeout_ms,
                     int exclude_after)
    : table_id_(table_id),
      table_(std::move(table)),
      rule_(rule),
      metrics_(metrics),
      round_timeout_ms_(round_timeout_ms),
      exclude_after_(exclude_after) {}

void SyncRound::Restore(std::unique_ptr<EmbeddingTable> table, int64_t version) {
  table_ = std::move(table);
  version_ = version;
}

int64_t SyncRound::Advance() { return ++version_; }

void SyncRound::SetVersion(int64_t v) {
  version_ = v;
  if (table_id_ == 0) metrics_->version.Set(static_cast<double>(v));
}

bool SyncRound::Push(const std::string& peer, const Message& req, bool finite, int32_t self,
                     Outbox* out) {
  const Header& h = req.header;
  if (h.flags & kFlagMoreParts) {
    out->push_back(Refuse(self, peer, h,
                          InvalidArgument("a push split into parts needs an asynchronous server; "
                                          "synchronous rounds take one push per worker")));
    return false;
  }
  if (h.round < version_) {
    metrics_->stale.Increment();
    out->push_back(
        Refuse(self, peer, h,
               Aborted("round " + std::to_string(h.round) +
                       " already closed; server is at version " + std::to_string(version_))));
    return false;
  }
  if (h.round == version_ + 1 && closing_ && !early_.count(h.sender)) {
    // The worker saw round t close on another shard first; keep its push
    // for the next round.
    early_[h.sender] = WorkerPush{req.keys, req.values, !finite};
    if (!finite) metrics_->nonfinite.Increment();
    out->push_back({peer, PushAck(self, h, h.round)});
    return false;
  }
  if (h.round > version_) {
    out->push_back(
        Refuse(self, peer, h,
               FailedPrecondition("round " + std::to_string(h.round) +
                                  " is ahead of server version " + std::to_string(version_))));
    return false;
  }
  if (pushes_.count(h.sender) || closing_) {
    out->push_back(Refuse(self, peer, h,
                          AlreadyExists("worker already pushed round " + std::to_string(h.round))));
    return false;
  }
  if (pushes_.empty()) round_started_ = Clock::now();
  pushes_[h.sender] = WorkerPush{req.keys, req.values, !finite};
  if (!finite) {
    metrics_->nonfinite.Increment();
    out->push_back(ErrorReply(
        self, peer, h,
        InvalidArgument("non-finite gradient; dropped from round " + std::to_string(h.round))));
  } else {
    metrics_->pushes.Increment();
    metrics_->rows_pushed.Increment(h.num_keys);
    out->push_back({peer, PushAck(self, h, h.round)});
  }
  return true;
}

void SyncRound::Pull(const std::string& peer, Message req, bool synchronous, int32_t self,
                     Outbox* out) {
  if (synchronous && req.header.round > version_) {
    pending_.push_back({peer, std::move(req)});
    return;
  }
  out->push_back({peer, AnswerPull(req, self)});
}

Message SyncRound::AnswerPull(const Message& req, int32_t self) {
  auto start = Clock::now();
  auto keys = req.key_span();
  const uint32_t dim = table_->dim();
  float* rows = nullptr;
  // A recycled block: a fresh multi-MB one would page-fault on every write.
  // ZeroMQ sends it zero-copy and hands it back to the pool once sent.
  Buffer values = BufferPool::Global().Uninitialized<float>(keys.size() * dim, &rows);
  table_->Lookup(keys, rows);
  Message reply =
      PullReply(self, req.header, version_, dim, std::move(values), req.header.checksum != 0);
  metrics_->pulls.Increment();
  metrics_->rows_pulled.Increment(keys.size());
  metrics_->pull_latency.Observe(SecondsSince(start));
  return reply;
}

void SyncRound::AnswerReadyPulls(int32_t self, Outbox* out) {
  std::vector<PendingPull> still;
  for (auto& p : pending_) {
    if (p.msg.header.round <= version_) {
      out->push_back({p.peer, AnswerPull(p.msg, self)});
    } else {
      still.push_back(std::move(p));
    }
  }
  pending_.swap(still);
}

bool SyncRound::ReadyToClose(const std::vector<NodeInfo>& workers, Clock::time_point now) {
  if (closing_ || pushes_.empty()) return false;
  int missing = 0;
  for (const auto& w : workers) {
    // Workers out of the quorum are not waited for (their push still counts).
    if (w.alive && !pushes_.count(w.id) && !Excluded(quorum_, w.id, exclude_after_)) missing++;
  }
  if (missing == 0) return true;
  if (now - round_started_ <= std::chrono::milliseconds(round_timeout_ms_)) return false;
  metrics_->timeouts.Increment();
  metrics_->missing.Increment(missing);
  spdlog::warn("server: table {} round {} closed by timeout without {} worker(s)", table_id_,
               version_, missing);
  return true;
}

bool SyncRound::PlanOverdue(Clock::time_point now) const {
  return closing_ && now - close_started_ > std::chrono::milliseconds(round_timeout_ms_);
}

const GramPartial& SyncRound::StartClose() {
  closing_ = true;
  close_started_ = Clock::now();
  BuildSlice();
  const int n = static_cast<int>(slice_.workers.size());
  if (!rule_->coordinate_wise()) {
    Status s = BuildExtrasAndGram(n);
    if (!s.ok()) {
      spdlog::error("server: table {} round {}: {}", table_id_, version_, s.ToString());
      partial_.finite.assign(partial_.finite.size(), 0);  // nothing usable from this shard
      partial_.gram = Eigen::MatrixXd::Zero(static_cast<Eigen::Index>(n + partial_.extra),
                                            static_cast<Eigen::Index>(n + partial_.extra));
    }
  }
  return partial_;
}

// [G]: one column per worker that pushed, zeros where a worker did not touch
// a key or its push was not finite (never aggregated; zeros keep the partial
// Gram finite).
void SyncRound::BuildSlice() {
  const uint32_t dim = table_->dim();
  Slice& sl = slice_;
  sl = Slice();
  partial_ = GramPartial();
  std::vector<const WorkerPush*> pushes;
  for (auto& [id, p] : pushes_) {
    sl.workers.push_back(id);
    pushes.push_back(&p);
    partial_.finite.push_back(p.excluded ? 0 : 1);
  }
  partial_.workers = sl.workers;
  partial_.quorum = quorum_;
  const size_t n = pushes.size();
  // Fast path: every worker pushed the same key list (dense parameters).
  bool same_keys = true;
  for (size_t i = 1; i < n && same_keys; ++i) {
    same_keys =
        pushes[i]->keys.size() == pushes[0]->keys.size() &&
        std::memcmp(pushes[i]->keys.data(), pushes[0]->keys.data(), pushes[0]->keys.size()) == 0;
  }
  if (same_keys) {
    auto k0 = pushes[0]->keys.as<uint64_t>();
    sl.keys.assign(k0.begin(), k0.end());
    sl.grads.resize(static_cast<Eigen::Index>(sl.keys.size() * dim), static_cast<Eigen::Index>(n));
    for (size_t i = 0; i < n; ++i) {
      auto col = sl.grads.col(static_cast<Eigen::Index>(i));
      if (pushes[i]->excluded) {
        col.setZero();
        continue;
      }
      auto v = pushes[i]->values.as<float>();
      col = Eigen::Map<const Eigen::VectorXf>(v.data(), static_cast<Eigen::Index>(v.size()));
    }
    return;
  }
  // Union of keys; a worker that did not touch a key contributes zeros.
  std::unordered_map<uint64_t, uint32_t> index;
  for (const auto* p : pushes) {
    for (uint64_t k : p->keys.as<uint64_t>()) {
      if (index.emplace(k, static_cast<uint32_t>(sl.keys.size())).second) sl.keys.push_back(k);
    }
  }
  sl.grads = Eigen::MatrixXf::Zero(static_cast<Eigen::Index>(sl.keys.size() * dim),
                                   static_cast<Eigen::Index>(n));
  for (size_t i = 0; i < n; ++i) {
    if (pushes[i]->excluded) continue;
    auto k = pushes[i]->keys.as<uint64_t>();
    auto v = pushes[i]->values.as<float>();
    for (size_t j = 0; j < k.size(); ++j) {
      Eigen::Index row = static_cast<Eigen::Index>(static_cast<size_t>(index[k[j]]) * dim);
      sl.grads.col(static_cast<Eigen::Index>(i)).segment(row, dim) +=
          Eigen::Map<const Eigen::VectorXf>(v.data() + j * dim, dim);
    }
  }
}

// E_s: the rule's extra columns for this shard's coordinates. Coordinate
// (key, c) is global row key*dim + c, the same on every shard, so seeded
// extras agree; centered clipping's centre is this shard's stored slice of
// the previous aggregate.
Status SyncRound::BuildExtrasAndGram(int n) {
  const uint32_t dim = table_->dim();
  const int k = rule_->num_extra_columns(n);
  partial_.extra = k;
  Slice& sl = slice_;
  sl.extras.resize(sl.grads.rows(), k);
  if (k > 0) {
    for (size_t j = 0; j < sl.keys.size(); ++j) {
      Eigen::VectorXd prev = Eigen::VectorXd::Zero(dim);
      if (auto it = previous_.find(sl.keys[j]); it != previous_.end()) prev = it->second;
      int64_t row = static_cast<int64_t>(sl.keys[j] * static_cast<uint64_t>(dim));
      PHX_ASSIGN_OR_RETURN(Eigen::MatrixXd e, rule_->ExtraColumns(n, row, dim, prev));
      sl.extras.block(static_cast<Eigen::Index>(j * dim), 0, dim, k) = e;
    }
  }
  PHX_ASSIGN_OR_RETURN(partial_.gram, aggregators::PartialGram(sl.grads, sl.extras));
  return Status::Ok();
}

bool SyncRound::FinishClose(int64_t round, const RoundPlan& plan, int32_t self, Outbox* out) {
  if (!closing_ || round != version_) return false;  // stale or duplicate plan
  auto start = Clock::now();
  std::string failure = plan.error;
  if (failure.empty()) {
    if (Status s = ApplyPlan(plan); !s.ok()) failure = "not applied: " + s.ToString();
  }
  if (failure.empty()) {
    rounds_updated_++;
    if (failing_) {
      spdlog::warn("server: table {} round {} updated the model again", table_id_, round);
    }
    failing_ = false;
  } else {
    metrics_->failed_rounds.Increment();
    rounds_failed_++;
    // Said once per streak, not once per round: a rule that cannot run with
    // the live workers fails every round until they come back.
    if (!failing_ || failure != last_failure_) {
      spdlog::error(
          "server: table {} round {} closed without update ({} worker(s) in the plan): {}; "
          "further rounds that fail the same way are not logged",
          table_id_, round, plan.workers.size(), failure);
    }
    failing_ = true;
    last_failure_ = failure;
  }
  // Workers that pushed here but are not in the plan, for any reason
  // (non-finite here or elsewhere, missing from another shard).
  int dropped_from_plan = 0;
  for (int32_t id : slice_.workers) {
    if (!std::binary_search(plan.workers.begin(), plan.workers.end(), id)) dropped_from_plan++;
  }
  metrics_->dropped_workers.Increment(dropped_from_plan);
  quorum_ = plan.quorum;
  metrics_->round_seconds.Observe(std::chrono::duration<double>(start - round_started_).count());
  metrics_->apply_seconds.Observe(SecondsSince(start));
  metrics_->rounds.Increment();
  pushes_.clear();
  pushes_.swap(early_);  // pushes for the next round that arrived while closing
  if (!pushes_.empty()) round_started_ = Clock::now();
  closing_ = false;
  slice_ = Slice();
  SetVersion(version_ + 1);
  AnswerReadyPulls(self, out);
  return true;
}

Status SyncRound::ApplyPlan(const RoundPlan& plan) {
  Slice& sl = slice_;
  if (sl.keys.empty()) return Status::Ok();
  // Columns of the plan's workers in this shard's slice.
  std::vector<int> cols = ColumnsOf(sl.workers, plan.workers, 0);
  Eigen::MatrixXf used(sl.grads.rows(), static_cast<Eigen::Index>(cols.size()));
  for (size_t i = 0; i < cols.size(); ++i) {
    if (cols[i] < 0) return Internal("plan names a worker this shard did not see");
    used.col(static_cast<Eigen::Index>(i)) = sl.grads.col(cols[i]);
  }
  Eigen::VectorXd agg;
  if (plan.local) {
    PHX_ASSIGN_OR_RETURN(agg, rule_->Aggregate(used.cast<double>()));
  } else {
    PHX_ASSIGN_OR_RETURN(agg, aggregators::ApplyGramPlan(plan.plan, used, sl.extras));
  }
  if (!agg.allFinite()) return Internal("aggregate is not finite");
  const uint32_t dim = table_->dim();
  if (sl.extras.cols() > 0) {
    for (size_t j = 0; j < sl.keys.size(); ++j) {
      previous_[sl.keys[j]] = agg.segment(static_cast<Eigen::Index>(j * dim), dim);
    }
  }
  std::vector<float> update(static_cast<size_t>(agg.size()));
  Eigen::Map<Eigen::VectorXf>(update.data(), agg.size()) = agg.cast<float>();
  table_->Apply(sl.keys, update.data());
  return Status::Ok();
}

void SyncRound::JumpTo(int64_t round, int32_t self, Outbox* out) {
  pushes_.clear();
  early_.clear();
  SetVersion(round);
  AnswerReadyPulls(self, out);
}

}  // namespace phalanx::ps::internal
