// Network faults on real traffic: a small Fashion-MNIST cluster (softmax,
// 2 servers, 3 workers) with every node in its own network namespace, run by
// the local launcher with a fault schedule. Needs root and netns; skipped
// with a message otherwise.

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "launch/cluster/local_launcher.h"
#include "launch/faults/netns.h"

namespace phalanx::launch {
namespace {

namespace fs = std::filesystem;

class NetFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Status s = NetnsAvailable();
    if (!s.ok())
      GTEST_SKIP() << "network fault tests need root and network namespaces: " << s.ToString();
    if (!fs::exists("/usr/share/datasets/fashion-mnist")) {
      GTEST_SKIP() << "Fashion-MNIST is not installed (scripts/setup.sh)";
    }
    dir_ = fs::temp_directory_path() /
           ("phalanx-netfault-" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "-" +
            std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // Runs the softmax job with `faults` appended to its config.
  Result<LaunchResult> Run(const std::string& faults, std::vector<std::string> sets = {}) {
    std::ifstream in(std::string(PHX_SOURCE_DIR) + "/launch/configs/fashion-mnist-softmax.toml");
    std::stringstream ss;
    ss << in.rdbuf() << "\n" << faults;
    fs::path cfg = dir_ / "job.toml";
    std::ofstream(cfg) << ss.str();
    LaunchOptions o;
    o.config_path = cfg.string();
    o.overrides = {"cluster.workers=3", "train.rounds=600", "train.eval_every=300",
                   "train.log_every=10", "data.max_test=2000"};
    o.overrides.insert(o.overrides.end(), sets.begin(), sets.end());
    o.out_dir = (dir_ / "run").string();
    o.self_exe = std::string(PHX_BINARY_DIR) + "/phalanx";
    o.quiet = true;
    o.require_network_faults = true;
    return LaunchLocal(o, nullptr);
  }

  // The events of faults[index].
  static std::vector<AppliedFault> Events(const LaunchResult& r, int index) {
    std::vector<AppliedFault> out;
    for (const auto& f : r.faults) {
      if (f.index == index) out.push_back(f);
    }
    return out;
  }

  static void ExpectNoErrors(const LaunchResult& r) {
    for (const auto& f : r.faults) {
      EXPECT_NE(f.event, "error") << "faults[" << f.index << "]: " << f.detail;
      EXPECT_NE(f.event, "refused") << "faults[" << f.index << "]: " << f.detail;
    }
  }

  // No namespace or link of this process is left behind.
  static void ExpectCleanedUp() {
    std::string mine = "phx-" + std::to_string(getpid());
    auto ns = RunTool({"ip", "netns", "list"});
    ASSERT_TRUE(ns.ok());
    EXPECT_EQ(ns->find(mine), std::string::npos) << *ns;
    auto links = RunTool({"ip", "-o", "link", "show"});
    ASSERT_TRUE(links.ok());
    EXPECT_EQ(links->find(mine), std::string::npos);
    EXPECT_EQ(links->find("px" + std::to_string(getpid()) + "h"), std::string::npos);
  }

  fs::path dir_;
};

TEST_F(NetFaultTest, PacketLossOnAWorkerLink) {
  auto r = Run(R"(
[[faults]]
kind = "loss"
node = "worker-1"
loss_pct = 10
at_round = 20
until_round = 100
)",
               {"train.rounds=200"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectNoErrors(*r);
  auto ev = Events(*r, 0);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].event, "start");
  EXPECT_GE(ev[0].round, 20);
  EXPECT_EQ(ev[1].event, "end");
  EXPECT_GE(ev[1].round, 100);
  EXPECT_EQ(r->rounds, 200);
  EXPECT_GT(r->final_test_accuracy, 0.5);
  // The run folder has the log.
  std::ifstream csv(dir_ / "run" / "faults.csv");
  std::string header, first;
  std::getline(csv, header);
  std::getline(csv, first);
  EXPECT_EQ(header.rfind("time_s,round,index,kind,node,event", 0), 0u) << header;
  EXPECT_NE(first.find(",loss,worker-1,start,"), std::string::npos) << first;
  auto summary = nlohmann::json::parse(std::ifstream(dir_ / "run" / "summary.json"));
  EXPECT_EQ(summary["faults"].size(), 2u);
  ExpectCleanedUp();
}

TEST_F(NetFaultTest, PartitionOfAServerFromTheScheduler) {
  // 3 s without the scheduler, under the failure detector's 6 s: the server
  // keeps serving and training finishes. Enough rounds that the job is still
  // running when the partition starts at 2 s (1,500 rounds can end before it).
  auto r = Run(R"(
[[faults]]
kind = "partition"
node = "server-1"
peer = "scheduler"
at_s = 2
until_s = 5
)",
               {"cluster.heartbeat_timeout_ms=6000", "train.rounds=6000"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectNoErrors(*r);
  auto ev = Events(*r, 0);
  ASSERT_GE(ev.size(), 1u);
  EXPECT_EQ(ev[0].event, "start");
  EXPECT_GE(ev[0].time_s, 2.0);
  if (ev.size() == 2) {
    EXPECT_EQ(ev[1].event, "end");
    EXPECT_GE(ev[1].time_s, 5.0);
  }
  EXPECT_EQ(r->rounds, 6000);
  EXPECT_GT(r->final_test_accuracy, 0.5);
  ExpectCleanedUp();
}

TEST_F(NetFaultTest, ProxyDelayOnOneWorkerServerLink) {
  auto r = Run(R"(
[[faults]]
kind = "delay"
node = "worker-0"
peer = "server-1"
delay_ms = 2
jitter_ms = 1
at_round = 10
until_round = 300
)");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectNoErrors(*r);
  auto ev = Events(*r, 0);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0].event, "start");
  EXPECT_EQ(ev[1].event, "end");
  EXPECT_EQ(ev[2].event, "traffic");
  // Worker 0's pulls and pushes to server 1 really went through the proxy
  // (DNAT in its namespace): the dense model half, both ways, every round.
  EXPECT_GT(ev[2].proxied_bytes, 100000) << ev[2].detail;
  EXPECT_EQ(r->rounds, 600);
  EXPECT_GT(r->final_test_accuracy, 0.5);
  ExpectCleanedUp();
}

}  // namespace
}  // namespace phalanx::launch
