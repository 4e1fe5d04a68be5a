// The registry: rule names and parameters -> rule objects.

#include <string>
#include <vector>

#include "aggregators/aggregator.h"
#include "aggregators/gram.h"
#include "aggregators/internal/rules.h"

namespace phalanx::aggregators {
namespace internal {

double ParamReader::Get(const std::string& key, double fallback) {
  used_.insert(key);
  auto it = params_.find(key);
  return it == params_.end() ? fallback : it->second;
}

Result<int> ParamReader::GetInt(const std::string& key, int fallback, int min_value) {
  const double v = Get(key, fallback);
  if (v != static_cast<double>(static_cast<int>(v)) || v < min_value) {
    return InvalidArgument(rule_ + ": parameter '" + key + "' must be an integer >= " +
                           std::to_string(min_value) + ", got " + std::to_string(v));
  }
  return static_cast<int>(v);
}

Status ParamReader::CheckAllUsed() const {
  for (const auto& [key, value] : params_) {
    if (used_.count(key) == 0) {
      return InvalidArgument(rule_ + ": unknown parameter '" + key + "'");
    }
  }
  return Status::Ok();
}

Status RequireTwoFLessThanN(const std::string& rule, int n, int f) {
  if (2 * f >= n) {
    return InvalidArgument(rule + ": needs n > 2f, got n=" + std::to_string(n) +
                           ", f=" + std::to_string(f));
  }
  return Status::Ok();
}

}  // namespace internal

namespace {

Result<std::unique_ptr<Aggregator>> CreateBase(const std::string& name,
                                               const AggregatorOptions& options,
                                               internal::ParamReader& params) {
  const int f = options.f;
  if (name == "trmean") return internal::MakeCoordinatewise("trimmed-mean", f, params);
  if (name == "mean" || name == "median" || name == "trimmed-mean" || name == "meamed") {
    return internal::MakeCoordinatewise(name, f, params);
  }
  if (name == "krum") return internal::MakeKrum(false, f, params);
  if (name == "multi-krum") return internal::MakeKrum(true, f, params);
  if (name == "mda") return internal::MakeMda(f, params);
  if (name == "monna") return internal::MakeMonna(f, params);
  if (name == "bulyan") return internal::MakeBulyan(f, params);
  if (name == "geometric-median") return internal::MakeGeometricMedian(params);
  if (name == "centered-clipping") return internal::MakeCenteredClipping(options, params);
  if (name == "flag") return internal::MakeFlag(options, params);
  if (name == "nna") return internal::MakeNna(f, params);
  return InvalidArgument("unknown aggregator '" + name + "' (known: mean, median, " +
                         "trimmed-mean, meamed, krum, multi-krum, geometric-median, " +
                         "centered-clipping, mda, bulyan, nna, monna, flag, nnm+<rule>)");
}

}  // namespace

std::vector<std::string> AggregatorNames() {
  return {"mean",
          "median",
          "trimmed-mean",
          "meamed",
          "krum",
          "multi-krum",
          "geometric-median",
          "centered-clipping",
          "mda",
          "bulyan",
          "nna",
          "monna",
          "flag"};
}

Result<std::unique_ptr<Aggregator>> CreateAggregator(const AggregatorOptions& options) {
  if (options.f < 0) return InvalidArgument("aggregator f must be >= 0");
  const std::string& name = options.name;
  internal::ParamReader params(name, options.params);
  std::unique_ptr<Aggregator> rule;
  static const std::string kNnm = "nnm+";
  if (name.rfind(kNnm, 0) == 0) {
    const std::string inner_name = name.substr(kNnm.size());
    if (inner_name.empty()) return InvalidArgument("nnm+: missing the rule after 'nnm+'");
    PHX_ASSIGN_OR_RETURN(auto inner, CreateBase(inner_name, options, params));
    rule = internal::MakeNnmPipeline(name, options.f, std::move(inner));
  } else {
    PHX_ASSIGN_OR_RETURN(rule, CreateBase(name, options, params));
  }
  PHX_RETURN_IF_ERROR(params.CheckAllUsed());
  return rule;
}

Status CheckRuleCanRun(const AggregatorOptions& options, int n) {
  const std::string what = "aggregator '" + options.name + "' with " + std::to_string(n) +
                           " inputs and f = " + std::to_string(options.f);
  if (n < 1) return InvalidArgument(what + ": needs at least one input");
  // Distinct random vectors: no rule can fail on them for a reason other than
  // its parameters or its condition on n and f.
  constexpr int64_t kTrialDim = 8;
  const Eigen::MatrixXd trial = SeededUniformColumns(options.seed, 0, kTrialDim, n);
  {
    PHX_ASSIGN_OR_RETURN(auto rule, CreateAggregator(options));
    auto direct = rule->Aggregate(trial);
    if (!direct.ok()) return InvalidArgument(what + ": " + direct.status().message());
    if (rule->coordinate_wise()) return Status::Ok();
  }
  PHX_ASSIGN_OR_RETURN(auto rule, CreateAggregator(options));  // fresh state for the Gram form
  auto via_gram = AggregateViaGram(*rule, trial, 2);
  if (!via_gram.ok()) return InvalidArgument(what + ": " + via_gram.status().message());
  return Status::Ok();
}

}  // namespace phalanx::aggregators
