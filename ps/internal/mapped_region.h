#pragma once
// MappedRegion: a private anonymous memory mapping that grows without copying.

#include <cstddef>

namespace phalanx::ps::internal {

// MappedRegion owns one anonymous mapping. Regions of 2 MiB or more are 2 MiB
// aligned and advised MADV_HUGEPAGE, so the kernel backs them with transparent
// huge pages when it can: random row access over 4 KiB pages is 2-5x slower on
// our machines. Without THP they quietly stay on 4 KiB pages.
// Growth uses mremap, which moves page-table entries rather than bytes, so a
// multi-GiB slab grows in microseconds and no row is copied. Bytes never
// written read as zero, which the hash index relies on (zero = empty slot).
//
// Thread-safety: none; the owner serializes calls. Move-only.
class MappedRegion {
 public:
  static constexpr size_t kHugePage = size_t{2} << 20;

  MappedRegion() = default;
  ~MappedRegion() { Reset(); }
  MappedRegion(MappedRegion&& other) noexcept;
  MappedRegion& operator=(MappedRegion&& other) noexcept;
  MappedRegion(const MappedRegion&) = delete;
  MappedRegion& operator=(const MappedRegion&) = delete;

  // Grows the region to at least `bytes` (rounded up to the page size), keeping
  // its contents; pointers into it are invalidated when it moves. Returns false
  // if the kernel refuses the memory, leaving the region unchanged.
  bool Reserve(size_t bytes);
  // Unmaps everything.
  void Reset();

  char* data() const { return base_; }
  size_t capacity() const { return bytes_; }
  // True when the region is big enough to be backed by huge pages (2 MiB
  // aligned and advised); the kernel may still use 4 KiB pages.
  bool huge() const { return bytes_ >= kHugePage; }
  // Upper bound on the physical memory held when the first `used` bytes have
  // been touched: whole pages of the size the region is advised for.
  size_t ResidentBytes(size_t used) const;

 private:
  char* base_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace phalanx::ps::internal
