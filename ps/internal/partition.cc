#include "ps/internal/partition.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace phalanx::ps::internal {
namespace {

constexpr size_t kMinSlots = 16;
[[noreturn]] void OutOfMemory(const char* what, size_t bytes) {
  std::fprintf(stderr, "phalanx::ps: cannot map %zu bytes for the embedding %s\n", bytes, what);
  std::abort();
}

}  // namespace

Partition::Partition(size_t weight_floats, size_t state_floats, size_t expected_rows)
    : weight_floats_(weight_floats),
      state_floats_(state_floats),
      weight_bytes_(weight_floats * sizeof(float)),
      state_bytes_(state_floats * sizeof(float)) {
  const auto slots = static_cast<size_t>(std::ceil(static_cast<double>(expected_rows) / kMaxLoad));
  Rehash(std::max(slots + 1, kMinSlots));
  const size_t rows = std::max<size_t>(expected_rows, 1);
  if (!weights_.Reserve(rows * weight_bytes_)) OutOfMemory("row slab", rows * weight_bytes_);
  if (state_bytes_ != 0 && !state_.Reserve(rows * state_bytes_)) {
    OutOfMemory("optimizer state slab", rows * state_bytes_);
  }
}

void Partition::GrowSlabs() {
  // Doubling the reservation costs only address space: pages are backed when
  // a row is first written, and mremap moves no bytes.
  const size_t want = std::max(weights_.capacity() * 2, (rows_ + 1) * weight_bytes_);
  if (!weights_.Reserve(want)) OutOfMemory("row slab", want);
  if (state_bytes_ != 0) {
    const size_t want_state = want / weight_bytes_ * state_bytes_;
    if (!state_.Reserve(want_state)) OutOfMemory("optimizer state slab", want_state);
  }
}

void Partition::TooManyRows() {
  std::fprintf(stderr, "phalanx::ps: a table partition exceeds %zu rows\n", kMaxRows);
  std::abort();
}

void Partition::GrowIndex() {
  const auto slots = static_cast<size_t>(std::ceil(static_cast<double>(rows_ + 1) / kGrowLoad));
  Rehash(std::max(slots, buckets_ * kSlotsPerBucket + 1));
}

void Partition::Rehash(size_t min_slots) {
  const size_t min_buckets = (min_slots + kSlotsPerBucket - 1) / kSlotsPerBucket;
  MappedRegion fresh;
  if (!fresh.Reserve(min_buckets * sizeof(Bucket))) {
    OutOfMemory("index", min_buckets * sizeof(Bucket));
  }
  // Page rounding leaves room for more buckets at no cost; use them.
  const size_t num_buckets = fresh.capacity() / sizeof(Bucket);
  Bucket* dst = reinterpret_cast<Bucket*>(fresh.data());

  // Batched and prefetched like the lookups: each insertion into the new
  // index is a cache miss, so keep kAhead of them in flight.
  constexpr size_t kAhead = 16;
  struct Pending {
    uint64_t key;
    uint32_t row;
    size_t home;
  };
  Pending ring[kAhead];
  size_t head = 0;
  size_t count = 0;
  auto place = [&](const Pending& p) {
    Bucket* b = dst + p.home;
    while (b->count == kSlotsPerBucket) b = b + 1 == dst + num_buckets ? dst : b + 1;
    b->Add(p.key, p.row);
  };
  const Bucket* src = buckets();
  for (size_t i = 0; i < buckets_; ++i) {
    for (uint32_t k = 0; k < src[i].count; ++k) {
      if (count == kAhead) {
        place(ring[head]);
        head = (head + 1) % kAhead;
        --count;
      }
      Pending p{src[i].keys[k], src[i].rows[k], Home(HashKey(src[i].keys[k]), num_buckets)};
      __builtin_prefetch(dst + p.home, 1);
      ring[(head + count) % kAhead] = p;
      ++count;
    }
  }
  for (; count > 0; --count, head = (head + 1) % kAhead) place(ring[head]);

  index_ = std::move(fresh);
  buckets_ = num_buckets;
  const size_t capacity = num_buckets * kSlotsPerBucket;
  grow_at_ = std::min(static_cast<size_t>(static_cast<double>(capacity) * kMaxLoad), capacity - 1);
}

}  // namespace phalanx::ps::internal
