#include "ps/internal/optimizer_dispatch.h"

#include <string>

#include "common/cpu.h"

namespace phalanx::ps::internal {

std::vector<std::string_view> SupportedOptimizerKernels() {
  std::vector<std::string_view> out = {"scalar"};
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  // The wide variants are target attributes in table.cc: x86-64 only.
  for (std::string_view v : {"avx2", "avx512"}) {
    if (CpuRunsKernel(v)) out.push_back(v);
  }
#endif
  return out;
}

Result<std::string_view> ChooseOptimizerKernel(std::string_view override_name) {
  const std::vector<std::string_view> supported = SupportedOptimizerKernels();
  if (override_name.empty()) return supported.back();
  std::string names;
  for (std::string_view v : supported) {
    if (v == override_name) return v;
    if (!names.empty()) names += ", ";
    names += v;
  }
  return InvalidArgument("PHX_KERNEL=" + std::string(override_name) +
                         (IsKernelVariant(override_name)
                              ? ": this CPU or build cannot run that optimizer kernel"
                              : ": unknown optimizer kernel") +
                         "; this one can run: " + names);
}

const Result<std::string_view>& ActiveOptimizerKernel() {
  static const Result<std::string_view> kActive = ChooseOptimizerKernel(KernelOverride());
  return kActive;
}

}  // namespace phalanx::ps::internal

namespace phalanx::ps {

std::string_view OptimizerKernelName() {
  const Result<std::string_view>& kernel = internal::ActiveOptimizerKernel();
  if (!kernel.ok()) {
    static const std::string kRefused = "none (" + kernel.status().ToString() + ")";
    return kRefused;
  }
  return *kernel;
}

}  // namespace phalanx::ps
