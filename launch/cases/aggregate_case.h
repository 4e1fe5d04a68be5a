#pragma once
// Runs one reference case file of /work/shared/vectors (or a user's case in
// the same format) through the aggregators library: `phalanx aggregate
// --input CASE.json`. Stateless functions, thread-safe.
//
// Recognised files and results:
//   aggregator cases {"aggregator": "<ByzFL name>", "params", "inputs"}
//                      -> {"output": [d]}  (NNM: {"output": [[d] x n]})
//   pipelines        {"aggregator": "NNM+<Rule>", "params": {"pre_aggregators",
//                      "aggregator"}, "inputs"} -> {"output": [d]}
//   Flag cases       {"params": {r_col, lambda_, n_its, eps}, "gradients",
//                      "init_Y"?} -> {"output": [d]}
//   attack cases     {"attack", "params", "honest"} -> {"byzantine": [[d] x f]}
//   MoNNA rounds     {"algorithm": "MoNNA-round", ...} -> {"momentum",
//                      "half_step_theta", "byzantine_vector", "theta_next"}
// Phalanx rule names ("krum", "nnm+trimmed-mean", ...) are accepted as
// "aggregator" too, with "f" and the numeric parameters in "params".
// Missing files, malformed JSON and wrong shapes give a non-OK Status.

#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"

namespace phalanx::launch {

struct AggregateCaseOptions {
  // Compute aggregator/pipeline/Flag cases through the two-phase Gram form
  // (partial Grams of `slices` row slices, summed; plan applied per slice)
  // instead of the direct form.
  bool gram_form = false;
  int slices = 3;
};

Result<nlohmann::json> RunAggregateCase(const std::string& path);
Result<nlohmann::json> RunAggregateCase(const std::string& path,
                                        const AggregateCaseOptions& options);
Result<nlohmann::json> RunAggregateCaseJson(const nlohmann::json& doc,
                                            const AggregateCaseOptions& options);

// JSON text of a case result with every number printed with 17 significant
// digits (round-trips exactly).
std::string FormatCaseOutput(const nlohmann::json& result);

}  // namespace phalanx::launch
