// The AVX-512 Gram kernel: the 4 x 4 tile of 8-double vectors the library
// was tuned with on an AVX-512 machine (16 accumulators of the 32 zmm
// registers). Compiled with -mavx512f -mfma (only this file): no shared
// inline code here, see gram_kernel.h.
#include <cstring>

#include "aggregators/internal/gram_kernel.h"

namespace phalanx::aggregators::internal {

#if defined(__x86_64__)
namespace {

constexpr std::ptrdiff_t kTile = 4;
constexpr std::ptrdiff_t kLanes = 8;

// Eight doubles, one zmm register. GCC's vector extension, as before the
// kernels were split: s += a * b becomes an FMA under -ffp-contract=fast.
using V8 = double __attribute__((vector_size(64)));

inline V8 LoadV8(const double* p) {
  V8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// 4 x 4 column pairs, 8 rows per step: 16 FMAs per 8 loads.
void Avx512Block(const double* block, std::ptrdiff_t len, std::ptrdiff_t m, double* acc,
                 std::ptrdiff_t ld) {
  const std::ptrdiff_t steps = (len + kLanes - 1) / kLanes;
  const std::ptrdiff_t m4 = (m + kTile - 1) / kTile * kTile;
  for (std::ptrdiff_t i0 = 0; i0 < m4; i0 += kTile) {
    for (std::ptrdiff_t j0 = 0; j0 <= i0; j0 += kTile) {
      V8 s[kTile][kTile];
#pragma GCC unroll 4
      for (std::ptrdiff_t x = 0; x < kTile; ++x) {
#pragma GCC unroll 4
        for (std::ptrdiff_t y = 0; y < kTile; ++y) s[x][y] = V8{};
      }
      const double* a = block + i0 * kGramBlockRows;
      const double* b = block + j0 * kGramBlockRows;
      for (std::ptrdiff_t t = 0; t < steps; ++t) {
        const std::ptrdiff_t r = t * kLanes;
        V8 av[kTile], bv[kTile];
#pragma GCC unroll 4
        for (std::ptrdiff_t x = 0; x < kTile; ++x) {
          av[x] = LoadV8(a + x * kGramBlockRows + r);
          bv[x] = LoadV8(b + x * kGramBlockRows + r);
        }
#pragma GCC unroll 4
        for (std::ptrdiff_t x = 0; x < kTile; ++x) {
#pragma GCC unroll 4
          for (std::ptrdiff_t y = 0; y < kTile; ++y) s[x][y] += av[x] * bv[y];
        }
      }
      for (std::ptrdiff_t x = 0; x < kTile; ++x) {
        for (std::ptrdiff_t y = 0; y < kTile; ++y) {
          if (j0 + y > i0 + x || i0 + x >= m) continue;
          const V8& v = s[x][y];
          acc[(i0 + x) + (j0 + y) * ld] +=
              ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
        }
      }
    }
  }
}

const GramKernel kAvx512{"avx512", kLanes, kTile, kTile, &Avx512Block};

}  // namespace

const GramKernel* Avx512GramKernel() { return &kAvx512; }
#else
const GramKernel* Avx512GramKernel() { return nullptr; }
#endif

}  // namespace phalanx::aggregators::internal
