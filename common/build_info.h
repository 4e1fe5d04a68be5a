#pragma once
// What this binary is and what it runs on: the build (version, compiler, the
// x86-64 level it was compiled for), the CPU seen at run time, and the
// variant each hot kernel chose from it. `phalanx build-info`, the roles'
// /status ("build") and /metrics (phalanx_build_info) and the bench headers
// all print this one record.
//
// The kernel choices come from the libraries that own the kernels
// (aggregators::GramKernelName, ps::OptimizerKernelName), which common/ must
// not include; ps::ProcessBuildInfo (ps/server.h) gathers them.
//
// Thread-safety: pure functions; CurrentBuildInfo reads /proc/cpuinfo.

#include <string>
#include <vector>

#include "common/cpu.h"

namespace phalanx {

class MetricsRegistry;

// One hot kernel and the variant this process runs ("scalar", "avx2",
// "avx512", or "none (<why>)" when PHX_KERNEL asked for one it cannot run).
struct KernelChoice {
  std::string kernel;  // "gram", "optimizer"
  std::string variant;
};

struct BuildInfo {
  std::string version;     // project version and wire version, "0.9.0 (wire 2)"
  std::string compiler;    // "GCC 12.2.0", "clang 16.0.6"
  std::string x86_level;   // -march of the build: "x86-64-v3", "native", "" off x86-64
  bool native = false;     // built with PHX_NATIVE=ON
  std::string build_type;  // CMAKE_BUILD_TYPE
  std::string cpu_model;   // "AMD EPYC 7B13, family 25 model 1"
  CpuFeatures cpu;
  std::vector<KernelChoice> kernels;
};

// The build's facts and this CPU's, with the given kernel choices.
BuildInfo CurrentBuildInfo(std::vector<KernelChoice> kernels);

// "model name, family F model M" of /proc/cpuinfo's first CPU ("unknown" if
// unreadable). A guest's model name can be as vague as "AMD EPYC".
std::string CpuModelName();

// A JSON object: version, compiler, x86_level, native, build_type,
// cpu {model, avx2, fma, avx512f, avx512vl, avx512bw, avx512dq},
// kernels {gram: "avx2", ...}.
std::string BuildInfoJson(const BuildInfo& info);

// A few human-readable lines (build-info, bench headers), each ending in '\n'.
std::string BuildInfoText(const BuildInfo& info);

// Sets phalanx_build_info{version=...,x86_level=...,gram_kernel=...} 1, the
// Prometheus idiom for facts as labels.
void ExportBuildInfo(const BuildInfo& info, MetricsRegistry& registry);

}  // namespace phalanx
