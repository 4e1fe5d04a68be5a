#include "worker/internal/key_router.h"

namespace phalanx::worker::internal {
namespace {

constexpr size_t kPrefetchAhead = 16;

}  // namespace

bool KeyRouter::Dedup(std::span<const uint64_t> keys) {
  const size_t n = keys.size();
  index.Reset(n);
  unique_of.resize(n);
  uint32_t next = 0;
  for (size_t i = 0; i < n; ++i) {
    if (i + kPrefetchAhead < n) index.Prefetch(keys[i + kPrefetchAhead]);
    bool fresh;
    unique_of[i] = index.Insert(keys[i], next, &fresh);
    next += fresh ? 1 : 0;
  }
  if (next == n) return false;
  unique_keys.resize(next);
  for (size_t i = 0; i < n; ++i) unique_keys[unique_of[i]] = keys[i];
  return true;
}

int KeyRouter::Route(std::span<const uint64_t> keys, const ClusterView& view, size_t ns) {
  shard_count.assign(ns, 0);
  if (ns == 1) {
    shard_count[0] = keys.size();
    return 0;
  }
  owner.resize(keys.size());
  row_in_shard.resize(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    const int s = view.slot_owner[SlotOfKey(keys[i], view.num_slots)];
    owner[i] = s;
    row_in_shard[i] = static_cast<uint32_t>(shard_count[s]++);
  }
  for (size_t s = 0; s < ns; ++s) {
    if (shard_count[s] == keys.size()) return static_cast<int>(s);
  }
  return -1;
}

}  // namespace phalanx::worker::internal
