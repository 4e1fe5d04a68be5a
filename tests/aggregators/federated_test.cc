// The federated server rules (aggregators/federated.h): the equivalences of
// docs/federated.md, the weight formulas of async FedAvg and FedFix, robust-rule
// composition, snapshots and bad input.

#include "aggregators/federated.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

namespace phalanx::aggregators {
namespace {

constexpr int kDim = 37;

std::vector<float> RandomVec(std::mt19937_64& rng, float scale = 0.1f) {
  std::normal_distribution<float> n(0.0f, scale);
  std::vector<float> v(kDim);
  for (auto& x : v) x = n(rng);
  return v;
}

std::unique_ptr<FederatedServer> Make(FederatedOptions o, int64_t m, std::vector<float> tau = {},
                                      std::vector<float> theta0 = {}) {
  if (theta0.empty()) theta0.assign(kDim, 0.5f);
  auto s = FederatedServer::Create(o, m, theta0, {}, std::move(tau));
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

ClientUpdate Update(int64_t c, const std::vector<float>& d, int64_t base) {
  ClientUpdate u;
  u.client = c;
  u.delta = d;
  u.base_version = base;
  return u;
}

TEST(FederatedTest, FedBuffWithBufferOneEqualsAsync) {
  FederatedOptions a;
  a.algorithm = "async";
  a.weights = "identical";
  a.server_lr = 0.7;
  FederatedOptions b;
  b.algorithm = "fedbuff";
  b.buffer_size = 1;
  b.staleness.fn = "constant";
  b.server_lr = 0.7;
  auto sa = Make(a, 5), sb = Make(b, 5);
  std::mt19937_64 rng(3);
  for (int i = 0; i < 50; ++i) {
    const auto d = RandomVec(rng);
    const int64_t base = std::max<int64_t>(0, sa->version() - i % 4);
    auto ra = sa->Submit(Update(i % 5, d, base));
    auto rb = sb->Submit(Update(i % 5, d, base));
    ASSERT_TRUE(ra.ok() && rb.ok());
    EXPECT_EQ(*ra, SubmitOutcome::kApplied);
    EXPECT_EQ(*rb, SubmitOutcome::kApplied);
  }
  EXPECT_EQ(sa->version(), sb->version());
  EXPECT_EQ(sa->model(), sb->model());  // bit-identical
}

TEST(FederatedTest, FedFixWithLongWindowEqualsSyncFedAvg) {
  const int m = 6;
  std::vector<float> tau;
  for (int i = 0; i < m; ++i) tau.push_back(static_cast<float>(FxTime(i, m, 80)));
  FederatedOptions fa;  // Fraboni's FL: full participation, w_i = p_i
  fa.algorithm = "fedavg";
  FederatedOptions ff;
  ff.algorithm = "fedfix";
  ff.window = 1.0;  // ≥ max τ
  auto sa = Make(fa, m, tau), sf = Make(ff, m, tau);
  std::mt19937_64 rng(5);
  for (int round = 0; round < 8; ++round) {
    auto parts = sa->BeginRound();
    ASSERT_TRUE(parts.ok());
    ASSERT_EQ(parts->size(), static_cast<size_t>(m));
    for (int c = 0; c < m; ++c) {
      const auto d = RandomVec(rng);
      ASSERT_TRUE(sa->Submit(Update(c, d, sa->version())).ok());
      auto r = sf->Submit(Update(c, d, sf->version()));
      ASSERT_TRUE(r.ok());
      EXPECT_EQ(*r, SubmitOutcome::kBuffered);
    }
    auto t = sf->Tick((round + 1) * 1.0);
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(*t, 1);
    EXPECT_EQ(sa->model(), sf->model()) << "round " << round;
  }
  EXPECT_EQ(sa->version(), sf->version());
}

TEST(FederatedTest, FedBuffOverAllClientsFromOneModelEqualsOneSyncRound) {
  const int m = 7;
  FederatedOptions fa;
  fa.algorithm = "fedavg";
  FederatedOptions fb;
  fb.algorithm = "fedbuff";
  fb.buffer_size = m;
  fb.staleness.fn = "sqrt";  // staleness 0 for everyone: φ = 1
  auto sa = Make(fa, m), sb = Make(fb, m);
  ASSERT_TRUE(sa->BeginRound().ok());
  std::mt19937_64 rng(9);
  for (int c = 0; c < m; ++c) {
    const auto d = RandomVec(rng);
    ASSERT_TRUE(sa->Submit(Update(c, d, 0)).ok());
    auto r = sb->Submit(Update(c, d, 0));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, c + 1 == m ? SubmitOutcome::kApplied : SubmitOutcome::kBuffered);
  }
  EXPECT_EQ(sa->version(), 1);
  EXPECT_EQ(sb->version(), 1);
  EXPECT_EQ(sa->model(), sb->model());
}

// One client, each training finishing before the next starts: async FedAvg
// with η_g = 1 is plain SGD on that client's objective.
TEST(FederatedTest, SequentialAsyncEqualsCentralizedSgd) {
  FederatedOptions a;
  a.algorithm = "async";
  a.weights = "identical";
  std::vector<float> target(kDim), sgd(kDim, 0.5f);
  for (int j = 0; j < kDim; ++j) target[j] = static_cast<float>(j) / kDim;
  auto s = Make(a, 1);
  const float lr = 0.1f;
  for (int step = 0; step < 30; ++step) {
    std::vector<float> delta(kDim);
    const auto& theta = s->model();
    for (int j = 0; j < kDim; ++j) delta[j] = -lr * (theta[j] - target[j]);
    ASSERT_TRUE(s->Submit(Update(0, delta, s->version())).ok());
    for (int j = 0; j < kDim; ++j) sgd[j] -= lr * (sgd[j] - target[j]);
  }
  for (int j = 0; j < kDim; ++j) EXPECT_NEAR(s->model()[j], sgd[j], 1e-6);
  EXPECT_EQ(s->state().staleness_histogram[0], 30);
}

TEST(FederatedTest, FraboniWeights) {
  const int m = 20;
  std::vector<float> tau;
  double inv = 0;
  for (int i = 0; i < m; ++i) {
    tau.push_back(static_cast<float>(FxTime(i, m, 80)));
    inv += 1.0 / tau.back();
  }
  EXPECT_NEAR(tau.front(), 1.0, 1e-7);
  EXPECT_NEAR(tau.back(), 0.2, 1e-7);
  EXPECT_NEAR(inv, 41.3, 0.05);  // Σ 1/τ_i for M = 20, F-80
  FederatedOptions a;
  a.algorithm = "async";
  auto s = Make(a, m, tau);
  // d_i / p_i = τ_i Σ 1/τ_j: 41.3 for the slowest, 8.3 for the fastest (docs/federated.md).
  EXPECT_NEAR(s->ClientWeight(0) * m, 41.3, 0.05);
  EXPECT_NEAR(s->ClientWeight(m - 1) * m, 8.26, 0.05);
  FederatedOptions f;
  f.algorithm = "fedfix";
  f.window = 0.2;
  auto sf = Make(f, m, tau);
  EXPECT_DOUBLE_EQ(sf->ClientWeight(0), 5.0 / m);      // ⌈1.0/0.2⌉ = 5
  EXPECT_DOUBLE_EQ(sf->ClientWeight(m - 1), 1.0 / m);  // ⌈0.2/0.2⌉ = 1
  FederatedOptions b;
  b.algorithm = "fedbuff";
  b.buffer_size = 4;
  EXPECT_DOUBLE_EQ(Make(b, m)->ClientWeight(3), 0.25);
}

TEST(FederatedTest, StalenessFunctions) {
  StalenessOptions s;
  EXPECT_EQ(StalenessWeight(s, 9), 1.0);
  s.fn = "polynomial";
  s.a = 0.5;
  EXPECT_DOUBLE_EQ(StalenessWeight(s, 3), 0.5);
  s.fn = "hinge";
  s.a = 10;
  s.b = 4;
  EXPECT_EQ(StalenessWeight(s, 4), 1.0);
  EXPECT_DOUBLE_EQ(StalenessWeight(s, 6), 1.0 / 21.0);
  s.fn = "sqrt";
  EXPECT_DOUBLE_EQ(StalenessWeight(s, 3), 0.5);
}

TEST(FederatedTest, FedAsyncMixesModels) {
  FederatedOptions o;
  o.algorithm = "fedasync";
  o.mix_alpha = 0.5;
  o.staleness = {"polynomial", 1.0, 0.0};
  auto s = Make(o, 2, {}, std::vector<float>(kDim, 1.0f));
  std::vector<float> base(kDim, 1.0f), delta(kDim, 1.0f);  // x_new = 2
  auto u = Update(0, delta, 0);
  u.base = base;
  ASSERT_TRUE(s->Submit(u).ok());
  EXPECT_FLOAT_EQ(s->model()[0], 1.5f);  // (1-0.5)·1 + 0.5·2
  u.base_version = 0;                    // staleness 1: α_t = 0.5 / 2
  ASSERT_TRUE(s->Submit(u).ok());
  EXPECT_FLOAT_EQ(s->model()[0], 0.75f * 1.5f + 0.25f * 2.0f);
  auto missing = Update(1, delta, 0);
  EXPECT_FALSE(s->Submit(missing).ok());  // fedasync needs the base model
}

TEST(FederatedTest, RobustRuleReplacesTheMeanOfABuffer) {
  FederatedOptions o;
  o.algorithm = "fedbuff";
  o.buffer_size = 5;
  o.staleness.fn = "constant";
  o.robust.name = "median";
  auto s = Make(o, 5, {}, std::vector<float>(kDim, 0.0f));
  std::vector<std::vector<float>> ds = {
      std::vector<float>(kDim, 1.0f), std::vector<float>(kDim, 2.0f),
      std::vector<float>(kDim, 3.0f), std::vector<float>(kDim, 4.0f),
      std::vector<float>(kDim, 1e6f)};  // a liar
  for (int c = 0; c < 5; ++c) ASSERT_TRUE(s->Submit(Update(c, ds[c], 0)).ok());
  EXPECT_FLOAT_EQ(s->model()[0], 3.0f);  // median, not the mean 2e5
  // fedavg + nna over a round, and flag over a FedFix window, run too.
  for (const char* rule : {"nna", "flag"}) {
    FederatedOptions r;
    r.algorithm = std::string(rule) == "nna" ? "fedavg" : "fedfix";
    r.window = 1.0;
    r.robust.name = rule;
    r.robust.f = 1;
    auto sr = Make(r, 5, {}, std::vector<float>(kDim, 0.0f));
    if (r.algorithm == "fedavg") ASSERT_TRUE(sr->BeginRound().ok());
    std::mt19937_64 rng(1);
    for (int c = 0; c < 5; ++c) {
      auto d = c == 4 ? std::vector<float>(kDim, 1e3f) : RandomVec(rng);
      ASSERT_TRUE(sr->Submit(Update(c, d, 0)).ok());
    }
    if (r.algorithm == "fedfix") ASSERT_TRUE(sr->Tick(1.0).ok());
    EXPECT_EQ(sr->version(), 1);
    EXPECT_LT(std::abs(sr->model()[0]), 1.0f) << rule;
  }
  FederatedOptions bad;
  bad.algorithm = "async";
  bad.robust.name = "krum";
  EXPECT_FALSE(FederatedServer::Create(bad, 3, std::vector<float>(kDim)).ok());
}

TEST(FederatedTest, NonFiniteAndStaleUpdatesAreDroppedAndCounted) {
  FederatedOptions o;
  o.algorithm = "fedavg";
  auto s = Make(o, 3);
  ASSERT_TRUE(s->BeginRound().ok());
  std::vector<float> good(kDim, 0.1f), nan(kDim, 0.1f);
  nan[5] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(*s->Submit(Update(0, nan, 0)), SubmitOutcome::kRejectedNonFinite);
  EXPECT_EQ(*s->Submit(Update(0, good, 0)), SubmitOutcome::kRejectedNotInRound);
  EXPECT_EQ(*s->Submit(Update(1, good, 0)), SubmitOutcome::kBuffered);
  auto closed = s->Abandon(2);  // dropout closes the round
  ASSERT_TRUE(closed.ok());
  EXPECT_TRUE(*closed);
  EXPECT_EQ(s->version(), 1);
  EXPECT_EQ(s->state().rejected_nonfinite, 1);
  for (float x : s->model()) EXPECT_TRUE(std::isfinite(x));

  FederatedOptions a;
  a.algorithm = "async";
  a.weights = "identical";
  a.max_staleness = 2;
  auto sa = Make(a, 2);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(sa->Submit(Update(0, good, sa->version())).ok());
  EXPECT_EQ(*sa->Submit(Update(1, good, 0)), SubmitOutcome::kRejectedStale);
  EXPECT_EQ(sa->state().rejected_stale, 1);
  EXPECT_EQ(sa->version(), 4);
}

TEST(FederatedTest, SnapshotRoundTripContinuesIdentically) {
  FederatedOptions o;
  o.algorithm = "fedbuff";
  o.buffer_size = 3;
  o.robust.name = "trimmed-mean";
  o.robust.f = 1;
  auto a = Make(o, 4);
  std::mt19937_64 rng(2);
  std::vector<std::vector<float>> ds;
  for (int i = 0; i < 12; ++i) ds.push_back(RandomVec(rng));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(a->Submit(Update(i % 4, ds[i], a->version())).ok());
  auto blob = a->SaveState();
  ASSERT_TRUE(blob.ok());
  auto b = Make(o, 4);
  ASSERT_TRUE(b->LoadState(*blob).ok());
  EXPECT_EQ(b->state().pending.size(), 2u);
  for (int i = 5; i < 12; ++i) {
    ASSERT_TRUE(a->Submit(Update(i % 4, ds[i], a->version())).ok());
    ASSERT_TRUE(b->Submit(Update(i % 4, ds[i], b->version())).ok());
  }
  EXPECT_EQ(a->model(), b->model());
  EXPECT_EQ(b->LoadState("garbage").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(b->LoadState(blob->substr(0, blob->size() / 2)).code(), StatusCode::kInvalidArgument);
  auto other = FederatedServer::Create(o, 4, std::vector<float>(3, 0.f));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other)->LoadState(*blob).code(), StatusCode::kInvalidArgument);  // model size
}

TEST(FederatedTest, BadInputIsRefusedWithTheKeyName) {
  auto expect_bad = [](FederatedOptions o, const std::string& needle) {
    Status s = ResolveFederatedOptions(&o);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << needle;
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
  };
  FederatedOptions o;
  o.algorithm = "fedbuff";
  o.buffer_size = 0;
  expect_bad(o, "buffer_size");
  o = {};
  o.algorithm = "fedfix";
  o.window = 0;
  expect_bad(o, "window");
  o.window = -1;
  expect_bad(o, "window");
  o = {};
  o.algorithm = "fedsgd";
  expect_bad(o, "algorithm");
  o = {};
  o.algorithm = "fedbuff";
  o.weights = "fraboni";
  expect_bad(o, "weights");
  o = {};
  o.staleness.fn = "exp";
  expect_bad(o, "staleness");
  o = {};
  o.server_lr = 0;
  expect_bad(o, "server_lr");
  o = {};
  o.algorithm = "fedasync";
  o.mix_alpha = 1.5;
  expect_bad(o, "mix_alpha");

  FederatedOptions a;
  a.algorithm = "async";
  EXPECT_FALSE(FederatedServer::Create(a, 0, std::vector<float>(kDim)).ok());
  EXPECT_FALSE(FederatedServer::Create(a, 2, {}).ok());
  EXPECT_FALSE(FederatedServer::Create(a, 2, std::vector<float>(kDim), {}, {1.0f, -1.0f}).ok());
  FederatedOptions r;
  r.clients_per_round = 5;
  EXPECT_FALSE(FederatedServer::Create(r, 4, std::vector<float>(kDim)).ok());
  auto s = Make(a, 2);
  std::vector<float> d(kDim, 0.f), short_d(3, 0.f);
  EXPECT_FALSE(s->Submit(Update(0, short_d, 0)).ok());
  EXPECT_FALSE(s->Submit(Update(7, d, 0)).ok());
  EXPECT_FALSE(s->Submit(Update(0, d, 5)).ok());  // a version from the future
  EXPECT_FALSE(s->BeginRound().ok());             // not fedavg
}

TEST(FederatedTest, FedAvgSamplesDistinctClients) {
  FederatedOptions o;
  o.clients_per_round = 10;
  auto s = Make(o, 1000);
  for (int r = 0; r < 3; ++r) {
    auto p = s->BeginRound();
    ASSERT_TRUE(p.ok());
    ASSERT_EQ(p->size(), 10u);
    for (size_t i = 1; i < p->size(); ++i) EXPECT_LT((*p)[i - 1], (*p)[i]);
    for (int64_t c : *p) ASSERT_TRUE(*s->Abandon(c) || c != p->back());
  }
  EXPECT_EQ(s->version(), 3);
  EXPECT_EQ(s->state().empty_steps, 3);
}

}  // namespace
}  // namespace phalanx::aggregators
