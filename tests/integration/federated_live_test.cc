// Live federated mode end to end (cluster.mode = "federated"): real scheduler,
// server and worker processes; 12 clients hosted by 3 workers train a softmax
// model on a Dirichlet(0.1) split of Fashion-MNIST against 2 servers, which
// apply FedBuff, FedAsync or FedFix (wall-clock windows, clients waiting for
// the window close) per shard (ps/federated_shard.h). Also: bad
// federated configs are refused before any process starts.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "aggregators/gram.h"
#include "tests/testutil/process.h"
#include "tests/testutil/process_cluster.h"

namespace phalanx {
namespace {

namespace fs = std::filesystem;
using testutil::HttpGet;
using testutil::Process;
using testutil::ProcessCluster;
using testutil::ReadAll;
using testutil::TempDir;
using testutil::WaitForLine;

// Value of the first sample line starting with `name` (Prometheus text); -1 if absent.
double Sample(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

class FederatedLiveTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FederatedLiveTest, ClientsLearnAndStalenessIsRecorded) {
  const std::string algorithm = GetParam();
  ProcessCluster cluster(
      "federated-" + algorithm, 2, 3,
      {"cluster.mode=federated", "federated.algorithm=" + algorithm, "federated.clients=12",
       "federated.buffer_size=3", "federated.duration_s=6", "federated.time_unit_ms=50",
       "federated.eval_every_s=1", "data.max_test=1000"});
  ASSERT_FALSE(cluster.endpoint().empty());
  Process& w0 = cluster.AddWorker(0);
  cluster.AddWorker(1);
  cluster.AddWorker(2);
  // Mid-run, after a few evaluations: both shards have taken steps and
  // recorded the staleness of what they accepted.
  std::optional<ProgressLine> line;
  for (int i = 0; i < 4; ++i) {
    line = WaitForLine(w0, kProgressLinePrefix, ParseProgressLine, 60000);
    ASSERT_TRUE(line) << w0.output() << ReadAll(cluster.dir() / "worker-0.log");
  }
  auto status = cluster.SchedulerStatus();
  int servers = 0;
  for (const auto& p : status["peers"]) {
    if (p["role"] != "server") continue;
    ++servers;
    std::string metrics = HttpGet(p["http_port"].get<int>(), "/metrics");
    EXPECT_GT(Sample(metrics, "phalanx_federated_accepted_total"), 0) << metrics;
    EXPECT_GT(Sample(metrics, "phalanx_federated_version"), 0) << metrics;
    // 12 clients in flight: most updates land after others moved the model.
    EXPECT_GT(Sample(metrics, "phalanx_federated_staleness_count"), 0) << metrics;
    EXPECT_GT(Sample(metrics, "phalanx_federated_staleness_sum"), 0) << metrics;
  }
  EXPECT_EQ(servers, 2) << status.dump();
  // Every worker's /status says which kernel variants its process runs.
  int workers = 0;
  for (const auto& p : status["peers"]) {
    if (p["role"] != "worker" || p["alive"] != true) continue;
    auto ws = nlohmann::json::parse(HttpGet(p["http_port"].get<int>(), "/status"), nullptr, false);
    ASSERT_FALSE(ws.is_discarded());
    if (ws.value("state", "") == "starting") continue;  // not registered yet
    ++workers;
    EXPECT_EQ(ws["build"]["kernels"]["gram"], std::string(aggregators::GramKernelName()))
        << ws.dump();
    EXPECT_FALSE(ws["build"]["compiler"].get<std::string>().empty()) << ws.dump();
  }
  EXPECT_GE(workers, 1) << status.dump();
  auto result = WaitForLine(w0, kResultLinePrefix, ParseResultLine, 60000);
  ASSERT_TRUE(result) << w0.output() << ReadAll(cluster.dir() / "worker-0.log");
  // Chance is 0.1; a few seconds of non-IID clients get well past it.
  EXPECT_GT(result->final_test_accuracy, 0.5) << w0.output();
  EXPECT_EQ(w0.Wait(30000), 0) << ReadAll(cluster.dir() / "worker-0.log");
  EXPECT_EQ(cluster.scheduler().Wait(30000), 0);
}

INSTANTIATE_TEST_SUITE_P(Algorithms, FederatedLiveTest,
                         ::testing::Values("fedbuff", "fedasync", "fedfix"));

// Each bad config: exit code != 0 before any process starts, with the
// offending key named on stderr.
TEST(FederatedLiveConfigTest, BadConfigsAreRefusedClearly) {
  fs::path dir = TempDir("federated-bad");
  const std::string config = testutil::Config("fashion-mnist-fedbuff");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"federated.buffer_size=0", "buffer_size"},
      {"federated.window=-1", "window"},
      {"federated.algorithm=fedsgd", "algorithm must be"},
      {"federated.algorithm=fedavg", "not available in live mode"},
      {"federated.rule=krum", "not coordinate-wise"},
      {"federated.clients=2", "exceeds federated.clients"},
      {"federated.alpha=0", "federated.alpha"},
      {"federated.speed=fast", "federated.speed"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& [set, expect] = cases[i];
    std::vector<std::string> args = {"launch",   "local",
                                     "--config", config,
                                     "--out",    (dir / ("out" + std::to_string(i))).string(),
                                     "--set",    set};
    if (set == "federated.window=-1") {
      args.push_back("--set");
      args.push_back("federated.algorithm=fedfix");
    }
    Process p;
    fs::path log = dir / ("bad" + std::to_string(i) + ".log");
    ASSERT_TRUE(p.Start(args, log.string()));
    EXPECT_NE(p.Wait(30000), 0) << set;
    std::string err = ReadAll(log) + p.output();
    EXPECT_NE(err.find(expect), std::string::npos) << set << ": " << err;
    EXPECT_FALSE(fs::exists(dir / ("out" + std::to_string(i)) / "logs" / "server-0.log")) << set;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace phalanx
