// Issue 13, items 2 and 7: what the launcher and the config refuse before
// anything starts — a directory as --config, ports outside 0..65535, negative
// ranks, a rule that cannot run on the configured workers and f, and a job
// that cannot fit in this machine's memory; and (issue 15) unknown log levels
// and mistyped commands.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "launch/cluster/memory_estimate.h"
#include "launch/config/config.h"
#include "tests/testutil/process_cluster.h"

namespace phalanx::launch {
namespace {

namespace fs = std::filesystem;
using testutil::Config;
using testutil::Process;
using testutil::TempDir;

// Runs the binary; returns its exit code and puts its stderr in *err.
int RunPhalanx(const std::vector<std::string>& args, const fs::path& dir, std::string* err) {
  const fs::path log = dir / "err.log";
  Process p;
  EXPECT_TRUE(p.Start(args, log.string()));
  int rc = p.Wait(30000);
  std::stringstream ss;
  ss << std::ifstream(log).rdbuf();
  *err = ss.str();
  return rc;
}

TEST(RefusalTest, ConfigThatIsADirectoryIsRefusedNamingIt) {
  fs::path dir = TempDir("cfgdir");
  auto c = LoadConfig(dir.string());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(dir.string()), std::string::npos) << c.status().ToString();
  EXPECT_NE(c.status().message().find("directory"), std::string::npos) << c.status().ToString();
  auto missing = LoadConfig((dir / "nope.toml").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("nope.toml"), std::string::npos);

  std::string err;
  EXPECT_EQ(RunPhalanx({"launch", "local", "--config", dir.string(), "--out", (dir / "o").string()},
                       dir, &err),
            1);
  EXPECT_NE(err.find("is a directory"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(dir / "o" / "logs")) << "nothing may start";
  EXPECT_NE(
      RunPhalanx({"simulate", "--config", dir.string(), "--out", (dir / "s").string()}, dir, &err),
      0);
  EXPECT_NE(err.find("is a directory"), std::string::npos) << err;
}

// Issue 15, item 4: an unknown log level used to turn logging off; a
// mistyped command got only "not expected".
TEST(RefusalTest, UnknownLogLevelAndMistypedCommandsAreNamed) {
  fs::path dir = TempDir("cli-words");
  std::string err;
  EXPECT_NE(RunPhalanx({"--log-level", "verbose", "scheduler", "--config",
                        Config("fashion-mnist-softmax")},
                       dir, &err),
            0);
  EXPECT_NE(err.find("verbose not in"), std::string::npos) << err;
  EXPECT_NE(RunPhalanx({"lauch", "local"}, dir, &err), 0);
  EXPECT_NE(err.find("unknown command 'lauch'; did you mean 'launch'?"), std::string::npos) << err;
  EXPECT_NE(RunPhalanx({"launch", "lcoal"}, dir, &err), 0);
  EXPECT_NE(err.find("did you mean 'local'?"), std::string::npos) << err;
}

TEST(RefusalTest, PortOutOfRangeIsRefused) {
  fs::path dir = TempDir("port");
  std::string err;
  for (const char* port : {"99999", "65536", "-1"}) {
    EXPECT_NE(RunPhalanx({"scheduler", "--config", Config("fashion-mnist-softmax"), "--port", port},
                         dir, &err),
              0)
        << port;
    EXPECT_NE(err.find("--port"), std::string::npos) << err;
    EXPECT_NE(err.find("65535"), std::string::npos) << err;
  }
}

TEST(RefusalTest, NegativeRankIsRefusedButMinusOneMeansAny) {
  fs::path dir = TempDir("rank");
  std::string err;
  for (const char* role : {"server", "worker"}) {
    EXPECT_NE(RunPhalanx({role, "--config", Config("fashion-mnist-softmax"), "--scheduler",
                          "tcp://127.0.0.1:9", "--rank", "-5"},
                         dir, &err),
              0)
        << role;
    EXPECT_NE(err.find("--rank"), std::string::npos) << err;
    EXPECT_NE(err.find("-5"), std::string::npos) << err;
  }
  // -1 (the default: any free rank) passes the command line and fails later,
  // reaching for the scheduler.
  EXPECT_EQ(
      RunPhalanx({"server", "--config", Config("fashion-mnist-softmax"), "--scheduler",
                  "tcp://127.0.0.1:9", "--rank", "-1", "--set", "cluster.register_timeout_ms=300"},
                 dir, &err),
      1);
  EXPECT_NE(err.find("no answer from the scheduler"), std::string::npos) << err;
}

TEST(RefusalTest, RuleThatCannotRunWithTheWorkersIsRefused) {
  const std::string softmax = Config("fashion-mnist-softmax");
  auto krum = LoadConfig(softmax, {"aggregator.name=krum", "aggregator.f=3"});
  ASSERT_FALSE(krum.ok());
  EXPECT_NE(krum.status().message().find("krum"), std::string::npos) << krum.status().ToString();
  EXPECT_NE(krum.status().message().find("cluster.workers"), std::string::npos);
  auto bulyan = LoadConfig(softmax, {"aggregator.name=bulyan", "aggregator.f=1"});
  ASSERT_FALSE(bulyan.ok());
  EXPECT_NE(bulyan.status().message().find("bulyan"), std::string::npos);
  EXPECT_NE(bulyan.status().message().find("4f+3"), std::string::npos)
      << bulyan.status().ToString();
  // Enough workers for the same rule and f, and asynchronous mode (no rounds), pass.
  EXPECT_TRUE(
      LoadConfig(softmax, {"aggregator.name=bulyan", "aggregator.f=1", "cluster.workers=7"}).ok());
  EXPECT_TRUE(
      LoadConfig(softmax, {"aggregator.name=krum", "aggregator.f=3", "cluster.mode=async"}).ok());
  // Every shipped job config still loads.
  for (const auto& e : fs::directory_iterator(std::string(PHX_SOURCE_DIR) + "/launch/configs")) {
    if (e.path().extension() != ".toml") continue;
    auto c = LoadConfig(e.path().string());
    EXPECT_TRUE(c.ok()) << e.path() << ": " << c.status().ToString();
  }

  fs::path dir = TempDir("rule");
  std::string err;
  EXPECT_EQ(RunPhalanx({"launch", "local", "--config", softmax, "--out", (dir / "o").string(),
                        "--set", "aggregator.name=krum", "--set", "aggregator.f=3"},
                       dir, &err),
            1);
  EXPECT_NE(err.find("krum"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(dir / "o" / "logs")) << "nothing may start";
  EXPECT_EQ(RunPhalanx({"launch", "local", "--config", softmax, "--out", (dir / "o2").string(),
                        "--set", "aggregator.name=bulyan", "--set", "aggregator.f=1"},
                       dir, &err),
            1);
  EXPECT_NE(err.find("bulyan"), std::string::npos) << err;
}

TEST(MemoryEstimateTest, WorkerDataFollowsShardingInOnePlace) {
  DatasetBytes d{1000, 100};
  EXPECT_EQ(WorkerDataBytes(d, 4, false, false), 1100);
  EXPECT_EQ(WorkerDataBytes(d, 4, false, true), 1100);
  EXPECT_EQ(WorkerDataBytes(d, 4, true, false), 250);
  EXPECT_EQ(WorkerDataBytes(d, 4, true, true), 350);
  EXPECT_EQ(WorkerDataBytes(d, 3, true, false), 334);  // rounded up
}

TEST(MemoryEstimateTest, FashionMnistWorkerMatchesWhatItHolds) {
  auto c = LoadConfig(Config("fashion-mnist-softmax"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  // 70000 images of 784 floats and a label: 219.8 MB.
  DatasetBytes d = EstimateDatasetBytes(*c);
  EXPECT_EQ(d.train + d.test, 70000 * (784 * 4 + 4));
  // Measured: 247.3 MB RSS per worker, 11.4 MB per server.
  MemoryEstimate e = EstimateJobMemory(*c, /*keeps_only_shard=*/false);
  EXPECT_NEAR(static_cast<double>(e.per_worker), 247.3e6, 5e6);
  EXPECT_LT(e.per_server, 20'000'000);
  EXPECT_GT(e.total, 4 * e.per_worker + 2 * e.per_server);
  // Keeping only the shard: rank 0 keeps the test split too.
  MemoryEstimate s = EstimateJobMemory(*c, /*keeps_only_shard=*/true);
  EXPECT_LT(s.total, e.total / 2);
  // 64 workers: the 15.1 GB measured (GiB) is within the estimate's reach.
  auto big = LoadConfig(Config("fashion-mnist-softmax"), {"cluster.workers=64"});
  ASSERT_TRUE(big.ok());
  EXPECT_NEAR(static_cast<double>(EstimateJobMemory(*big, false).total), 15.8e9, 0.5e9);
}

TEST(MemoryEstimateTest, ServerTablesCountRowsDimAndOptimizerState) {
  auto sgd = LoadConfig(Config("fashion-mnist-mlp"),
                        {"optimizer.kind=\"sgd\"", "optimizer.momentum=0", "cluster.mode=async"});
  auto adam =
      LoadConfig(Config("fashion-mnist-mlp"), {"optimizer.kind=\"adam\"", "cluster.mode=async"});
  ASSERT_TRUE(sgd.ok()) << sgd.status().ToString();
  ASSERT_TRUE(adam.ok()) << adam.status().ToString();
  // Adam keeps 2*dim + 1 floats per row next to the dim weights.
  const int64_t base = EstimateJobMemory(*sgd, false).per_server;
  const int64_t with_adam = EstimateJobMemory(*adam, false).per_server;
  EXPECT_GT(with_adam, base);
  EXPECT_NEAR(static_cast<double>(with_adam - base) / (base - (int64_t{12} << 20)), 2.0, 0.05);
}

TEST(MemoryEstimateTest, JobThatCannotFitIsRefusedNamingTheFigures) {
  auto c = LoadConfig(Config("fashion-mnist-softmax"), {"cluster.workers=64"});
  ASSERT_TRUE(c.ok());
  MemoryEstimate e = EstimateJobMemory(*c, false);
  Status s = CheckJobFits(*c, e, 8'000'000'000);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("64 workers x 247 MB"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("8.0 GB available"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("cluster.skip_memory_check"), std::string::npos);
  EXPECT_TRUE(CheckJobFits(*c, e, e.total).ok());
  c->cluster.skip_memory_check = true;
  EXPECT_TRUE(CheckJobFits(*c, e, 8'000'000'000).ok());

  fs::path dir = TempDir("mem");
  std::ofstream(dir / "meminfo") << "MemTotal:       32000000 kB\nMemAvailable:   24222892 kB\n";
  auto avail = AvailableMemoryBytes((dir / "meminfo").string());
  ASSERT_TRUE(avail.ok());
  EXPECT_EQ(*avail, int64_t{24222892} * 1024);
  EXPECT_FALSE(AvailableMemoryBytes((dir / "none").string()).ok());

  // 4000 workers fit no machine this runs on: refused before anything starts.
  std::string err;
  EXPECT_EQ(RunPhalanx({"launch", "local", "--config", Config("fashion-mnist-softmax"), "--out",
                        (dir / "o").string(), "--set", "cluster.workers=4000"},
                       dir, &err),
            1);
  EXPECT_NE(err.find("4000 workers x "), std::string::npos) << err;
  EXPECT_NE(err.find("available"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(dir / "o" / "logs")) << "nothing may start";
}

}  // namespace
}  // namespace phalanx::launch

namespace phalanx::launch {
namespace {

// Issue 13, item 6 (in part): a checkpoint directory that cannot be created is
// refused before anything starts, instead of every snapshot failing quietly.
TEST(RefusalTest, CheckpointDirThatCannotBeCreatedIsRefused) {
  fs::path dir = testutil::TempDir("ckpt-refusal");
  const fs::path file = dir / "a-file";
  std::ofstream(file) << "x";
  std::string err;
  const std::string bad = (file / "ckpt").string();  // a directory under a regular file
  EXPECT_EQ(RunPhalanx({"launch", "local", "--config", Config("fashion-mnist-softmax"), "--out",
                        (dir / "o").string(), "--set", "checkpoint.dir=\"" + bad + "\"", "--set",
                        "checkpoint.every_rounds=100"},
                       dir, &err),
            1);
  EXPECT_NE(err.find("checkpoint.dir"), std::string::npos) << err;
  EXPECT_NE(err.find(bad), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(dir / "o" / "logs")) << "nothing may start";
}

}  // namespace
}  // namespace phalanx::launch
