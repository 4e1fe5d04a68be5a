#pragma once
// Small deterministic random helpers for data shuffling and sharding. We avoid
// std::shuffle and std::uniform_int_distribution on purpose: their output is
// implementation-defined, and every worker (possibly built by a different
// toolchain) must derive the same permutation from the same seed.
// Plain value types; not thread-safe per instance, use one per thread.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace phalanx::worker::internal {

// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and well mixed enough for
// shuffling data.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  // Uniform in [0, bound), unbiased: draws below 2^64 mod bound are
  // rejected, so every residue is equally likely.
  uint64_t Below(uint64_t bound) {
    if (bound <= 1) return 0;
    const uint64_t threshold = (0 - bound) % bound;
    while (true) {
      const uint64_t r = Next();
      if (r >= threshold) return r % bound;
    }
  }

 private:
  uint64_t state_;
};

// Fisher-Yates shuffle driven by SplitMix64(seed).
template <typename T>
void Shuffle(std::vector<T>* v, uint64_t seed) {
  SplitMix64 rng(seed);
  for (size_t i = v->size(); i > 1; --i) {
    const size_t j = rng.Below(i);
    std::swap((*v)[i - 1], (*v)[j]);
  }
}

}  // namespace phalanx::worker::internal
