// The synchronous round quorum across real processes (issue 13 item 9): a
// registered worker that never pushes (byzantine.attack = silent) used to
// stall every round for cluster.round_timeout_ms. With
// cluster.exclude_after_missed_rounds = 2 it leaves the quorum after two
// rounds closed by timeout, and the job's other rounds close without waiting.
// Checked by counts (summary.json, the servers' timeout lines), not by time.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/testutil/process.h"
#include "tests/testutil/process_cluster.h"

namespace phalanx {
namespace {

namespace fs = std::filesystem;
using testutil::Config;
using testutil::Process;
using testutil::ReadAll;
using testutil::TempDir;

int CountOccurrences(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
  return n;
}

TEST(QuorumTest, SilentWorkerLeavesTheQuorumAndTheJobFinishes) {
  constexpr int kRounds = 300;
  fs::path out = TempDir("quorum");
  std::vector<std::string> args = {
      "launch", "local",      "--config", Config("fashion-mnist-softmax"),
      "--out",  out.string(), "--quiet"};
  // A generous timeout: an honest worker still reading its shard when the
  // first rounds start must not miss two of them in a row.
  for (std::string set :
       {"train.rounds=" + std::to_string(kRounds), std::string("train.eval_every=300"),
        std::string("cluster.round_timeout_ms=2000"),
        std::string("cluster.exclude_after_missed_rounds=2"), std::string("byzantine.count=1"),
        std::string("byzantine.attack=silent")}) {
    args.push_back("--set");
    args.push_back(set);
  }
  Process p;
  ASSERT_TRUE(p.Start(args, (out / "launcher.log").string()));
  ASSERT_EQ(p.Wait(600000), 0) << ReadAll(out / "launcher.log");
  std::ifstream in(out / "summary.json");
  auto summary = nlohmann::json::parse(in, nullptr, false);
  ASSERT_TRUE(summary.is_object()) << ReadAll(out / "launcher.log");
  EXPECT_EQ(summary["rounds"].get<int>(), kRounds);
  EXPECT_EQ(summary["quorum_exclusions"].get<int>(), 1) << summary.dump();
  EXPECT_EQ(summary["quorum_exclusions_by_worker"].value("3", 0), 1) << summary.dump();
  EXPECT_EQ(summary["quorum_rejoins"].get<int>(), 0) << summary.dump();
  EXPECT_GE(summary["final_test_accuracy"].get<double>(), 0.70);
  // Rounds 0 and 1 closed by timeout (on each server); without the quorum
  // all 300 would have.
  for (const char* server : {"server-0.log", "server-1.log"}) {
    const std::string log = ReadAll(out / "logs" / server);
    EXPECT_LT(CountOccurrences(log, "closed by timeout"), 10) << server;
  }
  // The exclusion was logged once in the cluster (by the coordinator).
  const std::string both =
      ReadAll(out / "logs" / "server-0.log") + ReadAll(out / "logs" / "server-1.log");
  EXPECT_EQ(CountOccurrences(both, "leaves the round quorum"), 1);
}

}  // namespace
}  // namespace phalanx
