#include "worker/byzantine.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

namespace phalanx::worker {
namespace {

ByzantineOptions Opts(const std::string& attack) {
  ByzantineOptions o;
  o.attack = attack;
  o.total_workers = 15;
  o.byzantine_workers = 3;
  return o;
}

TEST(ByzantineTest, ValidatesOptions) {
  EXPECT_TRUE(ValidateByzantine(Opts("alie")).ok());
  EXPECT_EQ(ValidateByzantine(Opts("telepathy")).code(), StatusCode::kInvalidArgument);
  auto o = Opts("random");
  o.from_round = -1;
  EXPECT_FALSE(ValidateByzantine(o).ok());
  o = Opts("alie");
  o.estimate_batches = 1;
  EXPECT_FALSE(ValidateByzantine(o).ok());
}

TEST(ByzantineTest, ActiveFromRound) {
  auto o = Opts("sign-flip");
  o.from_round = 5;
  ByzantineBehaviour b(o);
  EXPECT_FALSE(b.active(4));
  EXPECT_TRUE(b.active(5));
  EXPECT_FALSE(ByzantineBehaviour(Opts("none")).active(100));
}

TEST(ByzantineTest, ValueFreeAttacks) {
  std::vector<float> g = {1, -2, 3};
  ASSERT_TRUE(ByzantineBehaviour(Opts("sign-flip")).Corrupt(g, {}).ok());
  EXPECT_EQ(g, (std::vector<float>{-1, 2, -3}));
  auto o = Opts("random");
  o.scale = 2.0;
  std::vector<float> r(1000, 0.0f);
  ASSERT_TRUE(ByzantineBehaviour(o).Corrupt(r, {}).ok());
  double mean = std::accumulate(r.begin(), r.end(), 0.0) / r.size();
  EXPECT_NEAR(mean, 1.0, 0.1);
  for (float x : r) EXPECT_TRUE(x >= 0 && x < 2);
  std::vector<float> n(4, 1.0f);
  ASSERT_TRUE(ByzantineBehaviour(Opts("nan")).Corrupt(n, {}).ok());
  for (float x : n) EXPECT_TRUE(std::isnan(x));
  ASSERT_TRUE(ByzantineBehaviour(Opts("inf")).Corrupt(n, {}).ok());
  for (float x : n) EXPECT_TRUE(std::isinf(x));
}

TEST(ByzantineTest, AlieAndFoeUseOwnSamples) {
  // Two sample gradients (columns): {1, 2} and {3, 6}; mean {2, 4}, std {1.414, 2.828}.
  std::vector<float> samples = {1, 2, 3, 6};
  std::vector<float> g(2);
  auto a = Opts("alie");
  a.tau = 1.0;
  ASSERT_TRUE(ByzantineBehaviour(a).Corrupt(g, samples).ok());
  EXPECT_NEAR(g[0], 2 + std::sqrt(2.0), 1e-5);
  EXPECT_NEAR(g[1], 4 + std::sqrt(8.0), 1e-5);
  auto f = Opts("foe");
  f.tau = 0.5;
  ASSERT_TRUE(ByzantineBehaviour(f).Corrupt(g, samples).ok());
  EXPECT_NEAR(g[0], -1.0, 1e-6);
  EXPECT_NEAR(g[1], -2.0, 1e-6);
  // Too few samples is an error, not garbage.
  EXPECT_FALSE(ByzantineBehaviour(a).Corrupt(g, std::vector<float>{1, 2}).ok());
}

}  // namespace
}  // namespace phalanx::worker
