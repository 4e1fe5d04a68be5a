#pragma once
// A flat float array on 2 MiB pages, as the embedding table's slabs are: 2 MiB
// aligned and advised MADV_HUGEPAGE before first touch, so the kernel backs it
// with transparent huge pages when it can (on 4 KiB pages random row gathers
// run TLB-bound, much slower). The benches use it for their "flat array"
// ceilings. Move-only; not thread-safe.

#include <cstddef>
#include <cstdlib>
#include <memory>

namespace phalanx::bench {

class HugePageFloats {
 public:
  // Allocates n floats (contents unspecified until written); false when the
  // memory is refused.
  bool Allocate(size_t n);
  float* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> data_;
  size_t size_ = 0;
};

}  // namespace phalanx::bench
