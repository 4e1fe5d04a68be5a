// What a worker process holds of its data set (issue 13 item 8): only its own
// shard of the training set, and the test split only on the evaluator (64
// Fashion-MNIST workers used to take 15.1 GB, ~238 MB each). Real processes
// on loopback (ProcessCluster); memory from /proc/<pid>/status.

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/testutil/process.h"
#include "tests/testutil/process_cluster.h"

namespace phalanx {
namespace {

using testutil::Process;
using testutil::ProcessCluster;
using testutil::ReadAll;

// `field` (VmRSS: resident now, VmHWM: the peak) of process `pid` in MB;
// -1 when it cannot be read.
double StatusMb(pid_t pid, const std::string& field) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(field + ":", 0) != 0) continue;
    std::istringstream in(line.substr(field.size() + 1));
    double kb = -1;
    in >> kb;
    return kb / 1024.0;
  }
  return -1;
}

// True once `p` printed a progress line of round `round` or later.
bool ReachesRound(Process& p, int round, int timeout_ms) {
  for (;;) {
    auto line = testutil::WaitForLine(p, kProgressLinePrefix, ParseProgressLine, timeout_ms);
    if (!line) return false;
    if (line->round >= round) return true;
  }
}

double ResultAccuracy(const Process& p) {
  auto line = LastLineWithPrefix(p.output(), kResultLinePrefix);
  auto result = line ? ParseResultLine(*line) : std::nullopt;
  return result ? result->final_test_accuracy : -1;
}

// The whole training set as floats is 60000 x 784 x 4 = 188 MB, and reading
// it used to peak near 270 MB per worker; a worker of 8 keeps 7500 examples
// (24 MB), the evaluator the 31 MB test split on top.
constexpr double kEvaluatorLimitMb = 120;
constexpr double kWorkerLimitMb = 90;

TEST(WorkerMemoryTest, EachWorkerHoldsOnlyItsShard) {
  const int workers = 8;
  ProcessCluster c("worker-memory", 2, workers,
                   {"train.rounds=200", "train.eval_every=200", "train.log_every=10"});
  ASSERT_FALSE(c.endpoint().empty());
  std::vector<Process*> w;
  for (int r = 0; r < workers; ++r) w.push_back(&c.AddWorker(r));
  // Synchronous rounds: once rank 0 is at round 50, every worker has read its
  // data and is training.
  ASSERT_TRUE(ReachesRound(*w[0], 50, 180000)) << ReadAll(c.dir() / "worker-0.log");
  for (int r = 0; r < workers; ++r) {
    const double rss = StatusMb(w[r]->pid(), "VmRSS");
    const double peak = StatusMb(w[r]->pid(), "VmHWM");
    std::printf("worker %d: VmRSS %.1f MB, VmHWM %.1f MB\n", r, rss, peak);
    ASSERT_GT(rss, 0) << "worker " << r << " is gone: " << ReadAll(c.dir() / "worker-0.log");
    EXPECT_LT(peak, r == 0 ? kEvaluatorLimitMb : kWorkerLimitMb) << "worker " << r;
    EXPECT_LT(rss, r == 0 ? kEvaluatorLimitMb : kWorkerLimitMb) << "worker " << r;
  }
  for (int r = 0; r < workers; ++r) {
    EXPECT_EQ(w[r]->Wait(300000), 0) << ReadAll(c.dir() / ("worker-" + std::to_string(r) + ".log"));
  }
  EXPECT_GT(ResultAccuracy(*w[0]), 0.7) << w[0]->output();
}

// The ranks other than 0 drop the test split; when rank 0 dies the lowest
// live rank loads it and still reports the final model.
TEST(WorkerMemoryTest, StandInEvaluatorLoadsTheTestSplit) {
  const int workers = 3;
  ProcessCluster c(
      "worker-memory-standin", 2, workers,
      {"train.rounds=300", "train.eval_every=300", "train.log_every=10", "cluster.heartbeat_ms=100",
       "cluster.heartbeat_timeout_ms=1000", "cluster.round_timeout_ms=4000"});
  ASSERT_FALSE(c.endpoint().empty());
  std::vector<Process*> w;
  for (int r = 0; r < workers; ++r) w.push_back(&c.AddWorker(r));
  ASSERT_TRUE(ReachesRound(*w[0], 50, 180000)) << ReadAll(c.dir() / "worker-0.log");
  w[0]->Signal(SIGKILL);
  EXPECT_EQ(w[0]->Wait(10000), 128 + SIGKILL);
  for (int r = 1; r < workers; ++r) {
    EXPECT_EQ(w[r]->Wait(300000), 0) << ReadAll(c.dir() / ("worker-" + std::to_string(r) + ".log"));
  }
  EXPECT_GT(ResultAccuracy(*w[1]), 0.7) << ReadAll(c.dir() / "worker-1.log");
  EXPECT_LT(ResultAccuracy(*w[2]), 0) << "only the lowest live rank stands in";
}

}  // namespace
}  // namespace phalanx
