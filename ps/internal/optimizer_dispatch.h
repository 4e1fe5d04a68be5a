#pragma once
// Which variant of the optimizer row updates (optimizer.h) a table's Apply
// runs, chosen once per process from the CPU (common/cpu.h, shared with the
// Gram kernel) or forced by PHX_KERNEL:
//   scalar  the kernels compiled without vectorisation (optimizer_scalar.cc,
//           -fno-tree-vectorize): the reference of the tests, and the variant
//           without any vector-width assumption;
//   avx2    the table's update pipeline compiled for AVX2 + FMA (on the
//           default x86-64-v3 baseline, the code the table always had);
//   avx512  the same pipeline compiled for AVX-512 (F, VL, BW, DQ) with
//           512-bit vectors preferred.
// The choice is made per batch, never per row: a table holds a pointer to a
// whole batch-update routine (the hash/probe/prefetch pipeline with the row
// kernel inlined), one per (variant, optimizer, row width) (table.cc).
//
// Thread-safety: the process's choice is a function-local static, made once
// and then only read.

#include <memory>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "ps/internal/optimizer.h"
#include "ps/table.h"

namespace phalanx::ps::internal {

// The variants this build has and this CPU runs, scalar first, widest last.
std::vector<std::string_view> SupportedOptimizerKernels();

// The variant for an override value (PHX_KERNEL): empty = the widest
// supported; else that one, or InvalidArgument if unknown or not runnable.
Result<std::string_view> ChooseOptimizerKernel(std::string_view override_name);

// ChooseOptimizerKernel(KernelOverride()), once. A refused override stays an
// error: EmbeddingTable::Create then returns it rather than running another
// variant than the one asked for.
const Result<std::string_view>& ActiveOptimizerKernel();

// EmbeddingTable::Create with the given variant (one of
// SupportedOptimizerKernels()) instead of the process's; for tests.
Result<std::unique_ptr<EmbeddingTable>> CreateTableWithKernel(const TableOptions& options,
                                                              std::string_view variant);

// The scalar variant's row kernels (optimizer_scalar.cc), out of line so
// that they keep that file's flags.
void ScalarSgdRow(const OptimizerParams& p, size_t dim, const float* g, float* w, float* state);
void ScalarMomentumRow(const OptimizerParams& p, size_t dim, const float* g, float* w,
                       float* state);
void ScalarAdagradRow(const OptimizerParams& p, size_t dim, const float* g, float* w, float* state);
void ScalarAdamRow(const OptimizerParams& p, size_t dim, const float* g, float* w, float* state);

}  // namespace phalanx::ps::internal
