#pragma once
// The round quorum of synchronous mode: which live workers a round waits for.
// A worker that missed `k` consecutive rounds (a round closed without its
// push on some shard, i.e. by timeout) leaves the quorum, so later rounds
// close as soon as every quorum member pushed; it rejoins when it pushes
// again (to any shard; that push counts in its round). k = 0 never excludes.
//
// Shards must agree on the quorum, as they agree on a round's inputs: the
// round coordinator computes the next state from the round's partials
// (NextQuorum) and sends it in the plan; every shard adopts the plan's state,
// and each partial carries its shard's state so that any coordinator (a new
// one after a failure too) starts from the cluster's. Pure functions, no I/O;
// thread-compatible.

#include <cstdint>
#include <map>
#include <vector>

#include "common/control.h"

namespace phalanx::ps::internal {

struct GramPartial;

// Consecutive rounds missed, by worker id; only workers with at least one.
using QuorumState = std::map<int32_t, int32_t>;

// A change the coordinator saw while combining a round.
struct QuorumChange {
  int32_t worker = -1;    // node id
  int32_t rank = -1;      // worker rank
  bool excluded = false;  // true: left the quorum; false: rejoined
  int32_t missed = 0;     // consecutive rounds missed (at exclusion: k)
};

// Whether `worker` is out of the quorum in `state` (never when k <= 0).
inline bool Excluded(const QuorumState& state, int32_t worker, int k) {
  if (k <= 0) return false;
  auto it = state.find(worker);
  return it != state.end() && it->second >= k;
}

// Live workers in `workers` that are in the quorum.
int QuorumSize(const QuorumState& state, const std::vector<NodeInfo>& workers, int k);

// The state after a round whose shard partials are `partials`, for the live
// workers of `workers`: a quorum member missing from any partial missed the
// round; an excluded worker present in any partial rejoins. Workers no longer
// live are forgotten. Changes are appended to `changes` in worker id order.
QuorumState NextQuorum(const QuorumState& previous, const std::vector<GramPartial>& partials,
                       const std::vector<NodeInfo>& workers, int k,
                       std::vector<QuorumChange>* changes);

}  // namespace phalanx::ps::internal
