#include "ps/internal/quorum.h"

#include <algorithm>

#include "ps/internal/coordination.h"

namespace phalanx::ps::internal {

int QuorumSize(const QuorumState& state, const std::vector<NodeInfo>& workers, int k) {
  int n = 0;
  for (const auto& w : workers) {
    if (w.alive && !Excluded(state, w.id, k)) n++;
  }
  return n;
}

QuorumState NextQuorum(const QuorumState& previous, const std::vector<GramPartial>& partials,
                       const std::vector<NodeInfo>& workers, int k,
                       std::vector<QuorumChange>* changes) {
  if (k <= 0) return {};
  if (partials.empty()) return previous;
  QuorumState next;
  auto pushed_to = [&](int32_t id) {
    int n = 0;
    for (const auto& p : partials) {
      n += std::binary_search(p.workers.begin(), p.workers.end(), id) ? 1 : 0;
    }
    return n;
  };
  std::vector<NodeInfo> live;
  for (const auto& w : workers) {
    if (w.alive) live.push_back(w);
  }
  std::sort(live.begin(), live.end(),
            [](const NodeInfo& a, const NodeInfo& b) { return a.id < b.id; });
  for (const auto& w : live) {
    auto it = previous.find(w.id);
    const int32_t missed = it == previous.end() ? 0 : it->second;
    const int shards = pushed_to(w.id);
    if (missed >= k) {
      // Out of the quorum: any push brings it back; its count goes on otherwise.
      if (shards > 0) {
        changes->push_back({w.id, w.rank, false, missed});
      } else {
        next[w.id] = missed + 1;
      }
      continue;
    }
    if (shards == static_cast<int>(partials.size())) continue;  // pushed everywhere
    next[w.id] = missed + 1;
    if (missed + 1 == k) changes->push_back({w.id, w.rank, true, k});
  }
  return next;
}

}  // namespace phalanx::ps::internal
