#pragma once
// Partition: one share-nothing slice of an embedding table.

#include <cstddef>
#include <cstdint>
#include <cstring>

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

// Partition maps uint64 keys to rows of `row_floats` floats. The index is an
// open-addressing table with linear probing whose 12-byte slots hold the full
// key and row id + 1 (0 marks an empty slot, so every key value, including 0
// and ~0, is an ordinary key). Rows are appended to a slab and never move:
// growth rebuilds only the index (12 B per slot) and extends the slab with
// mremap, so row pointers are stable as row ids and rows are written once.
// The index grows when it is 80% full to a size that makes it 55% full,
// keeping it at 15-22 B per row, so memory per row stays below row bytes +
// 22 B (+ page rounding).
//
// Thread-safety: none. A table gives each partition to at most one thread at
// a time; partitions share nothing, so different partitions may run on
// different threads. Allocation failure aborts the process (as operator new
// would), because the table's hot-path API has no error channel.
class Partition {
 public:
  // 12 bytes, 4-byte aligned: 5.3 slots per cache line, and 16-24 B of index
  // per row rather than the 20-29 B of a padded 16-byte slot. The key is read
  // with one unaligned 8-byte load.
  struct Slot {
    uint32_t row_plus_one;  // 0 = empty
    uint32_t key_words[2];  // the key, native byte order

    uint64_t key() const {
      uint64_t k;
      std::memcpy(&k, key_words, sizeof(k));
      return k;
    }
    void set(uint64_t k, uint32_t row) {
      row_plus_one = row + 1;
      std::memcpy(key_words, &k, sizeof(k));
    }
  };
  static_assert(sizeof(Slot) == 12);
  static constexpr double kMaxLoad = 0.8;
  static constexpr double kGrowLoad = 0.55;

  // Sized so that `expected_rows` fit without growing.
  Partition(size_t row_floats, size_t expected_rows);
  Partition(const Partition&) = delete;
  Partition& operator=(const Partition&) = delete;

  // Both ends of the home slot: one slot in four straddles two cache lines.
  void PrefetchSlot(uint64_t hash) const {
    const Slot* s = slots() + Home(hash, capacity_);
    __builtin_prefetch(s);
    __builtin_prefetch(reinterpret_cast<const char*>(s) + sizeof(Slot) - 1);
  }

  // Prefetches a row for writing (Apply and lookups of new rows write it).
  void PrefetchRow(uint32_t row) const {
    const char* p = reinterpret_cast<const char*>(Row(row));
    for (size_t off = 0; off < row_bytes_; off += 64) __builtin_prefetch(p + off, 1);
    if (row_bytes_ % 64 != 0) __builtin_prefetch(p + row_bytes_ - 1, 1);
  }

  // The row of `key` (whose HashKey is `hash`), created with
  // init(key, float* row) if missing. May grow the index and the slab.
  template <typename InitFn>
  uint32_t FindOrInsert(uint64_t key, uint64_t hash, const InitFn& init) {
    for (;;) {
      Slot* s = slots();
      size_t i = Home(hash, capacity_);
      for (;;) {
        const uint32_t r = s[i].row_plus_one;
        if (r == 0) break;
        if (s[i].key() == key) return r - 1;
        if (++i == capacity_) i = 0;
      }
      if (rows_ < grow_at_) {
        const uint32_t row = AppendRow();
        s[i].set(key, row);
        init(key, Row(row));
        return row;
      }
      GrowIndex();  // then probe again in the larger index
    }
  }

  // The row id of `key`, or -1 if absent.
  int64_t Find(uint64_t key, uint64_t hash) const {
    const Slot* s = slots();
    for (size_t i = Home(hash, capacity_);;) {
      const uint32_t r = s[i].row_plus_one;
      if (r == 0) return -1;
      if (s[i].key() == key) return static_cast<int64_t>(r) - 1;
      if (++i == capacity_) i = 0;
    }
  }

  float* Row(uint32_t row) { return reinterpret_cast<float*>(slab_.data()) + row * row_floats_; }
  const float* Row(uint32_t row) const {
    return reinterpret_cast<const float*>(slab_.data()) + row * row_floats_;
  }

  // Calls fn(key, const float* row) for every row, in index order.
  template <typename Fn>
  void ForEach(const Fn& fn) const {
    const Slot* s = slots();
    for (size_t i = 0; i < capacity_; ++i) {
      if (s[i].row_plus_one != 0) fn(s[i].key(), Row(s[i].row_plus_one - 1));
    }
  }

  size_t size() const { return rows_; }
  size_t index_capacity() const { return capacity_; }
  // Index plus touched slab pages.
  size_t memory_bytes() const {
    return index_.capacity() + slab_.ResidentBytes(rows_ * row_bytes_);
  }

 private:
  // fastrange (Lemire): maps a 64-bit hash onto [0, n) without a division,
  // which lets the index take any size rather than powers of two.
  static size_t Home(uint64_t hash, size_t n) {
    __extension__ using Uint128 = unsigned __int128;  // GCC/Clang; silences -Wpedantic
    return static_cast<size_t>((static_cast<Uint128>(hash) * n) >> 64);
  }
  Slot* slots() const { return reinterpret_cast<Slot*>(index_.data()); }

  uint32_t AppendRow() {
    if ((rows_ + 1) * row_bytes_ > slab_.capacity()) GrowSlab();
    if (rows_ >= kMaxRows) TooManyRows();
    return static_cast<uint32_t>(rows_++);
  }
  // Row ids are uint32 with id + 1 stored in the slot.
  static constexpr size_t kMaxRows = UINT32_MAX - 1;
  [[noreturn]] static void TooManyRows();
  void GrowSlab();
  void GrowIndex();
  // Allocates an index of at least `slots` slots (using all of the mapped
  // pages) and moves every entry into it.
  void Rehash(size_t slots);

  const size_t row_floats_;
  const size_t row_bytes_;
  MappedRegion index_;
  size_t capacity_ = 0;  // slots
  size_t grow_at_ = 0;   // rows at which the index grows
  MappedRegion slab_;
  size_t rows_ = 0;
};

}  // namespace phalanx::ps::internal
