// Direct form vs Gram form, and the sharded two-phase protocol: for every rule
// on random and adversarial inputs, the Gram plan applied per slice (3 uneven
// slices, float64 and float32 shards) reproduces the direct aggregate to
// 1e-9 relative.

#include "aggregators/gram.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "aggregators/aggregator.h"

namespace phalanx::aggregators {
namespace {

struct RuleCase {
  std::string name;
  std::map<std::string, double> params;
};

std::vector<RuleCase> AllRules() {
  return {
      {"mean", {}},
      {"median", {}},
      {"trimmed-mean", {}},
      {"meamed", {}},
      {"krum", {}},
      {"krum", {{"paper", 1}}},
      {"multi-krum", {}},
      {"geometric-median", {{"T", 30}, {"tol", 0}}},
      {"geometric-median", {{"T", 5}, {"tol", 0}, {"nu", 1e-6}, {"start_at_mean", 1}}},
      {"centered-clipping", {{"tau", 2.0}, {"L", 3}}},
      {"mda", {}},
      {"bulyan", {}},
      {"nna", {}},
      {"nna", {{"pivot", 1}}},
      {"nna", {{"k", 3}}},
      {"nnm+mean", {}},
      {"monna", {{"idx", 2}}},
      {"flag", {}},
      {"flag", {{"r", 3}, {"lambda", 4}, {"n_its", 5}}},
      {"nnm+krum", {}},
      {"nnm+trimmed-mean", {}},
      {"nnm+median", {}},
      {"nnm+geometric-median", {{"T", 10}, {"tol", 0}}},
      {"nnm+centered-clipping", {{"tau", 2.0}, {"L", 2}}},
      {"nnm+mda", {}},
      {"nnm+bulyan", {}},
      {"nnm+flag", {{"r", 2}}},
  };
}

enum class Kind { kRandom, kFarOutliers, kSignFlip, kDuplicates, kZeroRow, kMixedScales };

Eigen::MatrixXd MakeInputs(Kind kind, int d, int n, int f, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  Eigen::VectorXd centre(d);
  for (int j = 0; j < d; ++j) centre[j] = normal(rng);
  Eigen::MatrixXd x(d, n);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < d; ++j) x(j, i) = centre[j] + normal(rng);
  }
  switch (kind) {
    case Kind::kRandom:
      break;
    case Kind::kFarOutliers:
      for (int i = 0; i < f; ++i) {
        for (int j = 0; j < d; ++j) x(j, i) = 1e3 * normal(rng);
      }
      break;
    case Kind::kSignFlip: {
      const Eigen::VectorXd mean = x.rightCols(n - f).rowwise().mean();
      for (int i = 0; i < f; ++i) x.col(i) = -10.0 * mean;
      break;
    }
    case Kind::kDuplicates:
      for (int i = 1; i <= f; ++i) x.col(i) = x.col(0);
      break;
    case Kind::kZeroRow:
      x.col(1).setZero();
      break;
    case Kind::kMixedScales:
      for (int i = 0; i < n; ++i) x.col(i) *= std::pow(10.0, i % 5 - 2);
      break;
  }
  return x;
}

double ScaledDiff(const Eigen::VectorXd& a, const Eigen::VectorXd& b) {
  return (a - b).lpNorm<Eigen::Infinity>() / (1.0 + b.lpNorm<Eigen::Infinity>());
}

std::unique_ptr<Aggregator> Make(const RuleCase& rc, int f, const Eigen::MatrixXd& x) {
  AggregatorOptions o{rc.name, f, rc.params, 7};
  if (rc.name.find("centered-clipping") != std::string::npos) {
    o.center = x.rowwise().mean() * 0.5;  // a non-zero centre exercises the extra column
  }
  auto rule = CreateAggregator(o);
  EXPECT_TRUE(rule.ok()) << rc.name << ": " << rule.status().ToString();
  return rule.ok() ? std::move(rule).value() : nullptr;
}

class GramAgreementTest : public testing::TestWithParam<std::tuple<int, Kind>> {};

TEST_P(GramAgreementTest, DirectEqualsSlicedGramForEveryRule) {
  const auto [n, kind] = GetParam();
  const int f = (n - 3) / 4;  // valid for every rule, Bulyan included
  const int d = 257;          // uneven slices
  const Eigen::MatrixXd x = MakeInputs(kind, d, n, f, 1000 + n + static_cast<int>(kind));
  for (const RuleCase& rc : AllRules()) {
    SCOPED_TRACE(rc.name);
    auto direct_rule = Make(rc, f, x);
    auto gram_rule = Make(rc, f, x);
    ASSERT_TRUE(direct_rule && gram_rule);
    auto direct = direct_rule->Aggregate(x);
    ASSERT_TRUE(direct.ok()) << direct.status().ToString();
    auto sliced = AggregateViaGram(*gram_rule, x, 3);
    ASSERT_TRUE(sliced.ok()) << sliced.status().ToString();
    EXPECT_LE(ScaledDiff(*sliced, *direct), 1e-9);
    if (rc.name == "krum" || rc.name == "multi-krum" || rc.name == "mda" || rc.name == "bulyan" ||
        rc.name == "monna" || rc.name == "nna") {
      if (kind != Kind::kDuplicates) {
        EXPECT_EQ(gram_rule->selected(), direct_rule->selected());
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, GramAgreementTest,
                         testing::Combine(testing::Values(7, 15),
                                          testing::Values(Kind::kRandom, Kind::kFarOutliers,
                                                          Kind::kSignFlip, Kind::kDuplicates,
                                                          Kind::kZeroRow, Kind::kMixedScales)));

// The shard-side API with float32 gradients: partial Grams of 3 slices summed
// at the coordinator, the plan applied to each float slice.
TEST(GramProtocol, Float32ShardsReproduceDirectForm) {
  const int n = 11, f = 2, d = 1001;
  const Eigen::MatrixXf g = MakeInputs(Kind::kFarOutliers, d, n, f, 5).cast<float>();
  const Eigen::MatrixXd g64 = g.cast<double>();
  for (const RuleCase& rc : AllRules()) {
    SCOPED_TRACE(rc.name);
    auto coordinator = Make(rc, f, g64);
    auto direct_rule = Make(rc, f, g64);
    ASSERT_TRUE(coordinator && direct_rule);
    const std::vector<int64_t> begin = {0, 100, 600, d};
    const int k = coordinator->num_extra_columns(n);
    Eigen::MatrixXd gram = Eigen::MatrixXd::Zero(n + k, n + k);
    std::vector<Eigen::MatrixXd> extras;
    for (int s = 0; s < 3; ++s) {
      const int64_t rows = begin[s + 1] - begin[s];
      auto e = coordinator->ExtraColumns(n, begin[s], rows, Eigen::VectorXd());
      ASSERT_TRUE(e.ok()) << e.status().ToString();
      extras.push_back(*e);
      auto part = PartialGram(g.middleRows(begin[s], rows), extras.back());
      ASSERT_TRUE(part.ok());
      gram += *part;
    }
    auto plan = coordinator->PlanFromGram(gram, n);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    Eigen::VectorXd out(d);
    for (int s = 0; s < 3; ++s) {
      const int64_t rows = begin[s + 1] - begin[s];
      auto part = ApplyGramPlan(*plan, g.middleRows(begin[s], rows), extras[s]);
      ASSERT_TRUE(part.ok()) << part.status().ToString();
      out.segment(begin[s], rows) = *part;
    }
    auto direct = direct_rule->Aggregate(g64);
    ASSERT_TRUE(direct.ok());
    EXPECT_LE(ScaledDiff(out, *direct), 1e-9);
  }
}

TEST(GramProtocol, PartialGramIsSymmetricAndMatchesEigen) {
  const Eigen::MatrixXf g = MakeInputs(Kind::kRandom, 70000, 9, 0, 3).cast<float>();
  for (bool parallel : {false, true}) {
    auto gram = PartialGram(g, parallel);
    ASSERT_TRUE(gram.ok());
    const Eigen::MatrixXd ref = g.cast<double>().transpose() * g.cast<double>();
    EXPECT_LE((*gram - ref).lpNorm<Eigen::Infinity>(), 1e-10 * ref.lpNorm<Eigen::Infinity>());
    EXPECT_EQ(*gram, gram->transpose());
  }
  // Deterministic whatever the thread count.
  EXPECT_EQ(*PartialGram(g, false), *PartialGram(g, true));
}

TEST(GramProtocol, ShapeErrors) {
  const Eigen::MatrixXf g = Eigen::MatrixXf::Ones(10, 3);
  EXPECT_FALSE(PartialGram(g, Eigen::MatrixXd::Ones(9, 1)).ok());
  GramPlan plan;
  plan.mixing = Eigen::VectorXd::Ones(4);
  plan.coefficients = Eigen::VectorXd::Ones(1);
  EXPECT_FALSE(ApplyGramPlan(plan, g, Eigen::MatrixXd(10, 0)).ok());
  plan.mixing = Eigen::MatrixXd::Identity(3, 3);
  plan.coordinatewise_rule = "nope";
  EXPECT_FALSE(ApplyGramPlan(plan, g, Eigen::MatrixXd(10, 0)).ok());
  auto rule = CreateAggregator({"krum", 1, {}, 1});
  ASSERT_TRUE(rule.ok());
  EXPECT_FALSE((*rule)->PlanFromGram(Eigen::MatrixXd::Identity(4, 5), 4).ok());
  EXPECT_FALSE((*rule)->PlanFromGram(Eigen::MatrixXd::Identity(4, 4), 5).ok());
  Eigen::MatrixXd bad = Eigen::MatrixXd::Identity(5, 5);
  bad(1, 2) = NAN;
  EXPECT_FALSE((*rule)->PlanFromGram(bad, 5).ok());
}

TEST(GramProtocol, SeededColumnsDependOnlyOnGlobalRow) {
  const Eigen::MatrixXd all = SeededUniformColumns(42, 0, 100, 3);
  const Eigen::MatrixXd part = SeededUniformColumns(42, 30, 20, 3);
  EXPECT_EQ(part, all.middleRows(30, 20));
  EXPECT_LT(all.maxCoeff(), 0.5);
  EXPECT_GE(all.minCoeff(), -0.5);
  EXPECT_NE(SeededUniformColumns(43, 0, 100, 3), all);
}

}  // namespace
}  // namespace phalanx::aggregators
