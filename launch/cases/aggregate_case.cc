#include "launch/cases/aggregate_case.h"

#include <fmt/format.h>

#include <Eigen/Dense>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "aggregators/aggregator.h"
#include "aggregators/attacks.h"
#include "aggregators/gram.h"
#include "aggregators/monna.h"
#include "aggregators/preaggregators.h"

namespace phalanx::launch {
namespace {

namespace agg = ::phalanx::aggregators;
using nlohmann::json;

// Rows of JSON numbers (n rows of length d) -> d x n, column i = row i.
Result<Eigen::MatrixXd> ParseRows(const json& doc, const std::string& what) {
  if (!doc.is_array() || doc.empty()) {
    return InvalidArgument("'" + what + "' must be a non-empty array of rows");
  }
  const size_t n = doc.size();
  if (!doc[0].is_array() || doc[0].empty()) {
    return InvalidArgument("'" + what + "' must be an array of non-empty number arrays");
  }
  const size_t d = doc[0].size();
  Eigen::MatrixXd out(d, n);
  for (size_t i = 0; i < n; ++i) {
    const json& row = doc[i];
    if (!row.is_array() || row.size() != d) {
      return InvalidArgument("'" + what + "' row " + std::to_string(i) + " does not have " +
                             std::to_string(d) + " entries");
    }
    for (size_t j = 0; j < d; ++j) {
      if (!row[j].is_number()) {
        return InvalidArgument("'" + what + "' row " + std::to_string(i) + " entry " +
                               std::to_string(j) + " is not a number");
      }
      out(j, i) = row[j].get<double>();
    }
  }
  return out;
}

Result<Eigen::VectorXd> ParseVector(const json& doc, const std::string& what) {
  if (!doc.is_array() || doc.empty()) return InvalidArgument("'" + what + "' must be a vector");
  Eigen::VectorXd out(doc.size());
  for (size_t j = 0; j < doc.size(); ++j) {
    if (!doc[j].is_number()) return InvalidArgument("'" + what + "' has a non-number");
    out[j] = doc[j].get<double>();
  }
  return out;
}

// A d x n matrix as n JSON rows.
json RowsJson(const Eigen::MatrixXd& m) {
  json rows = json::array();
  for (Eigen::Index i = 0; i < m.cols(); ++i) {
    rows.push_back(std::vector<double>(m.col(i).data(), m.col(i).data() + m.rows()));
  }
  return rows;
}

json VectorJson(const Eigen::VectorXd& v) {
  return std::vector<double>(v.data(), v.data() + v.size());
}

const json& Member(const json& obj, const std::string& key) {
  static const json kNull;
  if (!obj.is_object()) return kNull;
  auto it = obj.find(key);
  return it == obj.end() ? kNull : *it;
}

int IntOr(const json& obj, const std::string& key, int fallback) {
  const json& v = Member(obj, key);
  return v.is_number() ? v.get<int>() : fallback;
}

double NumberOr(const json& obj, const std::string& key, double fallback) {
  const json& v = Member(obj, key);
  return v.is_number() ? v.get<double>() : fallback;
}

// ByzFL aggregator description ({"name", <params>} or name + params object)
// -> Phalanx options. Numeric ByzFL parameters map one to one; the vector
// files give T explicitly, so early stopping is off (tol = 0).
Result<agg::AggregatorOptions> OptionsFromByzfl(const std::string& name, const json& params) {
  agg::AggregatorOptions o;
  o.f = IntOr(params, "f", 0);
  static const std::map<std::string, std::string> kNames = {
      {"Average", "mean"},
      {"Median", "median"},
      {"TrMean", "trimmed-mean"},
      {"Meamed", "meamed"},
      {"Krum", "krum"},
      {"MultiKrum", "multi-krum"},
      {"GeometricMedian", "geometric-median"},
      {"CenteredClipping", "centered-clipping"},
      {"MDA", "mda"},
      {"MoNNA", "monna"},
      {"Bulyan", "bulyan"}};
  auto it = kNames.find(name);
  if (it != kNames.end()) {
    o.name = it->second;
    if (name == "GeometricMedian") {
      o.params["nu"] = NumberOr(params, "nu", 0.1);
      o.params["T"] = IntOr(params, "T", 3);
      o.params["tol"] = 0.0;
    } else if (name == "CenteredClipping") {
      o.params["tau"] = NumberOr(params, "tau", 100.0);
      o.params["L"] = IntOr(params, "L", 1);
      const json& m = Member(params, "m");
      if (m.is_array()) {
        PHX_ASSIGN_OR_RETURN(o.center, ParseVector(m, "params.m"));
      }
    } else if (name == "MoNNA") {
      o.params["idx"] = IntOr(params, "idx", 0);
    }
    return o;
  }
  // A Phalanx rule name with numeric params.
  o.name = name;
  if (params.is_object()) {
    for (const auto& [key, value] : params.items()) {
      if (key == "f") continue;
      if (value.is_number()) o.params[key] = value.get<double>();
    }
  }
  return o;
}

Result<Eigen::VectorXd> RunRule(const agg::AggregatorOptions& options, const Eigen::MatrixXd& x,
                                const AggregateCaseOptions& run) {
  PHX_ASSIGN_OR_RETURN(auto rule, agg::CreateAggregator(options));
  if (options.center.size() != 0 && options.center.size() != x.rows()) {
    return InvalidArgument("centre 'm' has dimension " + std::to_string(options.center.size()) +
                           ", inputs " + std::to_string(x.rows()));
  }
  if (run.gram_form) return agg::AggregateViaGram(*rule, x, run.slices);
  return rule->Aggregate(x);
}

Result<json> RunAggregatorCase(const json& doc, const AggregateCaseOptions& run) {
  const std::string name = doc.at("aggregator").get<std::string>();
  const json& params = Member(doc, "params");
  PHX_ASSIGN_OR_RETURN(const Eigen::MatrixXd x, ParseRows(Member(doc, "inputs"), "inputs"));
  if (name == "NNM") {
    PHX_ASSIGN_OR_RETURN(const Eigen::MatrixXd mixed,
                         agg::NearestNeighborMixing(x, IntOr(params, "f", 0)));
    return json{{"output", RowsJson(mixed)}};
  }
  if (name.rfind("NNM+", 0) == 0) {
    // ByzFL pipeline: pre_aggregators [NNM(f)] then the aggregator.
    const json& pre = Member(params, "pre_aggregators");
    const json& inner = Member(params, "aggregator");
    if (!pre.is_array() || pre.size() != 1 || Member(pre[0], "name") != "NNM" ||
        !inner.is_object() || !Member(inner, "name").is_string()) {
      return InvalidArgument("pipeline: expected pre_aggregators [NNM] and an aggregator");
    }
    const int nnm_f = IntOr(pre[0], "f", 0);
    PHX_ASSIGN_OR_RETURN(agg::AggregatorOptions o,
                         OptionsFromByzfl(Member(inner, "name").get<std::string>(), inner));
    if (!Member(inner, "f").is_null() && o.f != nnm_f) {
      // Different f for NNM and the rule: compose by hand (direct form only).
      if (run.gram_form) return InvalidArgument("pipeline: NNM f != rule f in Gram form");
      PHX_ASSIGN_OR_RETURN(const Eigen::MatrixXd mixed, agg::NearestNeighborMixing(x, nnm_f));
      PHX_ASSIGN_OR_RETURN(const Eigen::VectorXd out, RunRule(o, mixed, run));
      return json{{"output", VectorJson(out)}};
    }
    o.name = "nnm+" + o.name;
    o.f = nnm_f;
    PHX_ASSIGN_OR_RETURN(const Eigen::VectorXd out, RunRule(o, x, run));
    return json{{"output", VectorJson(out)}};
  }
  PHX_ASSIGN_OR_RETURN(const agg::AggregatorOptions o, OptionsFromByzfl(name, params));
  PHX_ASSIGN_OR_RETURN(const Eigen::VectorXd out, RunRule(o, x, run));
  return json{{"output", VectorJson(out)}};
}

Result<json> RunFlagCase(const json& doc, const AggregateCaseOptions& run) {
  const json& params = Member(doc, "params");
  PHX_ASSIGN_OR_RETURN(const Eigen::MatrixXd x, ParseRows(Member(doc, "gradients"), "gradients"));
  agg::AggregatorOptions o;
  o.name = "flag";
  o.f = IntOr(params, "f_kwarg", 0);
  o.params["r"] = IntOr(params, "r_col", 1);
  o.params["lambda"] = NumberOr(params, "lambda_", 0.0);
  o.params["n_its"] = IntOr(params, "n_its", 1);
  o.params["eps"] = NumberOr(params, "eps", 1e-7);
  o.seed = static_cast<uint64_t>(IntOr(params, "seed_init", 1));
  const json& init = Member(doc, "init_Y");
  if (!init.is_null()) {
    // init_Y is d rows x r columns: parse as rows, then transpose to d x r.
    PHX_ASSIGN_OR_RETURN(const Eigen::MatrixXd rows, ParseRows(init, "init_Y"));
    o.initial_subspace = rows.transpose();
    if (o.initial_subspace.rows() != x.rows()) {
      return InvalidArgument("init_Y has " + std::to_string(o.initial_subspace.rows()) +
                             " rows, gradients have dimension " + std::to_string(x.rows()));
    }
  }
  PHX_ASSIGN_OR_RETURN(const Eigen::VectorXd out, RunRule(o, x, run));
  return json{{"output", VectorJson(out)}};
}

// Builds the server pipeline of an Optimal_* attack from ByzFL's schema.
Result<agg::ServerAggregate> ServerFromByzfl(const json& params) {
  const json& info = Member(params, "aggregator_info");
  std::string name = "Average";
  json agg_params = json::object();
  if (info.is_object()) {
    name = Member(info, "name").is_string() ? Member(info, "name").get<std::string>() : name;
    agg_params = Member(info, "parameters").is_object() ? Member(info, "parameters") : agg_params;
  }
  PHX_ASSIGN_OR_RETURN(const agg::AggregatorOptions options, OptionsFromByzfl(name, agg_params));
  struct Pre {
    std::string name;
    double value;
  };
  std::vector<Pre> pre;
  const json& list = Member(params, "pre_agg_list");
  if (list.is_null()) {
    pre.push_back({"Clipping", 2.0});  // ByzFL's default pre_agg_list
  } else if (list.is_array()) {
    for (const json& p : list) {
      const std::string pname =
          Member(p, "name").is_string() ? Member(p, "name").get<std::string>() : "";
      const json& pp = Member(p, "parameters");
      if (pname == "NNM") {
        pre.push_back({pname, static_cast<double>(IntOr(pp, "f", 0))});
      } else if (pname == "Clipping") {
        pre.push_back({pname, NumberOr(pp, "c", 2.0)});
      } else {
        return InvalidArgument("unsupported pre-aggregator '" + pname + "'");
      }
    }
  } else {
    return InvalidArgument("pre_agg_list must be an array");
  }
  return agg::ServerAggregate(
      [options, pre](const Eigen::MatrixXd& vectors) -> Result<Eigen::VectorXd> {
        Eigen::MatrixXd x = vectors;
        for (const Pre& p : pre) {
          if (p.name == "NNM") {
            PHX_ASSIGN_OR_RETURN(x, agg::NearestNeighborMixing(x, static_cast<int>(p.value)));
          } else {
            PHX_ASSIGN_OR_RETURN(x, agg::StaticClipping(x, p.value));
          }
        }
        // A fresh rule per evaluation: stateful rules must not carry state
        // between line-search probes.
        PHX_ASSIGN_OR_RETURN(auto rule, agg::CreateAggregator(options));
        return rule->Aggregate(x);
      });
}

Result<json> RunAttackCase(const json& doc) {
  const std::string attack = doc.at("attack").get<std::string>();
  const json& params = Member(doc, "params");
  const json& meta = Member(doc, "meta");
  PHX_ASSIGN_OR_RETURN(const Eigen::MatrixXd honest, ParseRows(Member(doc, "honest"), "honest"));
  const int f = IntOr(params, "f", 1);
  if (f < 1) return InvalidArgument("attack: f must be >= 1");
  Eigen::VectorXd byz;
  if (attack == "SignFlipping") {
    PHX_ASSIGN_OR_RETURN(byz, agg::SignFlippingAttack(honest));
  } else if (attack == "LabelFlipping") {
    PHX_ASSIGN_OR_RETURN(byz, agg::LabelFlippingAttack(honest));
  } else if (attack == "ALittleIsEnough") {
    PHX_ASSIGN_OR_RETURN(byz, agg::ALittleIsEnoughAttack(honest, NumberOr(params, "tau", 1.5)));
  } else if (attack == "InnerProductManipulation") {
    PHX_ASSIGN_OR_RETURN(byz,
                         agg::InnerProductManipulationAttack(honest, NumberOr(params, "tau", 2.0)));
  } else if (attack == "Mimic") {
    PHX_ASSIGN_OR_RETURN(byz, agg::MimicAttack(honest, IntOr(params, "epsilon", 0)));
  } else if (attack == "Gaussian") {
    const uint64_t seed =
        static_cast<uint64_t>(NumberOr(meta, "numpy_legacy_seed", NumberOr(meta, "seed", 1.0)));
    byz = agg::GaussianAttack(honest.rows(), NumberOr(params, "mu", 0.0),
                              NumberOr(params, "sigma", 1.0), seed);
  } else if (attack == "Optimal_ALittleIsEnough" || attack == "Optimal_InnerProductManipulation") {
    PHX_ASSIGN_OR_RETURN(const agg::ServerAggregate server, ServerFromByzfl(params));
    agg::LineSearchOptions ls;
    ls.evals = IntOr(params, "evals", ls.evals);
    ls.start = NumberOr(params, "start", ls.start);
    ls.delta = NumberOr(params, "delta", ls.delta);
    ls.ratio = NumberOr(params, "ratio", ls.ratio);
    double tau = 0.0;
    if (attack == "Optimal_ALittleIsEnough") {
      PHX_ASSIGN_OR_RETURN(byz, agg::OptimalALittleIsEnoughAttack(honest, f, server, ls, &tau));
    } else {
      PHX_ASSIGN_OR_RETURN(byz,
                           agg::OptimalInnerProductManipulationAttack(honest, f, server, ls, &tau));
    }
    Eigen::MatrixXd rows = byz.replicate(1, f);
    return json{{"byzantine", RowsJson(rows)}, {"tau_opt", tau}};
  } else {
    return InvalidArgument("unknown attack '" + attack + "'");
  }
  Eigen::MatrixXd rows = byz.replicate(1, f);
  return json{{"byzantine", RowsJson(rows)}};
}

Result<json> RunMonnaRoundCase(const json& doc) {
  const json& params = Member(doc, "params");
  const json& inputs = Member(doc, "inputs");
  agg::MonnaRoundInput in;
  PHX_ASSIGN_OR_RETURN(in.theta, ParseRows(Member(inputs, "theta"), "inputs.theta"));
  PHX_ASSIGN_OR_RETURN(in.momentum, ParseRows(Member(inputs, "momentum"), "inputs.momentum"));
  PHX_ASSIGN_OR_RETURN(in.gradient, ParseRows(Member(inputs, "gradient"), "inputs.gradient"));
  const json& received = Member(inputs, "received_honest_indices");
  if (!received.is_array()) return InvalidArgument("inputs.received_honest_indices missing");
  for (const json& list : received) {
    in.received.push_back(list.get<std::vector<int>>());
  }
  in.f = IntOr(params, "f", 0);
  in.beta = NumberOr(params, "beta", 0.9);
  in.lr = NumberOr(params, "lr", 0.1);
  in.alie_tau = NumberOr(Member(params, "byzantine_attack"), "tau", 1.5);
  PHX_ASSIGN_OR_RETURN(const agg::MonnaRoundOutput out, agg::MonnaRound(in));
  return json{{"momentum", RowsJson(out.momentum)},
              {"half_step_theta", RowsJson(out.half_step_theta)},
              {"byzantine_vector", VectorJson(out.byzantine_vector)},
              {"theta_next", RowsJson(out.theta_next)}};
}

void FormatValue(const json& v, std::string& out) {
  if (v.is_array()) {
    out += '[';
    for (size_t i = 0; i < v.size(); ++i) {
      if (i > 0) out += ", ";
      FormatValue(v[i], out);
    }
    out += ']';
  } else if (v.is_object()) {
    out += '{';
    bool first = true;
    for (const auto& [key, value] : v.items()) {
      if (!first) out += ", ";
      first = false;
      out += json(key).dump();
      out += ": ";
      FormatValue(value, out);
    }
    out += '}';
  } else if (v.is_number_float()) {
    out += fmt::format("{:.17g}", v.get<double>());
  } else {
    out += v.dump();
  }
}

}  // namespace

Result<nlohmann::json> RunAggregateCaseJson(const nlohmann::json& doc,
                                            const AggregateCaseOptions& options) {
  try {
    if (!doc.is_object()) return InvalidArgument("case must be a JSON object");
    if (doc.contains("attack")) return RunAttackCase(doc);
    if (Member(doc, "algorithm") == "MoNNA-round") return RunMonnaRoundCase(doc);
    if (doc.contains("gradients")) return RunFlagCase(doc, options);
    if (doc.contains("aggregator")) return RunAggregatorCase(doc, options);
    return InvalidArgument(
        "unrecognised case: expected 'aggregator', 'gradients', 'attack' or 'algorithm'");
  } catch (const std::exception& e) {
    // nlohmann type errors (e.g. a string where a number is expected).
    return InvalidArgument(std::string("malformed case: ") + e.what());
  }
}

Result<nlohmann::json> RunAggregateCase(const std::string& path,
                                        const AggregateCaseOptions& options) {
  std::ifstream in(path);
  if (!in) return NotFound("cannot open case file '" + path + "'");
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    return InvalidArgument("'" + path + "' is not valid JSON: " + e.what());
  }
  PHX_ASSIGN_OR_RETURN(nlohmann::json result, RunAggregateCaseJson(doc, options));
  return result;
}

Result<nlohmann::json> RunAggregateCase(const std::string& path) {
  return RunAggregateCase(path, AggregateCaseOptions{});
}

std::string FormatCaseOutput(const nlohmann::json& result) {
  std::string out;
  FormatValue(result, out);
  return out;
}

}  // namespace phalanx::launch
