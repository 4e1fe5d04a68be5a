// `phalanx launch local` on real processes when nodes die on their own
// (issue 13, items 6 and 10): the restart policy (--max-restarts) replaces a
// worker or a server killed by hand and the job finishes; without it the
// first death ends the job; and a job whose snapshots cannot be written ends
// non-zero with the failures in summary.json. Nodes are found through the
// launcher's "started NAME (pid N)" log lines and killed with SIGKILL.

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "ps/snapshot.h"
#include "tests/testutil/process.h"
#include "tests/testutil/process_cluster.h"

namespace phalanx {
namespace {

namespace fs = std::filesystem;
using testutil::Config;
using testutil::Process;
using testutil::ReadAll;
using testutil::TempDir;

std::vector<std::string> Sets(int rounds) {
  return {"train.rounds=" + std::to_string(rounds), "train.eval_every=" + std::to_string(rounds),
          "train.log_every=10", "cluster.servers=2", "cluster.workers=3",
          "cluster.heartbeat_ms=100", "cluster.heartbeat_timeout_ms=1000",
          "cluster.round_timeout_ms=4000", "cluster.request_timeout_ms=60000",
          "cluster.register_timeout_ms=30000",
          // Softmax trains 400 rounds in about 2 s: slow it down so that the
          // job is still running when the test kills a node.
          "train.step_delay_ms=50"};
}

std::vector<std::string> WithCheckpoints(std::vector<std::string> sets, const fs::path& dir) {
  sets.push_back("checkpoint.dir=\"" + dir.string() + "\"");
  sets.push_back("checkpoint.every_rounds=20");
  return sets;
}

// Starts `phalanx launch local` with its progress lines on stdout and its
// log in out/launcher.log.
void StartLaunch(Process& p, const fs::path& out, const std::vector<std::string>& sets,
                 const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {
      "launch", "local", "--config", Config("fashion-mnist-softmax"), "--out", out.string()};
  for (const auto& s : sets) {
    args.push_back("--set");
    args.push_back(s);
  }
  args.insert(args.end(), extra.begin(), extra.end());
  fs::create_directories(out);
  ASSERT_TRUE(p.Start(args, (out / "launcher.log").string()));
}

// The pid of node `name` from the launcher's log; -1 after timeout_ms.
pid_t PidOf(const fs::path& out, const std::string& name, int timeout_ms) {
  const std::regex re("started " + name + R"( \(pid (\d+)\))");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    std::string log = ReadAll(out / "launcher.log");
    std::smatch m;
    if (std::regex_search(log, m, re)) return static_cast<pid_t>(std::stoi(m[1]));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return -1;
}

// Reads the launcher's progress lines until one reports at least `round`.
bool WaitForRound(Process& p, int round, int timeout_ms) {
  const std::regex re(R"(round +(\d+)/)");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    auto line = p.ReadLine(timeout_ms);
    if (!line) return false;
    std::smatch m;
    if (std::regex_search(*line, m, re) && std::stoi(m[1]) >= round) return true;
  }
  return false;
}

// Waits until `dir` holds a snapshot of server `rank`.
bool WaitForSnapshot(const fs::path& dir, int rank, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!ps::ListSnapshots(dir.string(), rank).empty()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

nlohmann::json Summary(const fs::path& out) {
  std::ifstream in(out / "summary.json");
  return nlohmann::json::parse(in, nullptr, false);
}

// Restart-policy events in summary.json's fault list.
int PolicyRestarts(const nlohmann::json& summary) {
  int n = 0;
  for (const auto& f : summary["faults"]) n += f["kind"] == "crash" && f["event"] == "restart";
  return n;
}

TEST(RestartPolicyTest, WorkerKilledByHandIsRestarted) {
  fs::path out = TempDir("restart-worker");
  Process p;
  StartLaunch(p, out, Sets(400), {"--max-restarts", "1"});
  pid_t pid = PidOf(out, "worker-1", 60000);
  ASSERT_GT(pid, 0) << ReadAll(out / "launcher.log");
  ASSERT_TRUE(WaitForRound(p, 20, 180000)) << ReadAll(out / "launcher.log");
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  ASSERT_EQ(p.Wait(600000), 0) << ReadAll(out / "launcher.log");
  auto summary = Summary(out);
  ASSERT_FALSE(summary.is_discarded());
  EXPECT_EQ(summary["restarts"], 1);
  EXPECT_EQ(summary["rounds"], 400);
  EXPECT_EQ(PolicyRestarts(summary), 1);
  EXPECT_GT(summary["final_test_accuracy"].get<double>(), 0.5);
  EXPECT_NE(ReadAll(out / "faults.csv").find("worker-1 died (signal Killed); restart 1/1"),
            std::string::npos)
      << ReadAll(out / "faults.csv");
  EXPECT_NE(p.output().find("restarts 1/1"), std::string::npos) << p.output();
  // The replacement took rank 1 back and rejoined the running job.
  std::string log = ReadAll(out / "logs" / "worker-1.restart1.log");
  EXPECT_NE(log.find("worker 1: joining at round"), std::string::npos) << log;
}

TEST(RestartPolicyTest, ServerKilledByHandRestoresItsSnapshot) {
  fs::path out = TempDir("restart-server");
  fs::path ckpt = out / "ckpt";
  Process p;
  StartLaunch(p, out, WithCheckpoints(Sets(400), ckpt), {"--max-restarts", "1"});
  pid_t pid = PidOf(out, "server-1", 60000);
  ASSERT_GT(pid, 0) << ReadAll(out / "launcher.log");
  ASSERT_TRUE(WaitForSnapshot(ckpt, 1, 180000)) << ReadAll(out / "launcher.log");
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  ASSERT_EQ(p.Wait(600000), 0) << ReadAll(out / "launcher.log");
  auto summary = Summary(out);
  ASSERT_FALSE(summary.is_discarded());
  EXPECT_EQ(summary["restarts"], 1);
  EXPECT_EQ(summary["rounds"], 400);
  EXPECT_EQ(PolicyRestarts(summary), 1);
  // The replacement restored a snapshot and said what it missed.
  ASSERT_TRUE(summary["updates_lost"].is_number()) << summary.dump(2);
  EXPECT_GE(summary["updates_lost"].get<int>(), 0);
  std::string log = ReadAll(out / "logs" / "server-1.restart1.log");
  EXPECT_NE(log.find("restored from"), std::string::npos) << log;
  EXPECT_EQ(summary["snapshot_failures"], 0);
  ASSERT_EQ(summary["server_snapshots"].size(), 2u);
  for (const auto& s : summary["server_snapshots"]) {
    EXPECT_GT(s["snapshots"].get<int>(), 0) << s.dump();
    EXPECT_GE(s["last_snapshot_round"].get<int>(), 20) << s.dump();
  }
}

TEST(RestartPolicyTest, DefaultStillFailsFast) {
  fs::path out = TempDir("restart-none");
  Process p;
  StartLaunch(p, out, Sets(400));
  pid_t pid = PidOf(out, "worker-1", 60000);
  ASSERT_GT(pid, 0) << ReadAll(out / "launcher.log");
  ASSERT_TRUE(WaitForRound(p, 20, 180000)) << ReadAll(out / "launcher.log");
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  EXPECT_NE(p.Wait(600000), 0);
  std::string log = ReadAll(out / "launcher.log");
  EXPECT_NE(log.find("worker-1 failed (signal Killed)"), std::string::npos) << log;
  EXPECT_EQ(log.find("restart 1/"), std::string::npos) << log;
}

// The checkpoint folder turns into a regular file after the first snapshot:
// every later write fails (ENOTDIR, also as root), and the job must say so.
TEST(RestartPolicyTest, SnapshotFailuresEndTheJobNonZero) {
  fs::path out = TempDir("snapshot-fail");
  fs::path ckpt = out / "ckpt";
  Process p;
  StartLaunch(p, out, WithCheckpoints(Sets(300), ckpt));
  ASSERT_TRUE(WaitForSnapshot(ckpt, 0, 180000)) << ReadAll(out / "launcher.log");
  fs::remove_all(ckpt);
  std::ofstream(ckpt) << "not a directory\n";
  EXPECT_NE(p.Wait(600000), 0);
  std::string log = ReadAll(out / "launcher.log");
  EXPECT_NE(log.find("could not be written"), std::string::npos) << log;
  auto summary = Summary(out);
  ASSERT_FALSE(summary.is_discarded()) << log;
  EXPECT_GT(summary["snapshot_failures"].get<int>(), 0) << summary.dump(2);
  ASSERT_EQ(summary["server_snapshots"].size(), 2u);
  for (const auto& s : summary["server_snapshots"]) {
    EXPECT_GT(s["snapshot_failures"].get<int>(), 0) << s.dump();
  }
  EXPECT_GE(summary["server_snapshots"][0]["last_snapshot_round"].get<int>(), 20);
  EXPECT_NE(p.output().find("snapshot failures"), std::string::npos) << p.output();
}

}  // namespace
}  // namespace phalanx
