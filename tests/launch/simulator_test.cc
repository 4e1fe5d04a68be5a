// The federated simulator (launch/sim/simulator.h) on real Fashion-MNIST:
// determinism across thread counts, the FedFix/sync equivalence through the
// whole loop, lazy client memory, bad configs, non-finite clients.

#include "launch/sim/simulator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "launch/sim/sim_config.h"
#include "worker/dataset.h"
#include "worker/partition.h"

namespace phalanx::launch {
namespace {

const worker::TrainTest& Data() {
  static const worker::TrainTest* data = [] {
    auto r = worker::LoadFashionMnist(worker::kDefaultFashionMnistDir);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    auto* tt = new worker::TrainTest(r.ok() ? std::move(*r) : worker::TrainTest{});
    worker::TruncateDataset(&tt->train, 6000);
    worker::TruncateDataset(&tt->test, 500);
    return tt;
  }();
  return *data;
}

const char* kBase = R"(
[simulation]
clients = 12
time_budget = 4.0
eval_every = 1.0
[data]
alpha = 0.3
[model]
kind = "softmax"
[local]
steps = 3
batch_size = 16
learning_rate = 0.05
[speed]
profile = "F-80"
)";

SimConfig Config(const std::string& extra, const std::vector<std::string>& sets = {}) {
  auto c = ParseSimConfig(std::string(kBase) + extra, sets);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? *c : SimConfig{};
}

RunResult RunOnce(const SimConfig& c, int threads, size_t index = 0) {
  auto sim = Simulator::Create(c, &Data());
  EXPECT_TRUE(sim.ok()) << sim.status().ToString();
  if (!sim.ok()) return {};
  auto r = (*sim)->Run(index, threads);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : RunResult{};
}

TEST(SimulatorTest, ResultsDoNotDependOnTheThreadCount) {
  for (const char* alg : {"async", "fedbuff", "fedfix", "fedavg", "fedasync"}) {
    auto c = Config("[server]\nalgorithm = \"" + std::string(alg) +
                        "\"\nbuffer_size = 3\nclients_per_round = 6\n",
                    {"speed.profile=lognormal", "simulation.concurrency=8"});
    auto one = RunOnce(c, 1);
    auto two = RunOnce(c, 2);
    auto three = RunOnce(c, 3);
    ASSERT_FALSE(one.final_model.empty()) << alg;
    EXPECT_GT(one.server_steps, 0) << alg;
    EXPECT_EQ(one.final_model, two.final_model) << alg;
    EXPECT_EQ(one.final_model, three.final_model) << alg;
    EXPECT_EQ(one.server_steps, three.server_steps) << alg;
    ASSERT_EQ(one.curve.size(), three.curve.size());
    for (size_t i = 0; i < one.curve.size(); ++i) {
      EXPECT_EQ(one.curve[i].test_accuracy, three.curve[i].test_accuracy) << alg;
      EXPECT_EQ(one.curve[i].test_loss, three.curve[i].test_loss) << alg;
    }
  }
}

TEST(SimulatorTest, TrainingLearnsAndStalenessFollowsTheAlgorithm) {
  auto c = Config(R"(
[[runs]]
name = "sync"
algorithm = "fedavg"
[[runs]]
name = "async"
algorithm = "async"
)");
  auto sync = RunOnce(c, 0, 0);
  auto async = RunOnce(c, 0, 1);
  EXPECT_GT(sync.final_accuracy, sync.curve.front().test_accuracy + 0.2);
  EXPECT_EQ(sync.server_steps, 4);  // rounds of max τ = 1 in T = 4
  EXPECT_EQ(sync.staleness_mean, 0.0);
  // Async: every client always busy, mean staleness ≈ M − 1 (docs/federated.md).
  EXPECT_GT(async.server_steps, 4 * 12);
  EXPECT_NEAR(async.staleness_mean, 11.0, 2.5);
}

TEST(SimulatorTest, FedFixWithWindowAtLeastMaxTauEqualsSyncFedAvg) {
  auto c = Config(R"(
[[runs]]
name = "sync"
algorithm = "fedavg"
[[runs]]
name = "fedfix"
algorithm = "fedfix"
window = 1.0
)");
  auto sync = RunOnce(c, 2, 0);
  auto fix = RunOnce(c, 2, 1);
  EXPECT_EQ(sync.server_steps, fix.server_steps);
  EXPECT_EQ(sync.final_model, fix.final_model);
}

TEST(SimulatorTest, FedBuffWithBufferOneEqualsAsyncThroughTheLoop) {
  auto c = Config(R"(
[[runs]]
name = "async"
algorithm = "async"
weights = "identical"
[[runs]]
name = "fedbuff1"
algorithm = "fedbuff"
buffer_size = 1
staleness = "constant"
)");
  auto a = RunOnce(c, 2, 0);
  auto b = RunOnce(c, 2, 1);
  EXPECT_EQ(a.server_steps, b.server_steps);
  EXPECT_EQ(a.final_model, b.final_model);
}

TEST(SimulatorTest, HundredThousandLazyClientsStaySmall) {
  auto c = Config(
      "[server]\nalgorithm = \"async\"\n",
      {"simulation.clients=100000", "simulation.concurrency=64", "data.samples_per_client=32",
       "simulation.time_budget=0.5", "simulation.eval_every=0", "local.steps=1"});
  auto sim = Simulator::Create(c, &Data());
  ASSERT_TRUE(sim.ok()) << sim.status().ToString();
  auto r = (*sim)->Run(0, 2);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GT(r->accepted, 0);
  EXPECT_LE(Simulator::IdleClientBytes(), 1024u);
  // The equal-size split stores class pools only, whatever the client count.
  worker::PartitionOptions po;
  po.num_clients = 100000;
  po.samples_per_client = 32;
  auto p = worker::Partition::Create(Data().train, po);
  ASSERT_TRUE(p.ok());
  EXPECT_LT(p->MemoryBytes(), Data().train.size() * 8 + 4096);
  std::vector<uint32_t> a, b;
  p->ClientIndices(99999, &a);
  p->ClientIndices(99999, &b);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.size(), 32u);
}

TEST(SimulatorTest, DirichletSplitsAreSkewedAndComplete) {
  worker::PartitionOptions po;
  po.method = "dirichlet";
  po.num_clients = 10;
  po.alpha = 0.1;
  auto p = worker::Partition::Create(Data().train, po);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  size_t total = 0;
  std::vector<uint32_t> idx;
  double max_share_sum = 0;
  for (int c = 0; c < 10; ++c) {
    p->ClientIndices(c, &idx);
    total += idx.size();
    std::vector<int> count(10);
    for (uint32_t i : idx) count[Data().train.labels[i]]++;
    max_share_sum += *std::max_element(count.begin(), count.end()) / double(idx.size());
  }
  EXPECT_EQ(total, Data().train.size());  // a partition: every example once
  EXPECT_GT(max_share_sum / 10, 0.5);     // α = 0.1: one class dominates each client
  po.method = "dirichlet-equal";
  auto q = worker::Partition::Create(Data().train, po);
  ASSERT_TRUE(q.ok());
  auto prop = q->LabelProportions(3);
  double s = 0;
  for (double x : prop) s += x;
  EXPECT_NEAR(s, 1.0, 1e-9);
  EXPECT_GT(*std::max_element(prop.begin(), prop.end()), 0.5);
}

TEST(SimulatorTest, NonFiniteClientsAreDroppedAndCounted) {
  auto c = Config("[server]\nalgorithm = \"fedavg\"\n[byzantine]\ncount = 3\nattack = \"nan\"\n");
  auto r = RunOnce(c, 2);
  EXPECT_EQ(r.dropped_nonfinite, 3 * 4);  // 3 liars per round, 4 rounds
  EXPECT_EQ(r.server_steps, 4);
  for (float x : r.final_model) ASSERT_TRUE(std::isfinite(x));
  EXPECT_GT(r.final_accuracy, r.curve.front().test_accuracy + 0.2);
}

TEST(SimulatorTest, DropoutNeverStallsARound) {
  auto c = Config("[server]\nalgorithm = \"fedavg\"\nclients_per_round = 4\n",
                  {"speed.dropout=0.5", "speed.profile=exponential"});
  auto r = RunOnce(c, 2);
  EXPECT_GT(r.dropped_dropout, 0);
  EXPECT_GT(r.server_steps, 2);
}

TEST(SimulatorTest, RobustRuleOverFedBuffResistsRandomClients) {
  auto c = Config(R"(
[server]
algorithm = "fedbuff"
buffer_size = 6
aggregator = "median"
[byzantine]
count = 2
attack = "random"
scale = 10.0
[[runs]]
name = "median"
[[runs]]
name = "mean"
aggregator = "mean"
)");
  auto robust = RunOnce(c, 2, 0);
  auto plain = RunOnce(c, 2, 1);
  EXPECT_GT(robust.final_accuracy, plain.final_accuracy + 0.2);
}

TEST(SimulatorTest, WritesMetricsSummaryAndPlots) {
  auto c = Config(
      "[[runs]]\nname = \"a\"\nalgorithm = \"async\"\n[[runs]]\nname = \"b\"\n"
      "algorithm = \"fedfix\"\nwindow = 0.5\n");
  auto sim = Simulator::Create(c, &Data());
  ASSERT_TRUE(sim.ok());
  const std::string dir = std::string(PHX_BINARY_DIR) + "/test-sim-out";
  std::filesystem::remove_all(dir);
  SimulateOptions o;
  o.out_dir = dir;
  auto r = (*sim)->RunAll(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  for (const char* f : {"metrics.csv", "summary.json", "accuracy.png", "staleness.png",
                        "curves/a.csv", "staleness/b.csv"}) {
    EXPECT_TRUE(std::filesystem::exists(dir + "/" + f)) << f;
  }
  std::ifstream in(dir + "/metrics.csv");
  std::string header;
  std::getline(in, header);
  EXPECT_NE(header.find("test_accuracy"), std::string::npos);
  EXPECT_NE(header.find("staleness_mean"), std::string::npos);
}

TEST(SimulatorTest, ImpossibleConfigsAreRefusedBeforeRunning) {
  auto bad = [](const std::vector<std::string>& sets, const std::string& needle,
                const std::string& extra = "") {
    auto c = ParseSimConfig(std::string(kBase) + extra, sets);
    Status s = c.status();
    if (c.ok()) {
      auto sim = Simulator::Create(*c, &Data());
      s = sim.status();
    }
    EXPECT_FALSE(s.ok()) << needle;
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.ToString();
  };
  bad({"data.alpha=0"}, "alpha");
  bad({"data.alpha=-1"}, "alpha");
  bad({"server.algorithm=fedbuff", "server.buffer_size=0"}, "buffer_size");
  bad({"server.algorithm=fedfix", "server.window=0"}, "window");
  bad({"server.algorithm=fedfix", "server.window=-0.5"}, "window");
  bad({"simulation.concurrency=13"}, "concurrency");
  bad({"speed.profile=weibull"}, "speed.profile");
  bad({"speed.profile=F-100"}, "F-X");
  bad({"data.partition=dirichlet", "data.alpha=0.01", "simulation.clients=3000"},
      "no examples after the Dirichlet");
  bad({"data.samples_per_client=0", "simulation.clients=100000"}, "empty");
  bad({"simulation.clientz=3"}, "unknown key 'simulation.clientz'");
  bad({"byzantine.attack=alie", "byzantine.count=1"}, "byzantine.attack");
  bad({"server.algorithm=fedbuff", "server.buffer_size=20", "server.redispatch=at-trigger"},
      "never fill");
  EXPECT_NE(ParseSimConfig("runs = 3\n").status().message().find("wrong shape"), std::string::npos);
  // Speed traces: negative and missing durations, unknown clients.
  const std::string dir = std::string(PHX_BINARY_DIR) + "/test-sim-traces";
  std::filesystem::create_directories(dir);
  auto trace = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir + "/" + name) << text;
    return "speed.trace=\"" + dir + "/" + name + "\"";
  };
  std::string full;
  for (int i = 0; i < 12; ++i) full += std::to_string(i) + " 0.5 1.0\n";
  bad({"speed.profile=trace", trace("neg.txt", full + "3 -1.0\n")}, "positive");
  bad({"speed.profile=trace", trace("nan.txt", full + "3 nan\n")}, "positive");
  bad({"speed.profile=trace", trace("missing.txt", "0 1.0\n1 0.5\n")}, "no durations for client 2");
  bad({"speed.profile=trace", trace("empty.txt", full + "4\n")}, "no duration");
  bad({"speed.profile=trace", trace("who.txt", full + "12 1.0\n")}, "client id");
  bad({"speed.profile=trace", "speed.trace=\"/nonexistent/trace\""}, "cannot open");
  bad({"speed.profile=trace"}, "speed.trace");
  // A valid trace runs, cycling each client's durations.
  auto c = ParseSimConfig(kBase,
                          {"speed.profile=trace", trace("ok.txt", full), "server.algorithm=async"});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto r = RunOnce(*c, 2);
  EXPECT_EQ(r.trainings, 12 * 5);  // ends at 0.5, 1.5, 2.0, 3.0, 3.5 within T = 4
}

}  // namespace
}  // namespace phalanx::launch
