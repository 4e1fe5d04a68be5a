// Every optimizer-row variant this machine runs (avx2, avx512) against the
// scalar one, through whole tables: random and adversarial rows (NaN, Inf,
// denormals, zeros, negative accumulators), widths that are not multiples of
// the vector widths, the serial and the partition-parallel pipelines.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/cpu.h"
#include "ps/internal/optimizer_dispatch.h"
#include "ps/table.h"

namespace phalanx::ps {
namespace {

using internal::CreateTableWithKernel;

struct Case {
  std::string name;
  OptimizerOptions opt;
};

std::vector<Case> Optimizers() {
  std::vector<Case> out;
  OptimizerOptions o;
  o.learning_rate = 0.05f;
  out.push_back({"sgd", o});
  o.weight_decay = 0.01f;
  out.push_back({"sgd+wd", o});
  o.momentum = 0.9f;
  out.push_back({"momentum", o});
  o = OptimizerOptions{};
  o.kind = OptimizerKind::kAdagrad;
  o.learning_rate = 0.05f;
  o.initial_accumulator = 0.1f;
  out.push_back({"adagrad", o});
  o = OptimizerOptions{};
  o.kind = OptimizerKind::kAdam;
  o.learning_rate = 0.01f;
  o.weight_decay = 0.001f;
  out.push_back({"adam", o});
  return out;
}

// A value for a row or gradient: mostly moderate random numbers, and with
// `adversarial` also NaN, +-Inf, denormals, signed zeros and large values.
float Value(std::mt19937& rng, bool adversarial) {
  std::uniform_real_distribution<float> u(-4.0f, 4.0f);
  if (adversarial) {
    switch (rng() % 12) {
      case 0:
        return std::numeric_limits<float>::quiet_NaN();
      case 1:
        return std::numeric_limits<float>::infinity();
      case 2:
        return -std::numeric_limits<float>::infinity();
      case 3:
        return std::numeric_limits<float>::denorm_min() * static_cast<float>(1 + rng() % 1000);
      case 4:
        return -1e-39f;
      case 5:
        return (rng() % 2) ? 0.0f : -0.0f;
      case 6:
        return 1e6f * u(rng);
      default:
        break;
    }
  }
  return u(rng);
}

// Equal to rounding: same bits, both NaN, or both finite and close. The
// variants differ in FMA contraction and summation order only.
::testing::AssertionResult Close(float scalar, float wide) {
  if (std::memcmp(&scalar, &wide, sizeof(float)) == 0) return ::testing::AssertionSuccess();
  if (std::isnan(scalar) && std::isnan(wide)) return ::testing::AssertionSuccess();
  if (std::isfinite(scalar) && std::isfinite(wide) &&
      std::abs(scalar - wide) <= 2e-5f * (1.0f + std::max(std::abs(scalar), std::abs(wide)))) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "scalar " << scalar << " vs " << wide;
}

std::map<uint64_t, std::vector<float>> Rows(const EmbeddingTable& t) {
  std::map<uint64_t, std::vector<float>> out;
  t.ForEach(
      [&](uint64_t key, std::span<const float> row) { out[key].assign(row.begin(), row.end()); });
  return out;
}

// Runs the same imports and updates on a scalar table and a `variant` one
// and compares every stored float (weights and state).
void Compare(const std::string& variant, const Case& c, uint32_t dim, bool adversarial,
             bool parallel) {
  SCOPED_TRACE(variant + " " + c.name + " dim " + std::to_string(dim) +
               (adversarial ? " adversarial" : " random") + (parallel ? " parallel" : " serial"));
  TableOptions o;
  o.dim = dim;
  o.optimizer = c.opt;
  o.num_partitions = 4;
  o.parallel_min_update = parallel ? 1 : SIZE_MAX;
  auto scalar = CreateTableWithKernel(o, "scalar");
  auto wide = CreateTableWithKernel(o, variant);
  ASSERT_TRUE(scalar.ok()) << scalar.status().ToString();
  ASSERT_TRUE(wide.ok()) << wide.status().ToString();
  std::mt19937 rng(dim * 131 + (adversarial ? 7 : 0) + (parallel ? 3 : 0));

  // Half the keys start from imported rows (adversarial weights and state),
  // the other half are created by the first update (initial rows).
  constexpr int kKeys = 40;
  const size_t rf = (*scalar)->row_floats();
  std::vector<uint64_t> imported;
  std::vector<float> rows;
  for (int k = 0; k < kKeys / 2; ++k) {
    imported.push_back(1000 + k);
    for (size_t f = 0; f < rf; ++f) rows.push_back(Value(rng, adversarial));
    if (c.opt.kind == OptimizerKind::kAdam) {
      // The step count's bits: small, and near saturation.
      const uint32_t t = (k % 5 == 0) ? UINT32_MAX - 1 : static_cast<uint32_t>(rng() % 50);
      std::memcpy(&rows.back(), &t, sizeof(t));
    }
  }
  (*scalar)->Import(imported, rows.data());
  (*wide)->Import(imported, rows.data());

  std::vector<uint64_t> keys;
  for (int k = 0; k < kKeys / 2; ++k) keys.push_back(1000 + k);
  for (int k = 0; k < kKeys / 2; ++k) keys.push_back(5000 + 17 * k);
  for (int step = 0; step < 3; ++step) {
    // A different subset each step: rows' Adam steps diverge.
    std::vector<uint64_t> batch;
    for (uint64_t k : keys) {
      if (step == 0 || rng() % 3 != 0) batch.push_back(k);
    }
    std::vector<float> grads(batch.size() * dim);
    for (float& g : grads) g = Value(rng, adversarial);
    (*scalar)->Apply(batch, grads.data());
    (*wide)->Apply(batch, grads.data());
  }
  const auto a = Rows(**scalar), b = Rows(**wide);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [key, row] : a) {
    const auto it = b.find(key);
    ASSERT_NE(it, b.end()) << key;
    for (size_t f = 0; f < rf; ++f) {
      ASSERT_TRUE(Close(row[f], it->second[f])) << "key " << key << " float " << f;
    }
  }
}

void CompareAll(const std::string& variant) {
  for (const Case& c : Optimizers()) {
    for (uint32_t dim : {1u, 7u, 16u, 17u, 100u}) {
      for (bool adversarial : {false, true}) {
        for (bool parallel : {false, true}) Compare(variant, c, dim, adversarial, parallel);
      }
    }
  }
}

TEST(OptimizerKernelsTest, Avx2MatchesScalar) {
  if (!CpuRunsKernel("avx2")) GTEST_SKIP() << "this CPU has no AVX2 + FMA";
  CompareAll("avx2");
}

TEST(OptimizerKernelsTest, Avx512MatchesScalar) {
  if (!CpuRunsKernel("avx512")) {
    GTEST_SKIP() << "this CPU lacks AVX-512 F/VL/BW/DQ: the avx512 variant cannot run here";
  }
  CompareAll("avx512");
}

TEST(OptimizerKernelsTest, ScalarMatchesItself) {
  // The harness itself: the reference against itself is bit-identical.
  CompareAll("scalar");
}

TEST(OptimizerKernelsTest, ChoiceFollowsTheCpuAndTheOverride) {
  const auto supported = internal::SupportedOptimizerKernels();
  ASSERT_FALSE(supported.empty());
  EXPECT_EQ(supported.front(), "scalar");
  auto widest = internal::ChooseOptimizerKernel("");
  ASSERT_TRUE(widest.ok());
  EXPECT_EQ(*widest, supported.back());
  auto scalar = internal::ChooseOptimizerKernel("scalar");
  ASSERT_TRUE(scalar.ok());
  EXPECT_EQ(*scalar, "scalar");
  auto bogus = internal::ChooseOptimizerKernel("sse9");
  ASSERT_FALSE(bogus.ok());
  EXPECT_NE(bogus.status().message().find("unknown optimizer kernel"), std::string::npos);
  if (!CpuRunsKernel("avx512")) {
    auto refused = internal::ChooseOptimizerKernel("avx512");
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.status().message().find("cannot run"), std::string::npos)
        << refused.status().ToString();
    TableOptions o;
    o.dim = 4;
    auto t = CreateTableWithKernel(o, "avx512");
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  }
  // The process's choice is what OptimizerKernelName reports.
  const auto& active = internal::ActiveOptimizerKernel();
  if (active.ok()) {
    EXPECT_EQ(OptimizerKernelName(), *active);
  }
}

}  // namespace
}  // namespace phalanx::ps
