// Every reference file under /work/shared/vectors, run through the case runner
// in the direct form and in the 3-slice Gram form, plus the selected indices
// recorded in meta. The file list comes from a directory walk, so a new file
// is a new test case and nothing is skipped silently.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "aggregators/aggregator.h"
#include "aggregators/gram.h"
#include "aggregators/preaggregators.h"
#include "launch/cases/aggregate_case.h"

namespace phalanx::aggregators {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kVectors = fs::path(PHX_SHARED_DIR) / "vectors";

std::vector<std::string> AllCaseFiles() {
  std::vector<std::string> files;
  if (!fs::exists(kVectors)) return files;
  for (const auto& entry : fs::recursive_directory_iterator(kVectors)) {
    if (entry.is_regular_file() && entry.path().extension() == ".json") {
      files.push_back(fs::relative(entry.path(), kVectors).string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

json Load(const std::string& rel) {
  std::ifstream in(kVectors / rel);
  return json::parse(in);
}

// Flattens nested arrays of numbers.
void Flatten(const json& v, std::vector<double>& out) {
  if (v.is_array()) {
    for (const auto& e : v) Flatten(e, out);
  } else {
    out.push_back(v.get<double>());
  }
}

// Max over coordinates of |got - exp| / (1 + |exp|).
double MaxScaledError(const json& got, const json& expected) {
  std::vector<double> g, e;
  Flatten(got, g);
  Flatten(expected, e);
  if (g.size() != e.size()) return INFINITY;
  double worst = 0.0;
  for (size_t i = 0; i < g.size(); ++i) {
    worst = std::max(worst, std::abs(g[i] - e[i]) / (1.0 + std::abs(e[i])));
  }
  return worst;
}

// Max |got - exp| / max |exp|: the relative measure of the Flag README.
double MaxRelativeError(const json& got, const json& expected) {
  std::vector<double> g, e;
  Flatten(got, g);
  Flatten(expected, e);
  if (g.size() != e.size()) return INFINITY;
  double worst = 0.0, scale = 0.0;
  for (size_t i = 0; i < g.size(); ++i) {
    worst = std::max(worst, std::abs(g[i] - e[i]));
    scale = std::max(scale, std::abs(e[i]));
  }
  return worst / scale;
}

Eigen::MatrixXd Rows(const json& rows) {
  Eigen::MatrixXd m(rows[0].size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    for (size_t j = 0; j < rows[i].size(); ++j) m(j, i) = rows[i][j].get<double>();
  }
  return m;
}

std::string TestName(const testing::TestParamInfo<std::string>& info) {
  std::string s = info.param;
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

class VectorFileTest : public testing::TestWithParam<std::string> {};

TEST(VectorFiles, DirectoryIsPresentAndNonEmpty) {
  const auto files = AllCaseFiles();
  // 259 robust files + 17 flag files at the time of
  // writing; fewer means the shared folder is missing or truncated.
  EXPECT_GE(files.size(), 276u) << "vectors folder: " << kVectors;
}

// Selected indices recorded in meta, checked through the library directly.
void CheckSelections(const json& doc, bool gram_form) {
  const std::string name = doc["aggregator"];
  const json& meta = doc["meta"];
  const json& params = doc["params"];
  const Eigen::MatrixXd x = Rows(doc["inputs"]);
  const int n = static_cast<int>(x.cols());
  if (name == "NNM") {
    std::vector<std::vector<int>> neighbours;
    ASSERT_TRUE(NearestNeighborMixing(x, params["f"].get<int>(), &neighbours).ok());
    EXPECT_EQ(json(neighbours), meta["selected_indices_per_row"]);
    return;
  }
  AggregatorOptions o;
  std::string key = "selected_indices";
  if (name == "Krum") {
    o.name = "krum";
    key = "selected_index";
  } else if (name == "MultiKrum") {
    o.name = "multi-krum";
  } else if (name == "MDA") {
    o.name = "mda";
  } else if (name == "MoNNA") {
    o.name = "monna";
    o.params["idx"] = params["idx"].get<double>();
  } else if (name == "Bulyan") {
    o.name = "bulyan";
    key = "krum_selection_order";
  } else {
    return;
  }
  o.f = params["f"].get<int>();
  ASSERT_TRUE(meta.contains(key)) << key;
  auto rule = CreateAggregator(o);
  ASSERT_TRUE(rule.ok()) << rule.status().ToString();
  if (gram_form) {
    auto gram = PartialGram(x, Eigen::MatrixXd(x.rows(), 0));
    ASSERT_TRUE(gram.ok());
    ASSERT_TRUE((*rule)->PlanFromGram(*gram, n).ok());
  } else {
    ASSERT_TRUE((*rule)->Aggregate(x).ok());
  }
  const std::vector<int>& sel = (*rule)->selected();
  if (key == "selected_index") {
    ASSERT_EQ(sel.size(), 1u);
    EXPECT_EQ(sel[0], meta[key].get<int>());
  } else {
    EXPECT_EQ(json(sel), meta[key]);
  }
}

TEST_P(VectorFileTest, MatchesReference) {
  const std::string rel = GetParam();
  const json doc = Load(rel);
  const std::string path = (kVectors / rel).string();
  auto direct = launch::RunAggregateCase(path);
  ASSERT_TRUE(direct.ok()) << direct.status().ToString();

  if (doc.contains("attack")) {
    const std::string attack = doc["attack"];
    const json& got = (*direct)["byzantine"];
    const json& exp = doc["expected_byzantine"];
    ASSERT_EQ(got.size(), exp.size());
    if (attack == "Gaussian") {
      // RNG-dependent: shape and statistics only.
      std::vector<double> v;
      Flatten(got[0], v);
      ASSERT_EQ(v.size(), exp[0].size());
      for (const auto& row : got) EXPECT_EQ(row, got[0]);
      double mean = 0, sq = 0;
      for (double e : v) mean += e;
      mean /= v.size();
      for (double e : v) sq += (e - mean) * (e - mean);
      const double sd = std::sqrt(sq / (v.size() - 1));
      const double mu = doc["params"]["mu"], sigma = doc["params"]["sigma"];
      EXPECT_LT(std::abs(mean - mu), 5 * sigma / std::sqrt(v.size()));
      EXPECT_GT(sd, 0.3 * sigma);
      EXPECT_LT(sd, 2.0 * sigma);
      return;
    }
    EXPECT_LE(MaxScaledError(got, exp), 1e-9);
    if (doc["meta"].contains("tau_opt")) {
      EXPECT_DOUBLE_EQ((*direct)["tau_opt"].get<double>(), doc["meta"]["tau_opt"].get<double>());
    }
    return;
  }
  if (doc.value("algorithm", "") == "MoNNA-round") {
    for (const char* key : {"momentum", "half_step_theta", "byzantine_vector", "theta_next"}) {
      EXPECT_LE(MaxScaledError((*direct)[key], doc["expected"][key]), 1e-9) << key;
    }
    return;
  }

  // Aggregators, pipelines and Flag cases: direct and Gram forms.
  launch::AggregateCaseOptions gram_opts;
  gram_opts.gram_form = true;
  gram_opts.slices = 3;
  const bool is_flag = doc.contains("gradients");
  const bool is_nnm_matrix = doc.value("aggregator", "") == "NNM";
  if (is_flag) {
    const bool f32 = doc["params"].value("compute_dtype", "float64") == "float32";
    const double tol = f32 ? 2e-6 : 1e-11;
    const double err = MaxRelativeError((*direct)["output"], doc["expected"]);
    EXPECT_LE(err, tol) << "direct";
    auto gram = launch::RunAggregateCase(path, gram_opts);
    ASSERT_TRUE(gram.ok()) << gram.status().ToString();
    EXPECT_LE(MaxRelativeError((*gram)["output"], doc["expected"]), tol) << "gram";
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.3g", err);
    RecordProperty("max_rel_error", buf);
    return;
  }
  EXPECT_LE(MaxScaledError((*direct)["output"], doc["expected"]), 1e-9) << "direct";
  if (!is_nnm_matrix) {
    auto gram = launch::RunAggregateCase(path, gram_opts);
    ASSERT_TRUE(gram.ok()) << gram.status().ToString();
    EXPECT_LE(MaxScaledError((*gram)["output"], doc["expected"]), 1e-9) << "gram";
  }
  if (doc.contains("meta") && doc["aggregator"].get<std::string>().find('+') == std::string::npos) {
    CheckSelections(doc, false);
    if (!is_nnm_matrix) CheckSelections(doc, true);
  }
  if (doc["meta"].contains("intermediate_nnm_output")) {
    const int f = doc["params"]["pre_aggregators"][0]["f"];
    auto mixed = NearestNeighborMixing(Rows(doc["inputs"]), f);
    ASSERT_TRUE(mixed.ok());
    json rows = json::array();
    for (Eigen::Index i = 0; i < mixed->cols(); ++i) {
      rows.push_back(
          std::vector<double>(mixed->col(i).data(), mixed->col(i).data() + mixed->rows()));
    }
    EXPECT_LE(MaxScaledError(rows, doc["meta"]["intermediate_nnm_output"]), 1e-9);
  }
}

INSTANTIATE_TEST_SUITE_P(All, VectorFileTest, testing::ValuesIn(AllCaseFiles()), TestName);

}  // namespace
}  // namespace phalanx::aggregators
