#pragma once
// What a server says about its round quorums: the coordinator's exclusion and
// rejoin decisions (logged once in the cluster, counted, handed to the
// launcher's hook) and, per table, whether the quorum it waits for still fits
// the rule (said once per change). Owned by the request-loop thread.

#include <cstdint>
#include <functional>
#include <vector>

#include "aggregators/aggregator.h"
#include "common/control.h"
#include "ps/internal/round_coordinator.h"
#include "ps/internal/server_metrics.h"
#include "ps/internal/sync_round.h"
#include "ps/server.h"

namespace phalanx::ps::internal {

class QuorumWatch {
 public:
  QuorumWatch(const aggregators::AggregatorOptions& rule, ServerMetrics* metrics,
              std::function<void(const QuorumEvent&)> hook)
      : rule_(rule), metrics_(metrics), hook_(std::move(hook)) {}

  void SetTables(size_t n) {
    checked_quorum_.assign(n, -1);
    rule_fits_quorum_.assign(n, true);
  }
  // The coordinator's decisions since the last call (TakeQuorumChanges).
  void Report(const std::vector<RoundQuorumChange>& changes);
  // The quorum `t` waits for (live workers minus the excluded) against what
  // the rule needs. Rounds that cannot update say so themselves (SyncRound),
  // and a job none of whose rounds updated exits non-zero.
  void Check(const SyncRound& t, const std::vector<NodeInfo>& workers);
  int64_t exclusions() const { return exclusions_; }  // decided by this server

 private:
  const aggregators::AggregatorOptions rule_;
  ServerMetrics* metrics_;
  std::function<void(const QuorumEvent&)> hook_;
  int64_t exclusions_ = 0;
  std::vector<int> checked_quorum_;     // last quorum size checked, per table
  std::vector<bool> rule_fits_quorum_;  // and whether the rule ran on it
};

// Worker ids out of a table's quorum.
std::vector<int32_t> ExcludedWorkers(const SyncRound& t);

}  // namespace phalanx::ps::internal
