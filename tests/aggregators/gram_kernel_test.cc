// Every Gram kernel variant this CPU runs against the scalar one, on random
// and adversarial blocks (NaN, Inf, denormals, lengths that are not a
// multiple of the vector width, column counts that are not a multiple of the
// tile), and the choice of variant (PHX_KERNEL refusing what cannot run).

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "aggregators/gram.h"
#include "aggregators/internal/gram_dispatch.h"

namespace phalanx::aggregators::internal {
namespace {

enum class Fill { kRandom, kNonFinite, kDenormal, kMixedScales };

// A kGramBlockRows x padded block, zero past (len, m) as the kernels need.
std::vector<double> MakeBlock(Fill fill, std::ptrdiff_t len, std::ptrdiff_t m,
                              std::ptrdiff_t padded, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<double> block(static_cast<size_t>(kGramBlockRows * padded), 0.0);
  for (std::ptrdiff_t c = 0; c < m; ++c) {
    for (std::ptrdiff_t r = 0; r < len; ++r) {
      double v = normal(rng);
      if (fill == Fill::kDenormal) v *= 1e-310;
      if (fill == Fill::kMixedScales) v *= std::pow(10.0, static_cast<double>(c % 5) * 30 - 60);
      block[r + c * kGramBlockRows] = v;
    }
  }
  if (fill == Fill::kNonFinite && len > 2 && m > 2) {
    block[1 + 0 * kGramBlockRows] = std::numeric_limits<double>::quiet_NaN();
    block[len - 1 + 2 * kGramBlockRows] = std::numeric_limits<double>::infinity();
  }
  return block;
}

std::vector<double> RunKernel(const GramKernel& k, Fill fill, std::ptrdiff_t len, std::ptrdiff_t m,
                              uint64_t seed) {
  // Every variant reads the same block, padded for the widest of them.
  const std::ptrdiff_t padded = (m + 11) / 12 * 12 + 8;
  const std::vector<double> block = MakeBlock(fill, len, m, padded, seed);
  std::vector<double> acc(static_cast<size_t>(m * m), 0.0);
  k.accumulate(block.data(), len, m, acc.data(), m);
  return acc;
}

void ExpectClose(const std::vector<double>& want, const std::vector<double>& got, std::ptrdiff_t m,
                 const std::string& what) {
  for (std::ptrdiff_t j = 0; j < m; ++j) {
    for (std::ptrdiff_t i = 0; i < m; ++i) {
      const double w = want[i + j * m], g = got[i + j * m];
      if (j > i) {
        EXPECT_EQ(g, 0.0) << what << " wrote the upper triangle at " << i << "," << j;
      } else if (std::isnan(w)) {
        EXPECT_TRUE(std::isnan(g)) << what << " at " << i << "," << j;
      } else if (std::isinf(w)) {
        EXPECT_EQ(g, w) << what << " at " << i << "," << j;
      } else {
        // Rounding of a dot product of <= 256 terms is bounded relative to
        // the norms (Cauchy-Schwarz), not to the result, which may cancel.
        const double scale = std::sqrt(std::abs(want[i + i * m]) * std::abs(want[j + j * m]));
        EXPECT_NEAR(g, w, 1e-13 * scale + 1e-320) << what << " at " << i << "," << j;
      }
    }
  }
}

TEST(GramKernel, EveryVariantMatchesScalar) {
  const std::vector<const GramKernel*> kernels = SupportedGramKernels();
  ASSERT_FALSE(kernels.empty());
  EXPECT_STREQ(kernels.front()->name, "scalar");
  for (const GramKernel* k : kernels) {
    for (Fill fill : {Fill::kRandom, Fill::kNonFinite, Fill::kDenormal, Fill::kMixedScales}) {
      for (std::ptrdiff_t len : {1, 3, 7, 9, 100, 255, 256}) {
        for (std::ptrdiff_t m : {1, 2, 3, 5, 7, 13, 15, 16, 17, 23}) {
          const uint64_t seed = static_cast<uint64_t>(len * 131 + m);
          const std::string what = std::string(k->name) + " fill " +
                                   std::to_string(static_cast<int>(fill)) + " len " +
                                   std::to_string(len) + " m " + std::to_string(m);
          ExpectClose(RunKernel(ScalarGramKernel(), fill, len, m, seed),
                      RunKernel(*k, fill, len, m, seed), m, what);
        }
      }
    }
  }
}

TEST(GramKernel, PartialGramOfEveryVariantMatchesScalarAndIgnoresThreads) {
  // d spans several 32768-row chunks and ends in a short block; n + k = 17
  // is not a multiple of any tile.
  const Eigen::Index d = 70001;
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal;
  Eigen::MatrixXf g(d, 14);
  for (Eigen::Index c = 0; c < g.cols(); ++c) {
    for (Eigen::Index r = 0; r < d; ++r) g(r, c) = normal(rng);
  }
  const Eigen::MatrixXd extras = Eigen::MatrixXd::Random(d, 3);
  const Eigen::MatrixXd want = PartialGramWith(ScalarGramKernel(), g, extras, true);
  for (const GramKernel* k : SupportedGramKernels()) {
    const Eigen::MatrixXd par = PartialGramWith(*k, g, extras, true);
    const Eigen::MatrixXd ser = PartialGramWith(*k, g, extras, false);
    EXPECT_TRUE((par.array() == ser.array()).all()) << k->name << ": threads changed the result";
    EXPECT_TRUE((par.array() == par.transpose().array()).all()) << k->name;
    EXPECT_LE((par - want).cwiseAbs().maxCoeff(), 1e-11 * want.cwiseAbs().maxCoeff()) << k->name;
    const Eigen::MatrixXd g64 = g.cast<double>();
    const Eigen::MatrixXd par64 = PartialGramWith(*k, g64, extras, true);
    EXPECT_LE((par64 - want).cwiseAbs().maxCoeff(), 1e-11 * want.cwiseAbs().maxCoeff()) << k->name;
  }
}

TEST(GramKernel, ChoiceDefaultsToTheWidestAndRefusesWhatCannotRun) {
  const std::vector<const GramKernel*> kernels = SupportedGramKernels();
  auto best = ChooseGramKernel("");
  ASSERT_TRUE(best.ok());
  EXPECT_EQ(*best, kernels.back());
  for (const GramKernel* k : kernels) {
    auto chosen = ChooseGramKernel(k->name);
    ASSERT_TRUE(chosen.ok()) << k->name;
    EXPECT_EQ(*chosen, k);
  }
  auto unknown = ChooseGramKernel("sse9");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().ToString().find("unknown Gram kernel"), std::string::npos);
  bool refused_one = false;
  for (const char* name : {"avx2", "avx512"}) {
    bool runs = false;
    for (const GramKernel* k : kernels) runs = runs || std::string(k->name) == name;
    if (runs) continue;
    auto refused = ChooseGramKernel(name);
    ASSERT_FALSE(refused.ok()) << name;
    EXPECT_NE(refused.status().ToString().find("cannot run"), std::string::npos);
    EXPECT_NE(refused.status().ToString().find("scalar"), std::string::npos);
    refused_one = true;
  }
  if (!refused_one) GTEST_SKIP() << "this CPU runs every variant; nothing to refuse";
}

TEST(GramKernel, NameIsTheActiveKernel) {
  const auto& active = ActiveGramKernel();
  if (active.ok()) {
    EXPECT_EQ(GramKernelName(), (*active)->name);
  } else {
    EXPECT_EQ(GramKernelName().rfind("none (", 0), 0u);
  }
}

}  // namespace
}  // namespace phalanx::aggregators::internal
