// `phalanx experiment` end to end: a 2x2 grid of real local clusters, the
// report it writes, and resuming (finished cells are not rerun).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/testutil/process.h"
#include "tests/testutil/process_cluster.h"

namespace phalanx {
namespace {

namespace fs = std::filesystem;
using testutil::Process;
using testutil::ReadAll;
using testutil::TempDir;

TEST(ExperimentTest, SweepsGridWritesReportAndResumes) {
  fs::path dir = TempDir("experiment");
  fs::path exp = dir / "exp.toml";
  std::ofstream(exp) << "[experiment]\nname = \"it\"\nbase = \"" << PHX_SOURCE_DIR
                     << "/launch/configs/fashion-mnist-softmax.toml\"\nparallel = 2\n"
                        "rules = [\"mean\", \"median\"]\nattacks = [\"none\", \"random\"]\n"
                        "f = [1]\nseeds = [1]\n"
                        "set = [\"cluster.workers=3\", \"cluster.servers=1\", \"train.rounds=30\", "
                        "\"train.eval_every=15\", \"data.max_train=3000\", \"data.max_test=500\", "
                        "\"byzantine.scale=100.0\"]\n";
  fs::path out = dir / "out";
  {
    Process p;
    ASSERT_TRUE(p.Start({"experiment", "--config", exp.string(), "--out", out.string()},
                        (dir / "first.log").string()));
    ASSERT_EQ(p.Wait(240000), 0) << ReadAll(dir / "first.log") << p.output();
  }
  std::string csv = ReadAll(out / "results.csv");
  int ok_rows = 0;
  std::istringstream lines(csv);
  std::string line;
  double mean_random = -1, median_random = -1;
  while (std::getline(lines, line)) {
    if (line.find(",ok,") == std::string::npos) continue;
    ++ok_rows;
    // rule,attack,f,schedule,seed,status,final_test_accuracy,...
    std::vector<std::string> cols;
    std::stringstream ls(line);
    std::string c;
    while (std::getline(ls, c, ',')) cols.push_back(c);
    ASSERT_GE(cols.size(), 7u);
    double acc = std::stod(cols[6]);
    EXPECT_GT(acc, 0.0);
    if (cols[0] == "mean" && cols[1] == "random") mean_random = acc;
    if (cols[0] == "median" && cols[1] == "random") median_random = acc;
  }
  EXPECT_EQ(ok_rows, 4) << csv;
  // One random-gradient worker of three (scale 100) wrecks the mean, not the median.
  EXPECT_GT(median_random, mean_random + 0.1) << csv;
  std::string md = ReadAll(out / "summary.md");
  EXPECT_NE(md.find("| median |"), std::string::npos) << md;
  EXPECT_TRUE(fs::exists(out / "heatmap-f1.png"));
  EXPECT_TRUE(fs::exists(out / "accuracy-random-f1.png"));

  // Resume: drop one cell's result; only that cell runs again.
  fs::remove_all(out / "runs" / "median__random__f1__none__s1");
  Process again;
  ASSERT_TRUE(again.Start({"experiment", "--config", exp.string(), "--out", out.string()},
                          (dir / "second.log").string()));
  ASSERT_EQ(again.Wait(240000), 0) << again.output();
  EXPECT_NE(again.output().find("4 cells: 1 ran, 3 finished earlier, 0 failed"), std::string::npos)
      << again.output();
  fs::remove_all(dir);
}

TEST(ExperimentTest, BadExperimentFileFailsFast) {
  fs::path dir = TempDir("experiment-bad");
  std::ofstream(dir / "exp.toml") << "[experiment]\nbase = \"/nonexistent/job.toml\"\n";
  Process p;
  ASSERT_TRUE(p.Start(
      {"experiment", "--config", (dir / "exp.toml").string(), "--out", (dir / "out").string()},
      (dir / "err.log").string()));
  EXPECT_EQ(p.Wait(20000), 1);
  EXPECT_NE(ReadAll(dir / "err.log").find("experiment.base not found"), std::string::npos)
      << ReadAll(dir / "err.log");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace phalanx
