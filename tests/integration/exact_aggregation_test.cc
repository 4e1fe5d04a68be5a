// The two-phase Gram protocol makes robust rules exact across shards: one
// synchronous round on a 3-server cluster must update the model by exactly
// the rule's direct form applied to the workers' full gradients.

#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "aggregators/aggregator.h"
#include "tests/testutil/process_cluster.h"
#include "worker/client.h"

namespace phalanx {
namespace {

using testutil::ProcessCluster;

constexpr int kWorkers = 6;
constexpr int kRows = 40;  // dense keys 0..39
constexpr int kDim = 12;   // tables.dense_row_dim
constexpr int kD = kRows * kDim;

struct WorkerResult {
  int32_t id = -1;
  std::vector<float> gradient;
  std::vector<float> before;
  std::vector<float> after;
  Status status;
};

// Worker i's gradient: honest ones scatter around a common direction, worker
// 0 is a far outlier and worker 1 flips its sign, so rules disagree.
std::vector<float> Gradient(int i) {
  std::mt19937_64 rng(100 + i);
  std::normal_distribution<double> noise(0.0, 1.0);
  std::mt19937_64 base_rng(7);
  std::vector<float> g(kD);
  for (int j = 0; j < kD; ++j) {
    double base = noise(base_rng) * 0.5 + 0.2;
    double v = base + 0.3 * noise(rng);
    if (i == 0) v = 8.0 + 3.0 * noise(rng);
    if (i == 1) v = -2.0 * base;
    g[j] = static_cast<float>(v);
  }
  return g;
}

void RunWorker(const std::string& endpoint, int index, WorkerResult* out) {
  worker::ClientOptions o;
  o.scheduler_endpoint = endpoint;
  o.request_timeout_ms = 60000;
  auto client = worker::Client::Create(o);
  if (!client.ok()) {
    out->status = client.status();
    return;
  }
  auto& c = **client;
  out->id = c.id();
  std::vector<uint64_t> keys(kRows);
  for (int k = 0; k < kRows; ++k) keys[k] = static_cast<uint64_t>(k);
  out->before.resize(kD);
  out->after.resize(kD);
  out->gradient = Gradient(index);
  out->status = c.Pull(0, keys, kDim, 0, out->before.data());
  if (!out->status.ok()) return;
  out->status = c.Push(0, keys, kDim, out->gradient.data(), 0);
  if (!out->status.ok()) return;
  out->status = c.Pull(0, keys, kDim, 1, out->after.data());
  c.Leave();
}

void CheckExact(const std::string& rule, int f, std::vector<std::string> extra_sets = {}) {
  std::vector<std::string> sets = {"cluster.mode=sync",
                                   "optimizer.kind=sgd",
                                   "optimizer.learning_rate=1.0",
                                   "tables.dense_row_dim=" + std::to_string(kDim),
                                   "aggregator.name=" + rule,
                                   "aggregator.f=" + std::to_string(f),
                                   "cluster.round_timeout_ms=60000"};
  sets.insert(sets.end(), extra_sets.begin(), extra_sets.end());
  ProcessCluster cluster("exact-" + rule, 3, kWorkers, sets);
  ASSERT_FALSE(cluster.endpoint().empty());
  std::vector<WorkerResult> results(kWorkers);
  std::vector<std::thread> threads;
  for (int i = 0; i < kWorkers; ++i) {
    threads.emplace_back(RunWorker, cluster.endpoint(), i, &results[i]);
  }
  for (auto& t : threads) t.join();
  for (auto& r : results) ASSERT_TRUE(r.status.ok()) << rule << ": " << r.status.ToString();
  // Every worker saw the same model before and after the round.
  for (auto& r : results) {
    ASSERT_EQ(r.before, results[0].before);
    ASSERT_EQ(r.after, results[0].after);
  }
  // The direct form on the full float32 gradients, columns in worker-id order
  // (the order the servers use).
  std::vector<int> order(kWorkers);
  for (int i = 0; i < kWorkers; ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](int a, int b) { return results[a].id < results[b].id; });
  Eigen::MatrixXd g(kD, kWorkers);
  for (int c = 0; c < kWorkers; ++c) {
    for (int j = 0; j < kD; ++j) g(j, c) = results[order[c]].gradient[j];
  }
  aggregators::AggregatorOptions ao;
  ao.name = rule;
  ao.f = f;
  auto agg = aggregators::CreateAggregator(ao);
  ASSERT_TRUE(agg.ok()) << agg.status().ToString();
  auto expected = (*agg)->Aggregate(g);
  ASSERT_TRUE(expected.ok()) << expected.status().ToString();
  Eigen::VectorXd delta(kD);
  for (int j = 0; j < kD; ++j) {
    delta[j] = static_cast<double>(results[0].before[j]) - static_cast<double>(results[0].after[j]);
  }
  double rel = (delta - *expected).norm() / std::max(1e-12, expected->norm());
  EXPECT_LT(rel, 1e-6) << rule << ": update differs from the direct form";
  // And it is not trivially the mean (the outliers make rules differ).
  if (rule != "mean") {
    Eigen::VectorXd mean = g.rowwise().mean();
    EXPECT_GT((mean - *expected).norm() / expected->norm(), 1e-3) << rule;
  }
}

TEST(ExactAggregationTest, Flag) { CheckExact("flag", 2); }
TEST(ExactAggregationTest, Krum) { CheckExact("krum", 1); }
TEST(ExactAggregationTest, GeometricMedian) { CheckExact("geometric-median", 1); }
TEST(ExactAggregationTest, Nna) { CheckExact("nna", 2); }
TEST(ExactAggregationTest, CenteredClipping) { CheckExact("centered-clipping", 1); }
TEST(ExactAggregationTest, NnmKrum) { CheckExact("nnm+krum", 1); }
TEST(ExactAggregationTest, CoordinateWiseMedian) { CheckExact("median", 1); }
TEST(ExactAggregationTest, Mean) { CheckExact("mean", 0); }

}  // namespace
}  // namespace phalanx
