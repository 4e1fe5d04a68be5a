// Supervisor's restart policy over a fake NodeLauncher: which deaths are
// replaced, how many in all, with which command line, and when the job fails.

#include "launch/cluster/supervisor.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <csignal>

namespace phalanx::launch {
namespace {

// Nodes that run until the test makes them exit; records what was started.
class FakeLauncher final : public NodeLauncher {
 public:
  struct State {
    std::vector<NodeSpec> started;
    std::vector<NodeExit> exits;
  };
  explicit FakeLauncher(State* s) : s_(s) {}
  Result<NodeHandle> Start(const NodeSpec& spec) override {
    s_->started.push_back(spec);
    s_->exits.push_back({});
    return NodeHandle{static_cast<int>(s_->started.size()) - 1};
  }
  void Poll(int, std::vector<NodeOutput>*) override {}
  NodeExit Exit(NodeHandle node) const override { return s_->exits[node.id]; }
  void Stop(NodeHandle node) override { End(node.id, 0); }
  void Kill(NodeHandle node) override { s_->exits[node.id] = {true, SIGKILL}; }
  void Reap(NodeHandle, int) override {}
  std::string Describe(NodeHandle node) const override {
    return "pid " + std::to_string(1000 + node.id);
  }
  void End(int id, int code) {
    if (!s_->exits[id].exited) s_->exits[id] = {true, code << 8};
  }

 private:
  State* s_;
};

NodeSpec Spec(Role role, int rank) {
  NodeSpec s;
  s.role = role;
  s.rank = rank;
  s.name = role == Role::kScheduler ? "scheduler"
           : role == Role::kServer  ? "server-" + std::to_string(rank)
                                    : "worker-" + std::to_string(rank);
  s.argv = {"phalanx", RoleName(role)};
  s.log_path = "/tmp/logs/" + s.name + ".log";
  return s;
}

struct Fixture {
  FakeLauncher::State state;
  FakeLauncher* fake = nullptr;
  std::unique_ptr<Supervisor> sup;
  Fixture() {
    auto f = std::make_unique<FakeLauncher>(&state);
    fake = f.get();
    sup = std::make_unique<Supervisor>(std::move(f));
    EXPECT_TRUE(sup->Start(Spec(Role::kScheduler, 0)).ok());
    EXPECT_TRUE(sup->Start(Spec(Role::kServer, 0)).ok());
    EXPECT_TRUE(sup->Start(Spec(Role::kWorker, 0)).ok());
    EXPECT_TRUE(sup->Start(Spec(Role::kWorker, 1)).ok());
  }
};

constexpr std::chrono::milliseconds kNow{0};

auto Always(bool v) {
  return [v](const NodeSpec&) { return v; };
}

TEST(SupervisorTest, WithoutRestartsTheFirstDeathFailsTheJob) {
  Fixture f;
  f.state.exits[3] = {true, SIGKILL};
  EXPECT_TRUE(f.sup->RestartFailed(0, Always(true), kNow).empty());
  auto failure = f.sup->JobFailure(false);
  ASSERT_TRUE(failure);
  EXPECT_NE(failure->message().find("worker-1 failed"), std::string::npos) << failure->ToString();
}

TEST(SupervisorTest, ReplacesDeadNodesUpToTheLimitInAll) {
  Fixture f;
  f.state.exits[3] = {true, SIGKILL};  // worker-1
  auto r = f.sup->RestartFailed(2, Always(true), kNow);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].node, "worker-1");
  EXPECT_NE(r[0].detail.find("restart 1/2"), std::string::npos) << r[0].detail;
  EXPECT_FALSE(f.sup->JobFailure(false));
  ASSERT_EQ(f.state.started.size(), 5u);
  EXPECT_EQ(f.state.started[4].log_path, "/tmp/logs/worker-1.restart1.log");
  EXPECT_TRUE(f.state.started[4].capture_stdout);
  // The server exits non-zero: replaced with --restore (a snapshot exists).
  f.fake->End(1, 1);
  r = f.sup->RestartFailed(2, Always(true), kNow);
  ASSERT_EQ(r.size(), 1u);
  const auto& argv = f.state.started[5].argv;
  EXPECT_EQ(std::count(argv.begin(), argv.end(), "--restore"), 1);
  EXPECT_EQ(f.sup->policy_restarts(), 2);
  EXPECT_FALSE(f.sup->JobFailure(false));
  // Used up: the replacement's own death is not replaced and fails the job.
  f.fake->End(4, 1);
  EXPECT_TRUE(f.sup->RestartFailed(2, Always(true), kNow).empty());
  auto failure = f.sup->JobFailure(false);
  ASSERT_TRUE(failure);
  EXPECT_NE(failure->message().find("worker-1 failed (exit code 1)"), std::string::npos)
      << failure->ToString();
}

// The replacement waits for the scheduler to declare its predecessor dead;
// meanwhile the death is not a failure and the job is not over.
TEST(SupervisorTest, ReplacementStartsAfterTheDelay) {
  Fixture f;
  f.state.exits[3] = {true, SIGKILL};
  EXPECT_TRUE(f.sup->RestartFailed(1, Always(true), std::chrono::hours(1)).empty());
  EXPECT_EQ(f.sup->policy_restarts(), 1);
  EXPECT_TRUE(f.sup->restarts_due());
  EXPECT_FALSE(f.sup->JobFailure(false));
  EXPECT_EQ(f.state.started.size(), 4u);
  // Another death meanwhile: no restart left, so it fails the job.
  f.state.exits[2] = {true, SIGKILL};
  EXPECT_TRUE(f.sup->RestartFailed(1, Always(true), std::chrono::hours(1)).empty());
  ASSERT_TRUE(f.sup->JobFailure(false));
}

TEST(SupervisorTest, ServerWithoutSnapshotRestartsFresh) {
  Fixture f;
  f.state.exits[1] = {true, SIGKILL};
  auto r = f.sup->RestartFailed(1, Always(false), kNow);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_NE(r[0].detail.find("no snapshot"), std::string::npos) << r[0].detail;
  const auto& argv = f.state.started.back().argv;
  EXPECT_EQ(std::count(argv.begin(), argv.end(), "--restore"), 0);
  EXPECT_FALSE(f.state.started.back().capture_stdout);
}

TEST(SupervisorTest, ScheduledKillsAndCleanExitsAreNotRestarted) {
  Fixture f;
  ASSERT_TRUE(f.sup->KillByFault("worker-0"));
  f.fake->End(3, 0);  // worker-1 finished
  EXPECT_TRUE(f.sup->RestartFailed(5, Always(true), kNow).empty());
  EXPECT_EQ(f.sup->policy_restarts(), 0);
  // Every worker gone: a server that dies now is not replaced (the job is over).
  f.state.exits[1] = {true, SIGKILL};
  EXPECT_TRUE(f.sup->RestartFailed(5, Always(true), kNow).empty());
}

}  // namespace
}  // namespace phalanx::launch
