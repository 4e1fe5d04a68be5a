#include "common/build_info.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/message.h"
#include "common/metrics.h"

// Set by common/CMakeLists.txt for this file only.
#ifndef PHX_BUILD_VERSION
#define PHX_BUILD_VERSION "unknown"
#endif
#ifndef PHX_BUILD_X86_LEVEL
#define PHX_BUILD_X86_LEVEL ""
#endif
#ifndef PHX_BUILD_NATIVE
#define PHX_BUILD_NATIVE 0
#endif
#ifndef PHX_BUILD_TYPE
#define PHX_BUILD_TYPE ""
#endif

namespace phalanx {
namespace {

std::string Compiler() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("GCC ") + __VERSION__;
#else
  return "unknown";
#endif
}

std::string Flags(const CpuFeatures& f) {
  std::string out;
  auto add = [&out](bool on, const char* name) {
    if (!on) return;
    if (!out.empty()) out += ' ';
    out += name;
  };
  add(f.avx2, "avx2");
  add(f.fma, "fma");
  add(f.avx512f, "avx512f");
  add(f.avx512vl, "avx512vl");
  add(f.avx512bw, "avx512bw");
  add(f.avx512dq, "avx512dq");
  return out.empty() ? "none" : out;
}

}  // namespace

std::string CpuModelName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, name = "unknown", family = "?", model = "?";
  auto value = [&line] {
    const size_t colon = line.find(':');
    return colon == std::string::npos || colon + 2 > line.size() ? std::string()
                                                                 : line.substr(colon + 2);
  };
  while (std::getline(in, line) && !line.empty()) {
    if (line.rfind("model name", 0) == 0) name = value();
    if (line.rfind("cpu family", 0) == 0) family = value();
    if (line.rfind("model\t", 0) == 0) model = value();
  }
  return name + ", family " + family + " model " + model;
}

BuildInfo CurrentBuildInfo(std::vector<KernelChoice> kernels) {
  BuildInfo b;
  b.version = std::string(PHX_BUILD_VERSION) + " (wire " + std::to_string(kWireVersion) + ")";
  b.compiler = Compiler();
  b.native = PHX_BUILD_NATIVE != 0;
  b.x86_level = b.native ? "native" : PHX_BUILD_X86_LEVEL;
  b.build_type = PHX_BUILD_TYPE;
  b.cpu_model = CpuModelName();
  b.cpu = HostCpuFeatures();
  b.kernels = std::move(kernels);
  return b;
}

std::string BuildInfoJson(const BuildInfo& info) {
  nlohmann::json kernels = nlohmann::json::object();
  for (const KernelChoice& k : info.kernels) kernels[k.kernel] = k.variant;
  const CpuFeatures& f = info.cpu;
  nlohmann::json j{{"version", info.version},
                   {"compiler", info.compiler},
                   {"x86_level", info.x86_level},
                   {"native", info.native},
                   {"build_type", info.build_type},
                   {"cpu",
                    {{"model", info.cpu_model},
                     {"avx2", f.avx2},
                     {"fma", f.fma},
                     {"avx512f", f.avx512f},
                     {"avx512vl", f.avx512vl},
                     {"avx512bw", f.avx512bw},
                     {"avx512dq", f.avx512dq}}},
                   {"kernels", kernels}};
  // Replace, not throw, on bytes that are not UTF-8 (a CPU model string).
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string BuildInfoText(const BuildInfo& info) {
  std::string kernels;
  for (const KernelChoice& k : info.kernels) {
    if (!kernels.empty()) kernels += ' ';
    kernels += k.kernel + '=' + k.variant;
  }
  return "phalanx " + info.version + "\n" + "compiler:  " + info.compiler + "\n" +
         "built for: " + (info.x86_level.empty() ? "this processor's default" : info.x86_level) +
         (info.native ? " (PHX_NATIVE=ON)" : " (PHX_NATIVE=OFF)") + ", " + info.build_type + "\n" +
         "cpu:       " + info.cpu_model + "; " + Flags(info.cpu) + "\n" +
         "kernels:   " + (kernels.empty() ? "none" : kernels) + "\n";
}

void ExportBuildInfo(const BuildInfo& info, MetricsRegistry& registry) {
  std::string labels = FormatLabels({{"version", info.version},
                                     {"compiler", info.compiler},
                                     {"x86_level", info.x86_level},
                                     {"native", info.native ? "true" : "false"},
                                     {"cpu_flags", Flags(info.cpu)}});
  for (const KernelChoice& k : info.kernels) {
    labels += ',' + FormatLabels({{k.kernel + "_kernel", k.variant}});
  }
  registry
      .GetGauge("phalanx_build_info",
                "Build and kernel facts of this process, as labels; the value is always 1.", labels)
      .Set(1.0);
}

}  // namespace phalanx
