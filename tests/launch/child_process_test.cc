#include "launch/process/child_process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace phalanx::launch {
namespace {

TEST(RunCommand, CapturesStdoutStderrAndExitCode) {
  auto r = RunCommand({"sh", "-c", "echo out; echo err >&2; exit 3"}, 10'000);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
}

TEST(RunCommand, MissingProgramExits127) {
  auto r = RunCommand({"phx-no-such-program-anywhere"}, 10'000);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 127);
}

TEST(RunCommand, SlowCommandHitsTheDeadline) {
  auto r = RunCommand({"sleep", "30"}, 300);
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
}

TEST(StartChild, AddsEnvironmentAndWritesTheLog) {
  const auto log = std::filesystem::temp_directory_path() /
                   ("phx_child_process_test_" + std::to_string(getpid()) + ".log");
  ChildOptions options;
  options.log_path = log.string();
  options.search_path = true;
  options.env = {"PHX_CHILD_TEST=hello", "HOME=/phx-home"};
  auto child = StartChild({"sh", "-c", "echo $PHX_CHILD_TEST $HOME; echo e >&2"}, options);
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  EXPECT_EQ(child->stdout_fd, -1);
  int st = 0;
  ASSERT_EQ(waitpid(child->pid, &st, 0), child->pid);
  EXPECT_EQ(ExitCode(st), 0);
  std::stringstream ss;
  ss << std::ifstream(log).rdbuf();
  EXPECT_EQ(ss.str(), "hello /phx-home\ne\n");
  std::filesystem::remove(log);
}

TEST(StartChild, RefusesAnEmptyCommand) {
  EXPECT_EQ(StartChild({}, ChildOptions{}).status().code(), StatusCode::kInvalidArgument);
}

TEST(ChildProcess, ReadsLinesWaitsAndReportsTheExitCode) {
  ChildProcess p;
  ChildOptions options;
  options.search_path = true;
  ASSERT_TRUE(p.Start({"sh", "-c", "echo one; echo PHX_X 42; printf last; exit 5"}, options).ok());
  EXPECT_EQ(p.ReadLine(10'000), "one");
  EXPECT_EQ(p.WaitFor("PHX_X ", 10'000), "42");
  EXPECT_EQ(p.ReadLine(10'000), "last");  // a final line without '\n'
  EXPECT_EQ(p.Wait(10'000), 5);
  EXPECT_EQ(p.output(), "one\nPHX_X 42\nlast\n");
  EXPECT_FALSE(p.running());
}

TEST(ChildProcess, TerminateStopsAChildAndReportsTheSignal) {
  ChildProcess p;
  ChildOptions options;
  options.search_path = true;
  ASSERT_TRUE(p.Start({"sleep", "30"}, options).ok());
  EXPECT_FALSE(p.ReadLine(50).has_value());  // nothing printed yet
  EXPECT_EQ(p.Terminate(5'000), 128 + SIGTERM);
}

TEST(ChildProcess, WaitTimesOutOnARunningChild) {
  ChildProcess p;
  ChildOptions options;
  options.search_path = true;
  ASSERT_TRUE(p.Start({"sleep", "30"}, options).ok());
  EXPECT_EQ(p.Wait(100), -1);
  p.Signal(SIGKILL);
  EXPECT_EQ(p.Wait(10'000), 128 + SIGKILL);
}

}  // namespace
}  // namespace phalanx::launch
