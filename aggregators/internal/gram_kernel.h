#pragma once
// The Gram block kernel, one variant per instruction set (the choice among
// them: gram_dispatch.h). Each variant lives in its
// own translation unit compiled for its instruction set
// (aggregators/CMakeLists.txt), so the rest of the library keeps the
// portable baseline. Those units use raw pointers and intrinsics only: an
// inline function of a shared header (Eigen, the standard library) emitted
// there with AVX-512 instructions could be the copy the linker keeps for
// everyone.
//
// Thread-safety: the kernels are pure functions of their arguments.

#include <cstddef>

namespace phalanx::aggregators::internal {

// Rows of the column-major block the kernels read (its leading dimension).
// 256 rows x 16 columns of doubles is 32 KB: the tile loop reads the block
// from L1 (512 rows measured 20-25% slower at n = 15).
inline constexpr std::ptrdiff_t kGramBlockRows = 256;

// acc[i + j * ld] += sum_{r < len} block[r + i * kGramBlockRows] *
// block[r + j * kGramBlockRows] for the lower triangle j <= i < m, in
// tiles of tile_i x tile_j column pairs held in registers. The block must
// hold padded_cols(m) columns, zero past the m real ones, and zero rows from
// len up to a multiple of `lanes` (the kernels read whole vectors).
// The reduction order is fixed per variant: results do not depend on
// threads or alignment.
using GramBlockFn = void (*)(const double* block, std::ptrdiff_t len, std::ptrdiff_t m, double* acc,
                             std::ptrdiff_t ld);

struct GramKernel {
  const char* name;       // "scalar", "avx2", "avx512": the PHX_KERNEL values
  std::ptrdiff_t lanes;   // rows per step; len is read rounded up to this
  std::ptrdiff_t tile_i;  // register tile: tile_i x tile_j column pairs
  std::ptrdiff_t tile_j;
  GramBlockFn accumulate;

  // Columns the kernel reads for m real ones.
  std::ptrdiff_t padded_cols(std::ptrdiff_t m) const {
    const std::ptrdiff_t a = (m + tile_i - 1) / tile_i * tile_i;
    const std::ptrdiff_t b = (m + tile_j - 1) / tile_j * tile_j;
    return a > b ? a : b;
  }
};

// The variants. The AVX2 and AVX-512 ones are null when the build has no
// such variant (a processor other than x86-64).
const GramKernel& ScalarGramKernel();
const GramKernel* Avx2GramKernel();
const GramKernel* Avx512GramKernel();

}  // namespace phalanx::aggregators::internal
