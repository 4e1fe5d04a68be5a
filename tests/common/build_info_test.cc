#include "common/build_info.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "common/cpu.h"
#include "common/metrics.h"

namespace phalanx {
namespace {

BuildInfo Sample() { return CurrentBuildInfo({{"gram", "avx2"}, {"optimizer", "scalar"}}); }

TEST(BuildInfoTest, SaysWhatTheBuildIs) {
  const BuildInfo b = Sample();
  EXPECT_EQ(b.version.find("(wire "), b.version.find('(')) << b.version;
  EXPECT_NE(b.version.rfind("unknown", 0), 0u) << "CMake passes the project version";
#if defined(__GNUC__)
  EXPECT_FALSE(b.compiler.empty());
  EXPECT_NE(b.compiler, "unknown");
#endif
#if defined(__x86_64__)
  // The default build names its level; a PHX_NATIVE one says "native".
  EXPECT_EQ(b.native, b.x86_level == "native") << b.x86_level;
  EXPECT_EQ(b.x86_level.rfind("x86-64", 0) == 0 || b.native, true) << b.x86_level;
#endif
  EXPECT_FALSE(b.cpu_model.empty());
  ASSERT_EQ(b.kernels.size(), 2u);
  EXPECT_EQ(b.kernels[0].kernel, "gram");
}

TEST(BuildInfoTest, CpuFeaturesMatchTheKernelsItAllows) {
  const CpuFeatures& f = HostCpuFeatures();
  EXPECT_TRUE(CpuRunsKernel("scalar"));
  EXPECT_EQ(CpuRunsKernel("avx2"), f.avx2 && f.fma);
  EXPECT_EQ(CpuRunsKernel("avx512"), f.avx512f && f.avx512vl && f.avx512bw && f.avx512dq);
  EXPECT_FALSE(CpuRunsKernel("sse9"));
  EXPECT_TRUE(IsKernelVariant("avx512"));
  EXPECT_FALSE(IsKernelVariant("AVX2"));
#if defined(__AVX2__) && defined(__FMA__)
  // A binary built for AVX2 only starts on a CPU that has it.
  EXPECT_TRUE(CpuRunsKernel("avx2"));
#endif
}

TEST(BuildInfoTest, JsonHasEveryField) {
  const BuildInfo b = Sample();
  auto j = nlohmann::json::parse(BuildInfoJson(b), nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j["version"], b.version);
  EXPECT_EQ(j["compiler"], b.compiler);
  EXPECT_EQ(j["x86_level"], b.x86_level);
  EXPECT_EQ(j["native"], b.native);
  EXPECT_EQ(j["cpu"]["model"], b.cpu_model);
  EXPECT_EQ(j["cpu"]["avx2"], b.cpu.avx2);
  EXPECT_EQ(j["cpu"]["fma"], b.cpu.fma);
  EXPECT_EQ(j["cpu"]["avx512f"], b.cpu.avx512f);
  EXPECT_EQ(j["kernels"]["gram"], "avx2");
  EXPECT_EQ(j["kernels"]["optimizer"], "scalar");
}

TEST(BuildInfoTest, TextNamesCpuAndKernels) {
  const std::string t = BuildInfoText(Sample());
  EXPECT_NE(t.find("kernels:   gram=avx2 optimizer=scalar\n"), std::string::npos) << t;
  EXPECT_NE(t.find(Sample().cpu_model), std::string::npos) << t;
  EXPECT_NE(t.find("PHX_NATIVE="), std::string::npos) << t;
}

TEST(BuildInfoTest, GaugeCarriesTheFactsAsLabels) {
  MetricsRegistry registry;
  BuildInfo b = Sample();
  b.cpu_model = "quote \" and\nnewline";  // not a label, but the version is
  b.version = "1.2.3 \"x\"";
  ExportBuildInfo(b, registry);
  ExportBuildInfo(b, registry);  // idempotent: one series
  const std::string text = registry.RenderPrometheus();
  EXPECT_NE(text.find("# TYPE phalanx_build_info gauge\n"), std::string::npos) << text;
  EXPECT_NE(text.find("phalanx_build_info{version=\"1.2.3 \\\"x\\\"\",compiler="),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(",gram_kernel=\"avx2\",optimizer_kernel=\"scalar\"} 1\n"), std::string::npos)
      << text;
  EXPECT_EQ(text.find("phalanx_build_info{"), text.rfind("phalanx_build_info{")) << text;
}

}  // namespace
}  // namespace phalanx
