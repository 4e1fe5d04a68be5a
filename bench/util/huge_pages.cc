#include "bench/util/huge_pages.h"

#include <sys/mman.h>

namespace phalanx::bench {

bool HugePageFloats::Allocate(size_t n) {
  constexpr size_t kHugePage = size_t{2} << 20;
  const size_t bytes = (n * sizeof(float) + kHugePage - 1) / kHugePage * kHugePage;
  void* p = std::aligned_alloc(kHugePage, bytes);
  if (p == nullptr) return false;
  // Best effort: without THP this fails and the array keeps 4 KiB pages.
  madvise(p, bytes, MADV_HUGEPAGE);
  data_.reset(static_cast<float*>(p));
  size_ = n;
  return true;
}

}  // namespace phalanx::bench
