#include "launch/experiment/experiment.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace phalanx::launch {
namespace {

namespace fs = std::filesystem;

class ExperimentFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("phx-exp-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    std::ofstream(dir_ / "job.toml") << "[cluster]\nworkers = 4\n";
    std::ofstream(dir_ / "loss.toml") << "# faults\n";
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Write(const std::string& text) {
    auto p = dir_ / "exp.toml";
    std::ofstream(p) << text;
    return p.string();
  }
  fs::path dir_;
};

TEST_F(ExperimentFileTest, ParsesGridAndResolvesPathsRelativeToTheFile) {
  auto spec = LoadExperiment(Write(R"(
[experiment]
name = "t"
base = "job.toml"
parallel = 2
rules = ["mean", "flag"]
attacks = ["none", "random", "sign-flip"]
f = [1, 3]
seeds = [1, 2]
schedules = ["none", "loss"]
set = ["cluster.workers=15"]
[rule_set]
flag = ["aggregator.r=4"]
[schedule_files]
loss = "loss.toml"
)"));
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->base_config, (dir_ / "job.toml").string());
  EXPECT_EQ(spec->parallel, 2);
  auto cells = ExpandGrid(*spec);
  EXPECT_EQ(cells.size(), 2u * 3 * 2 * 2 * 2);
  std::set<std::string> ids;
  for (const auto& c : cells) ids.insert(c.Id());
  EXPECT_EQ(ids.size(), cells.size()) << "cell folders must be unique";
  // The first pass covers the whole grid with the first seed.
  EXPECT_EQ(cells.front().seed, 1u);
  EXPECT_EQ(cells[cells.size() / 2].seed, 2u);
}

TEST_F(ExperimentFileTest, CellOverridesSetRuleAttackAndSeed) {
  auto spec = LoadExperiment(Write(R"(
[experiment]
base = "job.toml"
rules = ["flag"]
attacks = ["none", "alie"]
f = [3]
set = ["train.rounds=10"]
[rule_set]
flag = ["aggregator.r=4"]
)"));
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  auto has = [](const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  auto attacked = CellOverrides(*spec, {"flag", "alie", 3, "none", 7});
  EXPECT_TRUE(has(attacked, "train.rounds=10"));
  EXPECT_TRUE(has(attacked, "aggregator.name=flag"));
  EXPECT_TRUE(has(attacked, "aggregator.f=3"));
  EXPECT_TRUE(has(attacked, "byzantine.count=3"));
  EXPECT_TRUE(has(attacked, "byzantine.attack=alie"));
  EXPECT_TRUE(has(attacked, "train.seed=7"));
  EXPECT_TRUE(has(attacked, "aggregator.r=4"));
  // "none": the rule still assumes f, but no worker lies.
  auto clean = CellOverrides(*spec, {"flag", "none", 3, "none", 1});
  EXPECT_TRUE(has(clean, "aggregator.f=3"));
  EXPECT_TRUE(has(clean, "byzantine.count=0"));
}

TEST_F(ExperimentFileTest, RuleVariantsNameTheSameRuleWithOtherParameters) {
  auto spec = LoadExperiment(Write(R"(
[experiment]
base = "job.toml"
rules = ["flag", "flag-r4"]
[rule_set]
flag-r4 = { rule = "flag", set = ["aggregator.r=4"] }
)"));
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  auto o = CellOverrides(*spec, {"flag-r4", "none", 0, "none", 1});
  EXPECT_NE(std::find(o.begin(), o.end(), "aggregator.name=flag"), o.end());
  EXPECT_NE(std::find(o.begin(), o.end(), "aggregator.r=4"), o.end());
  auto plain = CellOverrides(*spec, {"flag", "none", 0, "none", 1});
  EXPECT_EQ(std::find(plain.begin(), plain.end(), "aggregator.r=4"), plain.end());
  EXPECT_FALSE(LoadExperiment(Write("[experiment]\nbase = \"job.toml\"\n[rule_set]\n"
                                    "x = { set = [\"aggregator.r=4\"] }\n"))
                   .ok());
}

TEST_F(ExperimentFileTest, OverridesFromTheCommandLine) {
  auto spec = LoadExperiment(Write("[experiment]\nbase = \"job.toml\"\nrules = [\"mean\"]\n"),
                             {"experiment.rules=[\"median\", \"krum\"]", "parallel=3"});
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->rules, (std::vector<std::string>{"median", "krum"}));
  EXPECT_EQ(spec->parallel, 3);
}

TEST_F(ExperimentFileTest, BadFilesGetClearErrors) {
  struct Case {
    std::string text;
    std::string expect;
  } cases[] = {
      {"[experiment]\nrules = [\"mean\"]\n", "experiment.base"},
      {"[experiment]\nbase = \"missing.toml\"\n", "not found"},
      {"[experiment]\nbase = \"job.toml\"\nrulez = [\"mean\"]\n", "rulez"},
      {"[experiment]\nbase = \"job.toml\"\nf = [-1]\n", "experiment.f"},
      {"[experiment]\nbase = \"job.toml\"\nf = \"three\"\n", "experiment.f"},
      {"[experiment]\nbase = \"job.toml\"\nparallel = 0\n", "parallel"},
      {"[experiment]\nbase = \"job.toml\"\nrules = [\"mean\", \"mean\"]\n", "twice"},
      {"[experiment]\nbase = \"job.toml\"\nrules = [\"../x\"]\n", "valid name"},
      {"[experiment]\nbase = \"job.toml\"\nschedules = [\"loss\"]\n", "schedule_files"},
      {"[experiment]\nbase = \"job.toml\"\n[schedule_files]\nloss = \"nope.toml\"\n", "nope"},
      {"[experiment]\nbase = \"job.toml\"\nset = [\"novalue\"]\n", "section.key=value"},
      {"[experiment]\nbase = \"job.toml\"\n[extra]\n", "unknown section"},
      {"[experiment\nbase = 1\n", "line 1"},
      {"[rule_set]\n", "no [experiment]"},
  };
  for (const auto& c : cases) {
    auto spec = LoadExperiment(Write(c.text));
    ASSERT_FALSE(spec.ok()) << c.text;
    EXPECT_NE(spec.status().ToString().find(c.expect), std::string::npos)
        << c.text << " -> " << spec.status().ToString();
  }
  EXPECT_FALSE(LoadExperiment((dir_ / "absent.toml").string()).ok());
}

}  // namespace
}  // namespace phalanx::launch
