#include "common/cpu.h"

#include <cstdlib>
#include <string>

namespace phalanx {

const CpuFeatures& HostCpuFeatures() {
  static const CpuFeatures kFeatures = [] {
    CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    f.avx512f = __builtin_cpu_supports("avx512f");
    f.avx512vl = __builtin_cpu_supports("avx512vl");
    f.avx512bw = __builtin_cpu_supports("avx512bw");
    f.avx512dq = __builtin_cpu_supports("avx512dq");
#endif
    return f;
  }();
  return kFeatures;
}

bool IsKernelVariant(std::string_view name) {
  for (std::string_view v : kKernelVariants) {
    if (v == name) return true;
  }
  return false;
}

bool CpuRunsKernel(std::string_view name) {
  const CpuFeatures& f = HostCpuFeatures();
  if (name == "scalar") return true;
  if (name == "avx2") return f.avx2 && f.fma;
  if (name == "avx512") return f.avx512f && f.avx512vl && f.avx512bw && f.avx512dq;
  return false;
}

std::string_view KernelOverride() {
  static const std::string kValue = [] {
    const char* env = std::getenv("PHX_KERNEL");
    return env == nullptr ? std::string() : std::string(env);
  }();
  return kValue;
}

}  // namespace phalanx
