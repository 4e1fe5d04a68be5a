// The AVX2 + FMA Gram kernel. Compiled with -mavx2 -mfma (only this file):
// no shared inline code here, see gram_kernel.h.
#include "aggregators/internal/gram_kernel.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace phalanx::aggregators::internal {

#if defined(__x86_64__)
namespace {

constexpr std::ptrdiff_t kLanes = 4;

// A TI x TJ tile of 4-double accumulators. Per step: TJ loads of b, then per
// row of the tile one load of a (an FMA memory operand) and TJ FMAs. With 16
// ymm registers, TI * TJ + TJ must stay <= 16 or the accumulators spill.
template <int TI, int TJ>
void Avx2Tile(const double* a, const double* b, std::ptrdiff_t steps, double (&out)[TI][TJ]) {
  __m256d s[TI][TJ];
#pragma GCC unroll 4
  for (int x = 0; x < TI; ++x) {
#pragma GCC unroll 4
    for (int y = 0; y < TJ; ++y) s[x][y] = _mm256_setzero_pd();
  }
  for (std::ptrdiff_t t = 0; t < steps; ++t) {
    const std::ptrdiff_t r = t * kLanes;
    __m256d bv[TJ];
#pragma GCC unroll 4
    for (int y = 0; y < TJ; ++y) bv[y] = _mm256_loadu_pd(b + y * kGramBlockRows + r);
#pragma GCC unroll 4
    for (int x = 0; x < TI; ++x) {
      const __m256d av = _mm256_loadu_pd(a + x * kGramBlockRows + r);
#pragma GCC unroll 4
      for (int y = 0; y < TJ; ++y) s[x][y] = _mm256_fmadd_pd(av, bv[y], s[x][y]);
    }
  }
  // Fixed lane order: (l0 + l1) + (l2 + l3).
  for (int x = 0; x < TI; ++x) {
    for (int y = 0; y < TJ; ++y) {
      alignas(32) double l[kLanes];
      _mm256_store_pd(l, s[x][y]);
      out[x][y] = (l[0] + l[1]) + (l[2] + l[3]);
    }
  }
}

template <int TI, int TJ>
void Avx2Block(const double* block, std::ptrdiff_t len, std::ptrdiff_t m, double* acc,
               std::ptrdiff_t ld) {
  const std::ptrdiff_t steps = (len + kLanes - 1) / kLanes;
  for (std::ptrdiff_t i0 = 0; i0 < m; i0 += TI) {
    // Tiles that reach the lower triangle: j0 <= i0 + TI - 1.
    for (std::ptrdiff_t j0 = 0; j0 < i0 + TI && j0 < m; j0 += TJ) {
      double s[TI][TJ];
      Avx2Tile<TI, TJ>(block + i0 * kGramBlockRows, block + j0 * kGramBlockRows, steps, s);
      for (int x = 0; x < TI; ++x) {
        for (int y = 0; y < TJ; ++y) {
          const std::ptrdiff_t i = i0 + x, j = j0 + y;
          if (j <= i && i < m) acc[i + j * ld] += s[x][y];
        }
      }
    }
  }
}

// 3 x 4: 12 accumulators + 4 b vectors = the 16 ymm registers (a comes
// from memory); objdump shows no stack access in the loop. Kernel alone, one
// thread, 1e6 rows at m = 15 (AMD EPYC Zen 3, AVX2, 2 vCPUs): 3x4 9.1-11.3
// ms, 4x3 9.7-11.0, 3x3 10.0-10.2, 2x4 15.4-17.4, 4x2 15.0-17.5, 2x5 20-21.
constexpr int kTi = 3;
constexpr int kTj = 4;
const GramKernel kAvx2{"avx2", kLanes, kTi, kTj, &Avx2Block<kTi, kTj>};

}  // namespace

const GramKernel* Avx2GramKernel() { return &kAvx2; }
#else
const GramKernel* Avx2GramKernel() { return nullptr; }
#endif

}  // namespace phalanx::aggregators::internal
