// Recovery paths on real processes (ProcessCluster, loopback TCP): a server
// SIGKILLed and replaced from its snapshot, a worker killed and restarted,
// and the scheduler killed and restarted on the same port. Each run trains
// Fashion-MNIST softmax and must finish close to a fault-free run.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "ps/snapshot.h"
#include "tests/testutil/process.h"
#include "tests/testutil/process_cluster.h"

namespace phalanx {
namespace {

namespace fs = std::filesystem;
using testutil::Process;
using testutil::ProcessCluster;
using testutil::ReadAll;
using testutil::WaitForLine;

std::vector<std::string> Sets(const fs::path& ckpt, int rounds) {
  return {"train.rounds=" + std::to_string(rounds),
          "train.eval_every=" + std::to_string(rounds),
          "train.log_every=10",
          "cluster.heartbeat_ms=100",
          "cluster.heartbeat_timeout_ms=1000",
          "cluster.round_timeout_ms=4000",
          "cluster.request_timeout_ms=60000",
          "cluster.register_timeout_ms=30000",
          "checkpoint.dir=\"" + ckpt.string() + "\"",
          "checkpoint.every_rounds=20"};
}

// Reads progress lines until one reports at least `round`.
bool WaitForRound(Process& p, int round, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    auto line = WaitForLine(p, kProgressLinePrefix, ParseProgressLine, timeout_ms);
    if (!line) return false;
    if (line->round >= round) return true;
  }
  return false;
}

double FinalAccuracy(const Process& p) {
  auto line = LastLineWithPrefix(p.output(), kResultLinePrefix);
  auto result = line ? ParseResultLine(*line) : std::nullopt;
  return result ? result->final_test_accuracy : -1;
}

// Waits until the scheduler's /status says `role` rank `rank` is (not) alive.
bool WaitForAlive(const ProcessCluster& c, const std::string& role, int rank, bool alive,
                  int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    auto s = c.SchedulerStatus();
    if (!s.is_discarded() && s.contains("peers")) {
      for (const auto& n : s["peers"]) {
        if (n["role"] == role && n["rank"] == rank && n["alive"] == alive) return true;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

// A fault-free run with the same settings: the accuracy to stay close to.
double Baseline(const std::string& name, int workers, int rounds) {
  ProcessCluster c(name, 2, workers, Sets(testutil::TempDir(name + "-ckpt"), rounds));
  std::vector<Process*> w;
  for (int r = 0; r < workers; ++r) w.push_back(&c.AddWorker(r));
  for (auto* p : w) EXPECT_EQ(p->Wait(300000), 0);
  return FinalAccuracy(*w[0]);
}

TEST(RecoveryTest, ServerKilledIsReplacedFromItsSnapshot) {
  const int rounds = 300;
  fs::path ckpt = testutil::TempDir("srv-ckpt");
  ProcessCluster c("srv", 2, 3, Sets(ckpt, rounds));
  ASSERT_FALSE(c.endpoint().empty());
  Process& w0 = c.AddWorker(0);
  Process& w1 = c.AddWorker(1);
  Process& w2 = c.AddWorker(2);
  ASSERT_TRUE(WaitForRound(w0, 110, 120000)) << w0.output();
  ASSERT_FALSE(ps::ListSnapshots(ckpt.string(), 1).empty());
  c.server(1).Signal(SIGKILL);
  EXPECT_EQ(c.server(1).Wait(10000), 128 + SIGKILL);
  // The replacement asks for the same rank and restores; it registers once
  // the scheduler has declared its predecessor dead.
  Process replacement;
  fs::path log = c.dir() / "server-1-replacement.log";
  ASSERT_TRUE(replacement.Start(
      c.Args({"server", "--scheduler", c.endpoint(), "--rank", "1", "--restore"}), log.string()));
  EXPECT_EQ(w0.Wait(300000), 0) << ReadAll(c.dir() / "worker-0.log");
  EXPECT_EQ(w1.Wait(300000), 0);
  EXPECT_EQ(w2.Wait(300000), 0);
  EXPECT_NE(w0.output().find("\"round\":300"), std::string::npos);
  EXPECT_EQ(replacement.Wait(30000), 0) << ReadAll(log);
  EXPECT_EQ(c.scheduler().Wait(30000), 0);
  // The replacement reports how many rounds it lost: the cluster's round at
  // rejoin minus the snapshot's, at most one snapshot interval (plus the
  // round in flight) behind.
  std::string text = ReadAll(log);
  std::smatch m;
  std::regex lost(
      R"(table 0: restored at round (\d+), the cluster is at round (\d+): (\d+) update)");
  ASSERT_TRUE(std::regex_search(text, m, lost)) << text;
  int from = std::stoi(m[1]), at = std::stoi(m[2]), n = std::stoi(m[3]);
  EXPECT_EQ(n, at - from);
  EXPECT_GE(from, 100);
  EXPECT_LE(n, 41);
  double acc = FinalAccuracy(w0);
  double base = Baseline("srv-base", 3, rounds);
  EXPECT_GT(acc, 0.7);
  EXPECT_NEAR(acc, base, 0.03) << "with recovery " << acc << ", fault-free " << base;
}

TEST(RecoveryTest, WorkerKilledAndRestartedRejoinsAtTheCurrentRound) {
  // Long enough for the restarted worker to load its data while the others train.
  const int rounds = 1500;
  ProcessCluster c("wrk", 2, 3, Sets(testutil::TempDir("wrk-ckpt"), rounds));
  ASSERT_FALSE(c.endpoint().empty());
  Process& w0 = c.AddWorker(0);
  Process& w1 = c.AddWorker(1);
  Process& w2 = c.AddWorker(2);
  ASSERT_TRUE(WaitForRound(w2, 60, 120000));
  w2.Signal(SIGKILL);
  EXPECT_EQ(w2.Wait(10000), 128 + SIGKILL);
  // Rounds close without it once the scheduler declares it dead.
  ASSERT_TRUE(WaitForAlive(c, "worker", 2, false, 20000));
  ASSERT_TRUE(WaitForRound(w0, 100, 60000));
  Process& again = c.AddWorker(2);
  EXPECT_EQ(w0.Wait(300000), 0);
  EXPECT_EQ(w1.Wait(300000), 0);
  EXPECT_EQ(again.Wait(300000), 0) << ReadAll(c.dir() / "worker-2.log");
  // It joined at the round the cluster was in, not at 0, and ended with the others.
  std::string log = ReadAll(c.dir() / "worker-2.log");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(log, m, std::regex(R"(joining at round (\d+))"))) << log;
  EXPECT_GE(std::stoi(m[1]), 100);
  EXPECT_NE(again.output().find("\"round\":1500"), std::string::npos) << again.output();
  EXPECT_EQ(c.scheduler().Wait(30000), 0);
  EXPECT_GT(FinalAccuracy(w0), 0.7);
}

TEST(RecoveryTest, RunSurvivesASchedulerRestart) {
  const int rounds = 1500;
  ProcessCluster c("sched", 2, 2, Sets(testutil::TempDir("sched-ckpt"), rounds));
  ASSERT_FALSE(c.endpoint().empty());
  const std::string port = c.endpoint().substr(c.endpoint().rfind(':') + 1);
  Process& w0 = c.AddWorker(0);
  Process& w1 = c.AddWorker(1);
  ASSERT_TRUE(WaitForRound(w0, 100, 120000));
  auto before = c.SchedulerStatus();
  ASSERT_FALSE(before.is_discarded());
  int64_t old_epoch = before["epoch"].get<int64_t>();
  c.scheduler().Signal(SIGKILL);
  EXPECT_EQ(c.scheduler().Wait(10000), 128 + SIGKILL);
  // Training goes on without a scheduler (the data path does not need it).
  ASSERT_TRUE(WaitForRound(w0, 200, 60000));
  Process sched;
  fs::path log = c.dir() / "scheduler-restarted.log";
  ASSERT_TRUE(sched.Start(c.Args({"scheduler", "--port", port}), log.string()));
  auto http = WaitForLine(sched, kHttpLinePrefix, ParseHttpLine, 20000);
  ASSERT_TRUE(http.has_value()) << ReadAll(log);
  // Every node re-registers with its rank: the view is rebuilt, with epochs
  // continuing the old scheduler's.
  nlohmann::json status;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    status = nlohmann::json::parse(testutil::HttpGet(*http, "/status"), nullptr, false);
    if (!status.is_discarded() && status.value("formed", false)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(status.value("formed", false)) << ReadAll(log);
  EXPECT_GT(status["epoch"].get<int64_t>(), old_epoch);
  int servers = 0, workers = 0;
  for (const auto& n : status["peers"]) {
    servers += n["role"] == "server" && n["alive"] == true;
    workers += n["role"] == "worker" && n["alive"] == true;
  }
  EXPECT_EQ(servers, 2) << status.dump();
  EXPECT_GE(workers, 1) << status.dump();
  EXPECT_EQ(w0.Wait(300000), 0) << ReadAll(c.dir() / "worker-0.log");
  EXPECT_EQ(w1.Wait(300000), 0);
  EXPECT_NE(w0.output().find("\"round\":1500"), std::string::npos);
  // The restarted scheduler ends the job as usual: servers are told to stop.
  EXPECT_EQ(sched.Wait(30000), 0) << ReadAll(log);
  EXPECT_EQ(c.server(0).Wait(30000), 0);
  EXPECT_EQ(c.server(1).Wait(30000), 0);
  EXPECT_GT(FinalAccuracy(w0), 0.75);
}

TEST(RecoveryTest, NodesGiveUpOnASchedulerThatNeverReturns) {
  auto sets = Sets(testutil::TempDir("gone-ckpt"), 300);
  sets.push_back("cluster.register_timeout_ms=3000");
  ProcessCluster c("gone", 1, 1, sets);
  ASSERT_FALSE(c.endpoint().empty());
  Process& w0 = c.AddWorker(0);
  ASSERT_TRUE(WaitForRound(w0, 50, 120000));
  c.scheduler().Signal(SIGKILL);
  EXPECT_EQ(c.scheduler().Wait(10000), 128 + SIGKILL);
  // The worker may finish its rounds first; the server, which would wait
  // for a shutdown notice forever, stops with a clear error after the bound.
  EXPECT_NE(w0.Wait(60000), -1);
  EXPECT_EQ(c.server(0).Wait(60000), 1);
  std::string log = ReadAll(c.dir() / "server-0.log");
  EXPECT_NE(log.find("lost the scheduler at " + c.endpoint()), std::string::npos) << log;
}

TEST(RecoveryTest, RestoreWithoutASnapshotFailsClearly) {
  fs::path dir = testutil::TempDir("nosnap");
  Process p;
  ASSERT_TRUE(
      p.Start({"server", "--config", testutil::Config("fashion-mnist-softmax"), "--scheduler",
               "tcp://127.0.0.1:9", "--rank", "1", "--restore", "--set",
               "checkpoint.dir=\"" + dir.string() + "\"", "--set", "checkpoint.every_rounds=10"},
              (dir / "err.log").string()));
  EXPECT_EQ(p.Wait(20000), 1);
  std::string err = ReadAll(dir / "err.log");
  EXPECT_NE(err.find("no snapshot for server rank 1"), std::string::npos) << err;
}

}  // namespace
}  // namespace phalanx
