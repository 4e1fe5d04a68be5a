// The case runner behind `phalanx aggregate --input CASE.json`: errors are
// Status values, never crashes; printing round-trips; attack helpers.

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "aggregators/attacks.h"
#include "launch/cases/aggregate_case.h"

namespace phalanx::launch {
namespace {

using nlohmann::json;

std::string WriteTemp(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / ("phx_case_" + name + ".json");
  std::ofstream(path) << text;
  return path.string();
}

TEST(CaseRunner, MissingFileIsNotFound) {
  auto r = RunAggregateCase("/nonexistent/case.json");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

TEST(CaseRunner, MalformedInputsAreInvalidArgument) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"notjson", "{\"aggregator\": \"Average\", "},
      {"array", "[1, 2]"},
      {"unknown_kind", "{\"foo\": 1}"},
      {"ragged", R"({"aggregator": "Average", "params": {}, "inputs": [[1, 2], [3]]})"},
      {"string_entry", R"({"aggregator": "Median", "params": {}, "inputs": [[1, "x"], [3, 4]]})"},
      {"no_inputs", R"({"aggregator": "Median", "params": {}})"},
      {"bad_name", R"({"aggregator": 7, "inputs": [[1]]})"},
      {"unknown_rule", R"({"aggregator": "Foo", "params": {}, "inputs": [[1], [2]]})"},
      {"bad_f", R"({"aggregator": "Krum", "params": {"f": 3}, "inputs": [[1], [2], [3]]})"},
      {"cc_center", R"({"aggregator": "CenteredClipping", "params": {"m": [0]},
                       "inputs": [[1, 2], [3, 4]]})"},
      {"flag_init", R"({"params": {"r_col": 1}, "gradients": [[1, 2], [3, 4]],
                       "init_Y": [[1]]})"},
      {"attack_unknown", R"({"attack": "Nope", "params": {"f": 1}, "honest": [[1]]})"},
      {"attack_mimic", R"({"attack": "Mimic", "params": {"f": 1, "epsilon": 5},
                          "honest": [[1], [2]]})"},
      {"monna_bad", R"({"algorithm": "MoNNA-round", "params": {"f": 1},
                       "inputs": {"theta": [[1]], "momentum": [[1]], "gradient": [[1, 2]],
                                  "received_honest_indices": [[0]]}})"},
  };
  for (const auto& [name, text] : cases) {
    SCOPED_TRACE(name);
    auto r = RunAggregateCase(WriteTemp(name, text));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
    std::filesystem::remove(std::filesystem::temp_directory_path() /
                            ("phx_case_" + name + ".json"));
  }
}

TEST(CaseRunner, AcceptsPhalanxRuleNames) {
  const json doc = json::parse(R"({"aggregator": "nnm+trimmed-mean", "params": {"f": 1},
      "inputs": [[1, 1], [2, 2], [3, 3], [100, 100]]})");
  auto r = RunAggregateCaseJson(doc, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ((*r)["output"].size(), 2u);
  EXPECT_LT((*r)["output"][0].get<double>(), 10.0);
}

TEST(CaseRunner, FormatsWith17SignificantDigits) {
  const json result = {{"output", {0.1, 1.0 / 3.0, -2.5e-300}}};
  const std::string text = FormatCaseOutput(result);
  EXPECT_NE(text.find("0.10000000000000001"), std::string::npos) << text;
  EXPECT_NE(text.find("0.33333333333333331"), std::string::npos) << text;
  const json back = json::parse(text);
  EXPECT_EQ(back["output"][1].get<double>(), 1.0 / 3.0);
  EXPECT_EQ(back["output"][2].get<double>(), -2.5e-300);
}

TEST(Attacks, ZMaxMatchesTheSpecTable) {
  // docs/attacks.md, "A little is enough".
  const std::vector<std::tuple<int, int, double>> table = {{5, 1, 0.2533},  {9, 2, 0.4307},
                                                           {15, 4, 0.6229}, {10, 3, 0.5244},
                                                           {16, 3, 0.3186}, {26, 5, 0.3957}};
  for (const auto& [n, f, z] : table) {
    auto got = aggregators::AlieZMax(n, f);
    ASSERT_TRUE(got.ok());
    EXPECT_NEAR(*got, z, 6e-5) << n << "," << f;
  }
  EXPECT_NEAR(*aggregators::AlieZMax(15, 4), 0.6229257232100877, 1e-13);
  EXPECT_NEAR(*aggregators::AlieZMax(9, 2), 0.43072729929545744, 1e-13);
}

TEST(Attacks, NonFiniteAndDegenerateInputs) {
  const Eigen::MatrixXd one = Eigen::MatrixXd::Ones(3, 1);
  EXPECT_FALSE(aggregators::ALittleIsEnoughAttack(one, 1.5).ok());  // needs 2 honest
  Eigen::MatrixXd bad = Eigen::MatrixXd::Ones(3, 2);
  bad(0, 0) = NAN;
  EXPECT_FALSE(aggregators::SignFlippingAttack(bad).ok());
  EXPECT_TRUE(aggregators::InfAttack(4).array().isInf().all());
  EXPECT_TRUE(aggregators::NanAttack(4).array().isNaN().all());
  EXPECT_EQ(aggregators::GaussianAttack(5, 0, 1, 9), aggregators::GaussianAttack(5, 0, 1, 9));
}

}  // namespace
}  // namespace phalanx::launch
