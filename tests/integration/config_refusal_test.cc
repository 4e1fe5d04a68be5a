// A worker started with another job's config is refused by the real
// scheduler process and exits non-zero naming the setting, while the job's
// own nodes are untouched (issue 13, item 11).

#include <gtest/gtest.h>

#include "tests/testutil/process.h"
#include "tests/testutil/process_cluster.h"

namespace phalanx {
namespace {

using testutil::Config;
using testutil::Process;
using testutil::ProcessCluster;
using testutil::ReadAll;

TEST(ConfigRefusalTest, WorkerWithAnotherJobsConfigExitsNonZeroNamingTheKey) {
  ProcessCluster cluster("config-refusal", 1, 1, {"train.rounds=20"});
  ASSERT_FALSE(cluster.endpoint().empty());
  const auto log = cluster.dir() / "intruder.log";
  Process intruder;
  ASSERT_TRUE(intruder.Start({"worker", "--scheduler", cluster.endpoint(), "--rank", "0",
                              "--config", Config("fashion-mnist-mlp"), "--set", "cluster.servers=1",
                              "--set", "cluster.workers=1", "--set", "train.rounds=20"},
                             log.string()));
  const int code = intruder.Wait(60000);
  EXPECT_NE(code, 0);
  const std::string text = ReadAll(log);
  EXPECT_NE(text.find("refused"), std::string::npos) << text;
  EXPECT_NE(text.find("model.kind is \"mlp\" in this node's config but \"softmax\""),
            std::string::npos)
      << text;
  // The job's own worker still joins and the job trains to its end.
  Process& worker = cluster.AddWorker(0);
  EXPECT_EQ(worker.Wait(120000), 0) << ReadAll(cluster.dir() / "worker-0.log");
}

}  // namespace
}  // namespace phalanx
