#include "ps/internal/quorum_watch.h"

#include <spdlog/spdlog.h>

namespace phalanx::ps::internal {

void QuorumWatch::Report(const std::vector<RoundQuorumChange>& changes) {
  for (const auto& c : changes) {
    const QuorumEvent e{c.table,           c.round,         c.change.worker, c.change.rank,
                        c.change.excluded, c.change.missed, c.quorum};
    if (e.excluded) {
      metrics_->quorum_exclusions.Increment();
      spdlog::warn(
          "server: table {} round {}: worker {} (id {}) missed {} consecutive rounds and leaves "
          "the round quorum ({} worker(s) left) until it pushes again",
          e.table, e.round, e.worker_rank, e.worker, e.missed, e.quorum);
    } else {
      metrics_->quorum_rejoins.Increment();
      spdlog::info(
          "server: table {} round {}: worker {} (id {}) pushed after {} missed rounds "
          "and rejoins the round quorum ({} worker(s))",
          e.table, e.round, e.worker_rank, e.worker, e.missed, e.quorum);
    }
    exclusions_ += e.excluded ? 1 : 0;
    if (hook_) hook_(e);
  }
}

void QuorumWatch::Check(const SyncRound& t, const std::vector<NodeInfo>& workers) {
  const uint32_t table = t.table_id();
  if (table >= checked_quorum_.size()) return;
  const int q = t.QuorumSize(workers);
  if (table == 0) metrics_->quorum_size.Set(q);
  if (q == checked_quorum_[table]) return;
  const bool was_ok = rule_fits_quorum_[table];
  checked_quorum_[table] = q;
  Status s = aggregators::CheckRuleCanRun(rule_, q);
  rule_fits_quorum_[table] = s.ok();
  if (table == 0) metrics_->quorum_below_rule.Set(s.ok() ? 0 : 1);
  if (!s.ok() && was_ok) {
    spdlog::error(
        "server: table {}: the round quorum of {} worker(s) is below what the rule "
        "needs ({}); rounds with only its pushes cannot update the model",
        table, q, s.message());
  } else if (s.ok() && !was_ok) {
    spdlog::warn("server: table {}: the round quorum of {} worker(s) fits the rule again", table,
                 q);
  }
}

std::vector<int32_t> ExcludedWorkers(const SyncRound& t) {
  std::vector<int32_t> ids;
  for (const auto& [id, missed] : t.quorum()) {
    if (Excluded(t.quorum(), id, t.exclude_after())) ids.push_back(id);
  }
  return ids;
}

}  // namespace phalanx::ps::internal
