#pragma once
// The two-phase round protocol between shards (docs/architecture.md, "One
// synchronous round"). Phase 1: every shard sends the round coordinator a
// GramPartial: which workers pushed, whether each worker's slice was finite,
// and (for rules that are not coordinate-wise) the float64 partial Gram
// matrix of its slice [G_s | E_s]. Phase 2: the coordinator picks the workers
// every shard can use (pushed everywhere, finite everywhere), sums the
// matching blocks of the partial Grams into the exact global Gram matrix, runs
// the rule on it, and sends back a RoundPlan that each shard applies to its
// own slice. Pure functions, no I/O; thread-compatible.

#include <Eigen/Dense>
#include <cstdint>
#include <string>
#include <vector>

#include "aggregators/aggregator.h"
#include "common/status.h"
#include "ps/internal/quorum.h"

namespace phalanx::ps::internal {

struct GramPartial {
  std::vector<int32_t> workers;  // ascending worker ids with a push this round
  std::vector<uint8_t> finite;   // per worker: 1 if its slice had no NaN/Inf
  int32_t extra = 0;             // extra columns k appended after the workers
  Eigen::MatrixXd gram;          // (n+k) x (n+k); empty for coordinate-wise rules
  QuorumState quorum;            // the shard's quorum state (from the last plan it applied)
};

struct RoundPlan {
  std::vector<int32_t> workers;  // the workers aggregated, in column order
  bool local = false;            // coordinate-wise: each shard runs the rule itself
  aggregators::GramPlan plan;    // when !local
  std::string error;             // non-empty: the round is closed without an update
  QuorumState quorum;            // the quorum state after this round (ps/internal/quorum.h)
};

std::string EncodePartial(const GramPartial& p);
Result<GramPartial> DecodePartial(const std::string& bytes);
std::string EncodePlan(const RoundPlan& p);
Result<RoundPlan> DecodePlan(const std::string& bytes);

// Combines the partials of every live shard into the round's plan.
RoundPlan CombinePartials(aggregators::Aggregator& rule, const std::vector<GramPartial>& partials);

// Column indices of `workers` within a partial's worker list followed by its
// k extra columns; -1 entries mean a worker is missing from the partial.
std::vector<int> ColumnsOf(const std::vector<int32_t>& partial_workers,
                           const std::vector<int32_t>& workers, int extra);

}  // namespace phalanx::ps::internal
