#include "launch/report/plot.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

namespace phalanx {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class PlotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("phx_plot_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  std::string Path(const std::string& name) { return (dir_ / name).string(); }

  static void ExpectPng(const std::string& path) {
    ASSERT_TRUE(fs::exists(path)) << path;
    EXPECT_GT(fs::file_size(path), 1000u);
    std::ifstream in(path, std::ios::binary);
    std::string magic(8, '\0');
    in.read(magic.data(), 8);
    EXPECT_EQ(magic, std::string("\x89PNG\r\n\x1a\n", 8));
  }

  fs::path dir_;
};

bool HaveGnuplot() { return std::system("gnuplot --version > /dev/null 2>&1") == 0; }

#define PHX_REQUIRE_GNUPLOT() \
  if (!HaveGnuplot()) GTEST_SKIP() << "gnuplot not installed; run scripts/setup.sh"

TEST_F(PlotTest, LinesFromCsvWithTwoAxesAndLogScale) {
  PHX_REQUIRE_GNUPLOT();
  std::string csv = Write("train.csv",
                          "round,train_loss,accuracy\n"
                          "0,2.3,0.1\n1,1.2,0.45\n2,0.7,\n3,0.4,0.81\n4,nan,0.86\n");
  PlotSpec spec;
  spec.csv_path = csv;
  spec.output_path = Path("train.png");
  spec.title = "Loss and accuracy (it's a test)";
  spec.x_column = "round";
  spec.series = {{"train_loss", "loss", PlotAxis::kLeft, ""},
                 {"accuracy", "", PlotAxis::kRight, ""}};
  spec.y_label = "loss";
  spec.y2_label = "accuracy";
  spec.log_y = true;
  Status s = PlotLines(spec);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ExpectPng(spec.output_path);
}

TEST_F(PlotTest, SeveralCsvFilesAsSeparateCurves) {
  PHX_REQUIRE_GNUPLOT();
  PlotSpec spec;
  spec.output_path = Path("rules.png");
  spec.title = "accuracy per rule";
  spec.x_column = "round";
  for (const std::string rule : {"mean", "krum", "median"}) {
    std::string csv = Write(rule + ".csv", "round,accuracy\n0,0.1\n1,0.3\n2,0.5\n");
    spec.series.push_back({"accuracy", rule, PlotAxis::kLeft, csv});
  }
  Status s = PlotLines(spec);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ExpectPng(spec.output_path);
}

TEST_F(PlotTest, MissingColumnIsInvalidArgument) {
  std::string csv = Write("t.csv", "round,loss\n0,1\n");
  PlotSpec spec;
  spec.csv_path = csv;
  spec.output_path = Path("t.png");
  spec.x_column = "round";
  spec.series = {{"accuracy", "", PlotAxis::kLeft, ""}};
  Status s = PlotLines(spec);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'accuracy'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("round, loss"), std::string::npos) << s.message();

  spec.series = {{"loss", "", PlotAxis::kLeft, ""}};
  spec.x_column = "epoch";
  EXPECT_EQ(PlotLines(spec).code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(spec.output_path));
}

TEST_F(PlotTest, MissingCsvIsNotFound) {
  PlotSpec spec;
  spec.csv_path = Path("absent.csv");
  spec.output_path = Path("t.png");
  spec.x_column = "round";
  spec.series = {{"loss", "", PlotAxis::kLeft, ""}};
  EXPECT_EQ(PlotLines(spec).code(), StatusCode::kNotFound);
}

TEST_F(PlotTest, IncompleteSpecIsInvalidArgument) {
  PlotSpec spec;
  spec.csv_path = Write("t.csv", "a,b\n1,2\n");
  spec.output_path = Path("t.png");
  spec.x_column = "a";
  EXPECT_EQ(PlotLines(spec).code(), StatusCode::kInvalidArgument);  // no series
  spec.series = {{"b", "", PlotAxis::kLeft, ""}};
  spec.output_path.clear();
  EXPECT_EQ(PlotLines(spec).code(), StatusCode::kInvalidArgument);
}

TEST_F(PlotTest, MissingGnuplotIsFailedPreconditionMentioningSetup) {
  PlotSpec spec;
  spec.csv_path = Write("t.csv", "a,b\n1,2\n2,3\n");
  spec.output_path = Path("t.png");
  spec.x_column = "a";
  spec.series = {{"b", "", PlotAxis::kLeft, ""}};
  spec.gnuplot = "/nonexistent/gnuplot";
  Status s = PlotLines(spec);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("scripts/setup.sh"), std::string::npos) << s.message();
}

TEST_F(PlotTest, GnuplotFailureCarriesItsStderr) {
  PHX_REQUIRE_GNUPLOT();
  PlotSpec spec;
  spec.csv_path = Write("t.csv", "a,b\n1,2\n2,3\n");
  spec.output_path = Path("no/such/dir/t.png");  // gnuplot cannot open it
  spec.x_column = "a";
  spec.series = {{"b", "", PlotAxis::kLeft, ""}};
  Status s = PlotLines(spec);
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find("gnuplot"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("cannot open"), std::string::npos) << s.message();
}

TEST_F(PlotTest, Heatmap) {
  PHX_REQUIRE_GNUPLOT();
  HeatmapSpec spec;
  spec.output_path = Path("heat.png");
  spec.title = "final accuracy";
  spec.row_labels = {"mean", "krum", "flag_aggregator"};
  spec.col_labels = {"none", "sign_flip", "gaussian", "alie"};
  spec.values = {{0.9, 0.1, 0.2, 0.15}, {0.85, 0.8, 0.82, 0.3}, {0.88, 0.86, NAN, 0.84}};
  spec.x_label = "attack";
  spec.y_label = "rule";
  spec.colorbar_label = "accuracy";
  Status s = PlotHeatmap(spec);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ExpectPng(spec.output_path);
}

TEST_F(PlotTest, HeatmapSingleCell) {
  PHX_REQUIRE_GNUPLOT();
  HeatmapSpec spec;
  spec.output_path = Path("one.png");
  spec.row_labels = {"r"};
  spec.col_labels = {"c"};
  spec.values = {{1.0}};
  Status s = PlotHeatmap(spec);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ExpectPng(spec.output_path);
}

TEST_F(PlotTest, HeatmapShapeMismatchIsInvalidArgument) {
  HeatmapSpec spec;
  spec.output_path = Path("bad.png");
  spec.row_labels = {"a", "b"};
  spec.col_labels = {"x", "y"};
  spec.values = {{1, 2}, {3}};
  EXPECT_EQ(PlotHeatmap(spec).code(), StatusCode::kInvalidArgument);
  spec.values = {{1, 2}};
  EXPECT_EQ(PlotHeatmap(spec).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace phalanx
