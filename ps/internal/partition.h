#pragma once
// Partition: one share-nothing slice of an embedding table.

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "ps/internal/mapped_region.h"

namespace phalanx::ps::internal {

// Murmur3's 64-bit finalizer. It is a bijection, so distinct keys keep
// distinct hashes (collisions only cost probes, never correctness). The low
// bits pick the partition and the high bits the home slot (via fastrange),
// which keeps the two choices independent.
inline uint64_t HashKey(uint64_t key) {
  key ^= key >> 33;
  key *= 0xFF51AFD7ED558CCDULL;
  key ^= key >> 33;
  key *= 0xC4CEB9FE1A85EC53ULL;
  key ^= key >> 33;
  return key;
}

// Partition maps uint64 keys to rows: `weight_floats` weights and
// `state_floats` of optimizer state per row, kept in two slabs (weights of row
// r at r * weight_floats in one, its state in the other), so that a pull reads
// a dense array of weights (one line per 16-float row) rather than picking
// them out of 196-byte Adam rows, two lines each. The index is an
// open-addressing table of 64-byte buckets, each one cache line holding up to
// five keys, their row ids and a count (slots fill from the front). A key
// lives in the first bucket with room from its home bucket on (linear
// probing over buckets), so a probe reads one line unless its home bucket
// overflowed: at the index's highest load (80%) about one key in ten spills
// into the next bucket. A probe compares the key with all five slots at once
// and picks the match from a bit mask: no branch depends on where in the
// bucket the key sits, because a mispredicted branch in the probe discards the
// prefetches already issued for the keys behind it (a loop over 12-byte slots
// measured 24 ns per key on a table that fits in cache). Rows are appended to
// the slabs and never move: growth rebuilds only the index and extends the
// slabs with mremap, so row ids stay valid and rows are written once. The index
// grows when it is 80% full to a size that makes it 55% full, keeping it at
// 16-23 B per row, so memory per row stays below row bytes + 23 B (+ page
// rounding).
//
// Thread-safety: none. A table gives each partition to at most one thread at
// a time; partitions share nothing, so different partitions may run on
// different threads. Allocation failure aborts the process (as operator new
// would), because the table's hot-path API has no error channel.
class Partition {
 public:
  static constexpr uint32_t kSlotsPerBucket = 5;
  struct alignas(64) Bucket {
    uint64_t keys[kSlotsPerBucket];
    uint32_t rows[kSlotsPerBucket];
    uint32_t count;  // slots in use: keys[0..count)

    // Bit k set when keys[k] == key and slot k is in use.
    uint32_t Match(uint64_t key) const {
#if defined(__AVX512F__)
      const __m512i line = _mm512_load_si512(this);
      const uint32_t eq =
          _mm512_mask_cmpeq_epu64_mask(0x1F, line, _mm512_set1_epi64(static_cast<long long>(key)));
#else
      uint32_t eq = 0;
      for (uint32_t k = 0; k < kSlotsPerBucket; ++k)
        eq |= static_cast<uint32_t>(keys[k] == key) << k;
#endif
      return eq & ((1u << count) - 1);
    }
    // Appends key -> row; the caller checked count < kSlotsPerBucket.
    void Add(uint64_t key, uint32_t row) {
      keys[count] = key;
      rows[count] = row;
      ++count;
    }
  };
  static_assert(sizeof(Bucket) == 64);
  static constexpr double kMaxLoad = 0.8;
  static constexpr double kGrowLoad = 0.55;

  // Sized so that `expected_rows` fit without growing.
  Partition(size_t weight_floats, size_t state_floats, size_t expected_rows);
  Partition(const Partition&) = delete;
  Partition& operator=(const Partition&) = delete;

  // The key's home bucket: one cache line.
  void PrefetchBucket(uint64_t hash) const { __builtin_prefetch(buckets() + Home(hash, buckets_)); }

  // Prefetches a row's weights and state for writing (Apply, Import, and
  // lookups of new rows write them).
  void PrefetchRow(uint32_t row) const {
    PrefetchLines<1>(Row(row), weight_bytes_);
    if (state_bytes_ != 0) PrefetchLines<1>(State(row), state_bytes_);
  }
  // Prefetches a row's weights for reading (Lookup).
  void PrefetchWeights(uint32_t row) const { PrefetchLines<0>(Row(row), weight_bytes_); }
  // For wide (dense) rows, the first kWideRowBytes of the weights (and of
  // the state if kState): the rest is read sequentially, which the hardware
  // prefetcher follows. Hundreds of software prefetches per row only fill the
  // line-fill buffers: a dense 40 MB Adam push took 25-28 ms with them, 17-19
  // without.
  static constexpr size_t kWideRowBytes = 512;
  template <int kRw, bool kState>
  void PrefetchHead(uint32_t row) const {
    PrefetchLines<kRw>(Row(row), kWideRowBytes);
    if constexpr (kState) PrefetchLines<kRw>(State(row), kWideRowBytes);
  }
  bool wide() const { return weight_bytes_ > kWideRowBytes || state_bytes_ > kWideRowBytes; }

  // The row of `key` (whose HashKey is `hash`), created with
  // init(key, float* weights, float* state) if missing. May grow the index
  // and the slabs.
  template <typename InitFn>
  uint32_t FindOrInsert(uint64_t key, uint64_t hash, const InitFn& init) {
    for (;;) {
      Bucket* b = buckets() + Home(hash, buckets_);
      for (;;) {
        if (const uint32_t m = b->Match(key)) return b->rows[__builtin_ctz(m)];
        if (b->count < kSlotsPerBucket) break;
        if (++b == buckets() + buckets_) b = buckets();
      }
      if (rows_ < grow_at_) {
        const uint32_t row = AppendRow();
        b->Add(key, row);
        init(key, Row(row), State(row));
        return row;
      }
      GrowIndex();  // then probe again in the larger index
    }
  }

  // The row id of `key`, or -1 if absent.
  int64_t Find(uint64_t key, uint64_t hash) const {
    for (const Bucket* b = buckets() + Home(hash, buckets_);;) {
      if (const uint32_t m = b->Match(key)) return b->rows[__builtin_ctz(m)];
      if (b->count < kSlotsPerBucket) return -1;
      if (++b == buckets() + buckets_) b = buckets();
    }
  }

  // Row `row`'s weights and its optimizer state (null without state).
  float* Row(uint32_t row) { return Floats(weights_) + size_t{row} * weight_floats_; }
  const float* Row(uint32_t row) const { return Floats(weights_) + size_t{row} * weight_floats_; }
  float* State(uint32_t row) { return Floats(state_) + size_t{row} * state_floats_; }
  const float* State(uint32_t row) const { return Floats(state_) + size_t{row} * state_floats_; }

  // Calls fn(key, const float* weights, const float* state) for every row, in
  // index order.
  template <typename Fn>
  void ForEach(const Fn& fn) const {
    const Bucket* b = buckets();
    for (size_t i = 0; i < buckets_; ++i) {
      for (uint32_t k = 0; k < b[i].count; ++k) {
        const uint32_t row = b[i].rows[k];
        fn(b[i].keys[k], Row(row), State(row));
      }
    }
  }

  size_t size() const { return rows_; }
  size_t index_capacity() const { return buckets_ * kSlotsPerBucket; }  // slots
  // Index plus touched slab pages.
  size_t memory_bytes() const {
    return index_.capacity() + weights_.ResidentBytes(rows_ * weight_bytes_) +
           state_.ResidentBytes(rows_ * state_bytes_);
  }

 private:
  // fastrange (Lemire): maps a 64-bit hash onto [0, n) without a division,
  // which lets the index take any size rather than powers of two.
  static size_t Home(uint64_t hash, size_t n) {
    __extension__ using Uint128 = unsigned __int128;  // GCC/Clang; silences -Wpedantic
    return static_cast<size_t>((static_cast<Uint128>(hash) * n) >> 64);
  }
  Bucket* buckets() const { return reinterpret_cast<Bucket*>(index_.data()); }
  static float* Floats(const MappedRegion& r) { return reinterpret_cast<float*>(r.data()); }
  // The lines of [p, p + bytes), for reading (rw 0) or writing (rw 1).
  template <int kRw>
  static void PrefetchLines(const float* p, size_t bytes) {
    const char* c = reinterpret_cast<const char*>(p);
    for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off, kRw);
    // The last line when the row is not line-aligned.
    if (bytes % 64 != 0) __builtin_prefetch(c + bytes - 1, kRw);
  }

  uint32_t AppendRow() {
    if ((rows_ + 1) * weight_bytes_ > weights_.capacity() ||
        (rows_ + 1) * state_bytes_ > state_.capacity()) {
      GrowSlabs();
    }
    if (rows_ >= kMaxRows) TooManyRows();
    return static_cast<uint32_t>(rows_++);
  }
  // Row ids are uint32.
  static constexpr size_t kMaxRows = UINT32_MAX;
  [[noreturn]] static void TooManyRows();
  void GrowSlabs();
  void GrowIndex();
  // Allocates an index of at least `slots` slots (using all of the mapped
  // pages) and moves every entry into it.
  void Rehash(size_t slots);

  const size_t weight_floats_;
  const size_t state_floats_;
  const size_t weight_bytes_;
  const size_t state_bytes_;
  MappedRegion index_;
  size_t buckets_ = 0;
  size_t grow_at_ = 0;  // rows at which the index grows
  MappedRegion weights_;
  MappedRegion state_;  // empty when state_floats_ == 0
  size_t rows_ = 0;
};

}  // namespace phalanx::ps::internal
