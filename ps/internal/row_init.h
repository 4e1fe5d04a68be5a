#pragma once
// Deterministic, counter-based initial values of embedding rows.

#include <cstddef>
#include <cstdint>

namespace phalanx::ps::internal {

// SplitMix64's output function (Steele et al.): a bijective 64-bit mixer.
inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// The random stream of one row: XXH64 of the 16 bytes (key, table_id as
// uint64), little-endian, seeded with `seed`. Column c then draws
// SplitMix64(base + c * 0x9E3779B97F4A7C15). Being a pure function of
// (seed, table_id, key, column), a row's initial value is independent of
// insertion order, capacity and partitioning, so any shard can recreate it.
uint64_t RowStreamBase(uint64_t seed, uint32_t table_id, uint64_t key);

// Writes the `dim` initial weights of `key`:
//   kind 0 (zeros):   0
//   kind 1 (uniform): scale * (2u - 1), u = top 24 bits / 2^24, in [-scale, scale)
//   kind 2 (normal):  scale * sqrt(-2 ln u1) * cos(2 pi u2) (Box-Muller), with
//                     u1 = (high 32 bits + 0.5) / 2^32, u2 = low 32 bits / 2^32
void InitialWeights(uint64_t seed, uint32_t table_id, uint64_t key, int kind, float scale,
                    size_t dim, float* out);

}  // namespace phalanx::ps::internal
