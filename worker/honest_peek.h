#pragma once
// HonestPeek: the omniscient attacker's view of a synchronous round. It asks
// every server for the gradients the honest workers pushed for round t (a
// kHonestPeek message, answered by a kHonestPeekResponse) and assembles them into one d x h
// matrix in the caller's key order. Servers answer only when the experiment
// enabled it (byzantine.omniscient), only to workers configured as
// Byzantine, and only once every live honest worker pushed round t; so the
// colluders see exactly what the aggregator will see.
//
// Threading: owned by the worker's training thread; it has its own DEALER
// sockets (one per server), separate from the Client's.

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/control.h"
#include "common/status.h"
#include "common/transport.h"

namespace phalanx::worker {

class HonestPeek {
 public:
  // sender: this worker's node id (servers check it is a Byzantine worker).
  static Result<std::unique_ptr<HonestPeek>> Create(const ClusterView& view, int32_t sender,
                                                    int timeout_ms, const WireLimits& limits);

  // Honest gradients of `round` for `keys` (dim floats each) of `table`:
  // column j = honest worker j (ascending node id), keys.size()*dim rows.
  // Aborted when the round closed before the honest pushes could be read
  // (the caller falls back to its own estimate).
  Result<std::vector<float>> Fetch(uint32_t table, std::span<const uint64_t> keys, uint32_t dim,
                                   int64_t round, int* honest_workers);

 private:
  HonestPeek() = default;
  ClusterView view_;
  int32_t sender_ = -1;
  int timeout_ms_ = 0;
  uint64_t next_request_ = 1;
  std::vector<std::unique_ptr<Socket>> servers_;  // by server rank
};

}  // namespace phalanx::worker
