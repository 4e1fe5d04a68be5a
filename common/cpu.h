#pragma once
// What this CPU can run, for the kernels that pick their variant at run time
// (aggregators/internal/gram_dispatch.h, ps/internal/optimizer_dispatch.h):
// one detection, one spelling of the variant names, one reading of
// PHX_KERNEL.
//
// PHX_KERNEL is read here, below launch/, against STYLE.md's rule for
// options: like OPENBLAS_CORETYPE it is a process-wide switch for tests and
// benchmarks to force a variant, not configuration, and it must act before
// any Options struct exists (static initialisation, every binary).
//
// Thread-safety: pure functions and function-local statics made once, then
// only read.

#include <string_view>

namespace phalanx {

// The instruction-set extensions the kernel variants need, as
// __builtin_cpu_supports sees them (all false on other processors).
struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512vl = false;
  bool avx512bw = false;
  bool avx512dq = false;
};
const CpuFeatures& HostCpuFeatures();

// The variant names PHX_KERNEL takes, narrowest first.
inline constexpr std::string_view kKernelVariants[] = {"scalar", "avx2", "avx512"};
bool IsKernelVariant(std::string_view name);

// Whether this CPU runs a variant: "scalar" always; "avx2" with AVX2 and FMA;
// "avx512" with AVX-512 F, VL, BW and DQ (the x86-64-v4 set every AVX-512
// server CPU has, which the AVX-512 variants may use). False for other names.
bool CpuRunsKernel(std::string_view name);

// $PHX_KERNEL, read once; empty when unset.
std::string_view KernelOverride();

}  // namespace phalanx
