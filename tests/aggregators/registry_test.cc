// Registry, validation and shared properties of every rule: clear errors for
// bad names, parameters, f vs n, shapes and non-finite inputs; permutation
// invariance; identity on identical inputs; bounded output under attack.

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "aggregators/aggregator.h"
#include "aggregators/gram.h"
#include "aggregators/preaggregators.h"

namespace phalanx::aggregators {
namespace {

Eigen::MatrixXd Honest(int d, int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  Eigen::MatrixXd x(d, n);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < d; ++j) x(j, i) = 1.0 + 0.1 * normal(rng);
  }
  return x;
}

std::unique_ptr<Aggregator> MustCreate(const std::string& name, int f,
                                       std::map<std::string, double> params = {}) {
  auto rule = CreateAggregator({name, f, std::move(params), 1});
  EXPECT_TRUE(rule.ok()) << name << ": " << rule.status().ToString();
  return rule.ok() ? std::move(rule).value() : nullptr;
}

TEST(Registry, EveryNameCreatesAndNamesItself) {
  for (const std::string& name : AggregatorNames()) {
    auto rule = MustCreate(name, 1);
    ASSERT_NE(rule, nullptr);
    EXPECT_EQ(rule->name(), name);
    auto composed = MustCreate("nnm+" + name, 1);
    ASSERT_NE(composed, nullptr);
    EXPECT_FALSE(composed->coordinate_wise());
  }
  EXPECT_TRUE(MustCreate("median", 0)->coordinate_wise());
  EXPECT_FALSE(MustCreate("krum", 0)->coordinate_wise());
}

TEST(Registry, RejectsUnknownNamesAndParameters) {
  auto r = CreateAggregator({"krumm", 1, {}, 1});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("krumm"), std::string::npos);
  EXPECT_FALSE(CreateAggregator({"nnm+", 1, {}, 1}).ok());
  EXPECT_FALSE(CreateAggregator({"krum", -1, {}, 1}).ok());
  auto typo = CreateAggregator({"centered-clipping", 0, {{"tua", 1.0}}, 1});
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.status().message().find("tua"), std::string::npos);
  EXPECT_FALSE(CreateAggregator({"geometric-median", 0, {{"T", 2.5}}, 1}).ok());
  EXPECT_FALSE(CreateAggregator({"flag", 0, {{"eps", 0}}, 1}).ok());
  EXPECT_TRUE(CreateAggregator({"trmean", 1, {}, 1}).ok());
  EXPECT_TRUE(CreateAggregator({"nnm+mean", 1, {}, 1}).ok());
  auto pivot = CreateAggregator({"nna", 1, {{"pivot", 2}}, 1});
  ASSERT_FALSE(pivot.ok());
  EXPECT_NE(pivot.status().message().find("pivot"), std::string::npos);
  EXPECT_FALSE(CreateAggregator({"nna", 1, {{"pivot", 0.5}}, 1}).ok());
  EXPECT_FALSE(CreateAggregator({"nna", 1, {{"k", -1}}, 1}).ok());
  EXPECT_FALSE(
      CreateAggregator({"nna", 1, {{"T", 10}}, 1}).ok());  // pivot params are not forwarded
}

struct FCase {
  std::string name;
  int n;
  int f;
  std::map<std::string, double> params;
  std::string message;  // expected substring
};

TEST(Registry, ValidatesFAgainstN) {
  const std::vector<FCase> bad = {
      {"krum", 4, 2, {}, "n > 2f"},
      {"krum", 6, 2, {{"paper", 1}}, "n > 2f+2"},
      {"multi-krum", 5, 3, {}, "n > 2f"},
      {"trimmed-mean", 4, 2, {}, "n > 2f"},
      {"meamed", 4, 2, {}, "n > 2f"},
      {"mda", 6, 3, {}, "n > 2f"},
      {"monna", 6, 3, {}, "n > 2f"},
      {"monna", 6, 1, {{"idx", 6}}, "idx"},
      {"bulyan", 10, 2, {}, "n >= 4f+3"},
      {"nna", 4, 2, {}, "n > 2f"},
      {"nna", 6, 3, {{"pivot", 1}}, "n > 2f"},
      {"nna", 5, 1, {{"k", 6}}, "k=6"},
      {"nnm+mean", 3, 3, {}, "f < n"},
      {"nnm+median", 3, 3, {}, "f < n"},
  };
  for (const FCase& c : bad) {
    SCOPED_TRACE(c.name);
    auto rule = MustCreate(c.name, c.f, c.params);
    ASSERT_NE(rule, nullptr);
    const Eigen::MatrixXd x = Honest(5, c.n, 1);
    auto out = rule->Aggregate(x);
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(out.status().message().find(c.message), std::string::npos) << out.status().message();
    // The Gram form validates the same way.
    const Eigen::MatrixXd gram = x.transpose() * x;
    if (rule->num_extra_columns(c.n) == 0) {
      EXPECT_FALSE(rule->PlanFromGram(gram, c.n).ok());
    }
  }
  // The boundary cases are accepted.
  EXPECT_TRUE(MustCreate("krum", 2)->Aggregate(Honest(5, 5, 1)).ok());
  EXPECT_TRUE(MustCreate("krum", 2, {{"paper", 1}})->Aggregate(Honest(5, 7, 1)).ok());
  EXPECT_TRUE(MustCreate("bulyan", 2)->Aggregate(Honest(5, 11, 1)).ok());
  EXPECT_TRUE(MustCreate("nna", 2)->Aggregate(Honest(5, 5, 1)).ok());
  EXPECT_TRUE(MustCreate("nna", 2, {{"pivot", 1}})->Aggregate(Honest(5, 5, 1)).ok());
}

TEST(Registry, RejectsNonFiniteAndEmptyInputs) {
  for (const std::string& base : AggregatorNames()) {
    for (const std::string& name : std::vector<std::string>{base, "nnm+" + base}) {
      SCOPED_TRACE(name);
      auto rule = MustCreate(name, 1);
      ASSERT_NE(rule, nullptr);
      for (double bad : {NAN, INFINITY, -INFINITY}) {
        Eigen::MatrixXd x = Honest(6, 9, 2);
        x(3, 4) = bad;
        auto out = rule->Aggregate(x);
        ASSERT_FALSE(out.ok());
        EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
        EXPECT_NE(out.status().message().find("input 4"), std::string::npos)
            << out.status().message();
      }
      EXPECT_FALSE(rule->Aggregate(Eigen::MatrixXd(0, 9)).ok());
      EXPECT_FALSE(rule->Aggregate(Eigen::MatrixXd(5, 0)).ok());
    }
  }
}

// Rules that are symmetric in their inputs (not the pivot form).
std::vector<std::string> SymmetricRules() {
  return {"mean",
          "median",
          "trimmed-mean",
          "meamed",
          "krum",
          "multi-krum",
          "geometric-median",
          "centered-clipping",
          "mda",
          "bulyan",
          "nna",
          "nnm+mean",
          "flag",
          "nnm+krum",
          "nnm+trimmed-mean",
          "nnm+geometric-median"};
}

TEST(Properties, PermutationInvariance) {
  const Eigen::MatrixXd x = Honest(20, 11, 3);
  Eigen::PermutationMatrix<Eigen::Dynamic> perm(11);
  perm.setIdentity();
  std::mt19937 rng(4);
  std::shuffle(perm.indices().data(), perm.indices().data() + 11, rng);
  const Eigen::MatrixXd shuffled = x * perm;
  for (const std::string& name : SymmetricRules()) {
    SCOPED_TRACE(name);
    auto a = MustCreate(name, 2)->Aggregate(x);
    auto b = MustCreate(name, 2)->Aggregate(shuffled);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_LE((*a - *b).lpNorm<Eigen::Infinity>(), 1e-12 * (1 + a->lpNorm<Eigen::Infinity>()));
  }
}

TEST(Properties, IdentityOnIdenticalInputs) {
  const Eigen::VectorXd v = Honest(30, 1, 5).col(0);
  const Eigen::MatrixXd x = v.replicate(1, 11);
  for (const char* name :
       {"mean", "median", "trimmed-mean", "meamed", "krum", "multi-krum", "geometric-median", "mda",
        "bulyan", "nna", "monna", "nnm+mean", "nnm+krum", "nnm+geometric-median"}) {
    SCOPED_TRACE(name);
    auto out = MustCreate(name, 2)->Aggregate(x);
    ASSERT_TRUE(out.ok());
    EXPECT_LE((*out - v).lpNorm<Eigen::Infinity>(), 1e-12);
  }
  // Flag returns the unit direction times n/r (not rescaled: docs/aggregation-rules.md).
  auto fa = MustCreate("flag", 2)->Aggregate(x);
  ASSERT_TRUE(fa.ok());
  EXPECT_LE((*fa - v.normalized() * 11.0 / 6.0).lpNorm<Eigen::Infinity>(), 1e-10);
}

TEST(Properties, BoundedUnderByzantineInputs) {
  const int n = 15, f = 3;
  Eigen::MatrixXd x = Honest(40, n, 6);
  for (int i = 0; i < f; ++i) x.col(i).setConstant(1e6 * (i % 2 == 0 ? 1 : -1));
  const double honest_max = x.rightCols(n - f).cwiseAbs().maxCoeff();
  // Not nnm+mean (the former nna): NNM followed by a plain mean still averages
  // the Byzantine rows' own mixtures (each is 1/(n-f) of an outlier), so it is
  // only bounded relative to the outliers' size. nna's robust pivot is.
  for (const char* name :
       {"median", "trimmed-mean", "meamed", "krum", "multi-krum", "geometric-median", "mda",
        "bulyan", "flag", "nna", "nnm+krum", "nnm+trimmed-mean", "nnm+median"}) {
    SCOPED_TRACE(name);
    auto out = MustCreate(name, f)->Aggregate(x);
    ASSERT_TRUE(out.ok());
    EXPECT_LE(out->cwiseAbs().maxCoeff(), 2 * honest_max);
  }
  auto mean = MustCreate("mean", f)->Aggregate(x);
  EXPECT_GT(mean->cwiseAbs().maxCoeff(), 1e4);  // the non-robust baseline is dragged away
}

TEST(Properties, CenteredClippingIsStatefulInTheDirectForm) {
  const Eigen::MatrixXd x = Honest(10, 7, 8) * 10.0;
  auto rule = MustCreate("centered-clipping", 1, {{"tau", 1.0}, {"L", 1}});
  auto first = rule->Aggregate(x);
  auto second = rule->Aggregate(x);
  ASSERT_TRUE(first.ok() && second.ok());
  // A fresh rule centred on the first output computes the second.
  AggregatorOptions o{"centered-clipping", 1, {{"tau", 1.0}, {"L", 1}}, 1};
  o.center = *first;
  auto fresh = CreateAggregator(o);
  ASSERT_TRUE(fresh.ok());
  auto again = (*fresh)->Aggregate(x);
  ASSERT_TRUE(again.ok());
  EXPECT_LE((*again - *second).norm(), 1e-12);
  EXPECT_GT((*second - *first).norm(), 1e-3);
  // A centre of the wrong dimension is an error, not a crash.
  o.center = Eigen::VectorXd::Zero(3);
  EXPECT_FALSE((*CreateAggregator(o))->Aggregate(x).ok());
}

// The cluster failure that motivated nna's robust pivot (specs §2.3): 15
// inputs, 3 of them U[0,1)^d. The Byzantine rows' own NNM mixtures keep 3/12
// of the random vectors, so nnm+mean (the former nna) is biased by ~0.025 per
// coordinate; nna averages the n-f rows nearest the geometric median (or
// Krum) pivot, which are exactly the honest ones.
TEST(Properties, NnaRobustPivotResistsUniformNoise) {
  const int n = 15, f = 3, d = 1000;
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::normal_distribution<double> normal(0.0, 0.1);
  Eigen::VectorXd mu(d);
  for (int j = 0; j < d; ++j) mu[j] = 0.01 * ((j % 7) - 3);  // |mu| small
  Eigen::MatrixXd x(d, n);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < d; ++j) x(j, i) = i < f ? uniform(rng) : mu[j] + normal(rng);
  }
  const Eigen::VectorXd honest_mean = x.rightCols(n - f).rowwise().mean();
  std::vector<int> honest(n - f);
  for (int i = 0; i < n - f; ++i) honest[i] = f + i;
  for (double pivot : {0.0, 1.0}) {
    SCOPED_TRACE(pivot);
    auto rule = MustCreate("nna", f, {{"pivot", pivot}});
    auto out = rule->Aggregate(x);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_LE((*out - honest_mean).norm(), 1e-9);
    EXPECT_EQ(rule->selected(), honest);
    auto gram_rule = MustCreate("nna", f, {{"pivot", pivot}});
    auto sliced = AggregateViaGram(*gram_rule, x, 3);
    ASSERT_TRUE(sliced.ok()) << sliced.status().ToString();
    EXPECT_LE((*sliced - honest_mean).norm(), 1e-9);
    EXPECT_EQ(gram_rule->selected(), honest);
  }
  auto old = MustCreate("nnm+mean", f)->Aggregate(x);
  ASSERT_TRUE(old.ok());
  EXPECT_GT((*old - honest_mean).norm(), 0.5);
}

TEST(Properties, MdaTakesLexicographicallyFirstMinimalSubset) {
  // Columns 0..3 on a line: {0,1,2} and {1,2,3} both have diameter 2; the
  // lexicographically first one wins.
  Eigen::MatrixXd x(1, 4);
  x << 0, 1, 2, 3;
  auto rule = MustCreate("mda", 1);
  auto out = rule->Aggregate(x);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(rule->selected(), (std::vector<int>{0, 1, 2}));
  EXPECT_DOUBLE_EQ((*out)[0], 1.0);
}

TEST(Preaggregators, NnmAndClipping) {
  const Eigen::MatrixXd x = Honest(4, 5, 9);
  EXPECT_FALSE(NearestNeighborMixing(x, 5).ok());
  EXPECT_TRUE(NearestNeighborMixing(x, 4).ok());
  auto clipped = StaticClipping(x * 100, 2.0);
  ASSERT_TRUE(clipped.ok());
  for (Eigen::Index i = 0; i < clipped->cols(); ++i) {
    EXPECT_NEAR(clipped->col(i).norm(), 2.0, 1e-12);
  }
  EXPECT_FALSE(StaticClipping(x, 0.0).ok());
}

}  // namespace
}  // namespace phalanx::aggregators
