#include "ps/internal/mapped_region.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstring>
#include <utility>

namespace phalanx::ps::internal {
namespace {

constexpr size_t kSmallPage = 4096;

size_t RoundUp(size_t x, size_t align) { return (x + align - 1) / align * align; }

bool WantsHuge(size_t bytes) { return bytes >= MappedRegion::kHugePage; }

size_t MappedSize(size_t bytes) {
  return WantsHuge(bytes) ? RoundUp(bytes, MappedRegion::kHugePage) : RoundUp(bytes, kSmallPage);
}

bool IsHugeAligned(const char* p) {
  return reinterpret_cast<uintptr_t>(p) % MappedRegion::kHugePage == 0;
}

void AdviseHuge(char* base, size_t bytes) {
  // Best effort: without THP (or with it disabled) this fails and the region
  // simply keeps 4 KiB pages.
  if (WantsHuge(bytes)) madvise(base, bytes, MADV_HUGEPAGE);
}

// Maps `bytes` (already rounded by MappedSize) of zeroed memory. Huge regions
// are over-mapped by one huge page and trimmed to a 2 MiB boundary, because
// THP can only back 2 MiB-aligned virtual ranges.
char* MapFresh(size_t bytes) {
  const bool huge = WantsHuge(bytes);
  const size_t span = huge ? bytes + MappedRegion::kHugePage : bytes;
  void* p = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  char* base = static_cast<char*>(p);
  if (huge) {
    char* aligned = reinterpret_cast<char*>(
        RoundUp(reinterpret_cast<uintptr_t>(base), MappedRegion::kHugePage));
    if (aligned > base) munmap(base, static_cast<size_t>(aligned - base));
    char* end = base + span;
    char* aligned_end = aligned + bytes;
    if (end > aligned_end) munmap(aligned_end, static_cast<size_t>(end - aligned_end));
    base = aligned;
    AdviseHuge(base, bytes);
  }
  return base;
}

}  // namespace

MappedRegion::MappedRegion(MappedRegion&& other) noexcept
    : base_(std::exchange(other.base_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

MappedRegion& MappedRegion::operator=(MappedRegion&& other) noexcept {
  if (this != &other) {
    Reset();
    base_ = std::exchange(other.base_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void MappedRegion::Reset() {
  if (base_ != nullptr) munmap(base_, bytes_);
  base_ = nullptr;
  bytes_ = 0;
}

bool MappedRegion::Reserve(size_t bytes) {
  if (bytes <= bytes_) return true;
  const size_t want = MappedSize(bytes);
  if (base_ == nullptr) {
    base_ = MapFresh(want);
    if (base_ == nullptr) return false;
    bytes_ = want;
    return true;
  }
  // Extending in place keeps the address (and its alignment) when the
  // following virtual range is free.
  if (!WantsHuge(want) || IsHugeAligned(base_)) {
    if (mremap(base_, bytes_, want, 0) != MAP_FAILED) {
      bytes_ = want;
      AdviseHuge(base_, bytes_);
      return true;
    }
  }
  // Otherwise move the pages into a fresh aligned range; MREMAP_FIXED replaces
  // that range atomically.
  char* fresh = MapFresh(want);
  if (fresh == nullptr) return false;
  if (mremap(base_, bytes_, want, MREMAP_MAYMOVE | MREMAP_FIXED, fresh) == MAP_FAILED) {
    std::memcpy(fresh, base_, bytes_);
    munmap(base_, bytes_);
  } else {
    AdviseHuge(fresh, want);
  }
  base_ = fresh;
  bytes_ = want;
  return true;
}

size_t MappedRegion::ResidentBytes(size_t used) const {
  if (used == 0) return 0;
  const size_t page = huge() ? kHugePage : kSmallPage;
  const size_t r = RoundUp(used, page);
  return r < bytes_ ? r : bytes_;
}

}  // namespace phalanx::ps::internal
