#pragma once
// Factories of the concrete rules, used by the registry (registry.cc). Each
// factory validates its parameters and returns InvalidArgument on bad ones.

#include <map>
#include <memory>
#include <set>
#include <string>

#include "aggregators/aggregator.h"
#include "common/status.h"

namespace phalanx::aggregators::internal {

// Reads named numeric parameters and reports unknown ones, so a typo in a
// config ("tua") is an error instead of a silently ignored value.
class ParamReader {
 public:
  ParamReader(std::string rule, const std::map<std::string, double>& params)
      : rule_(std::move(rule)), params_(params) {}
  double Get(const std::string& key, double fallback);
  bool Has(const std::string& key) const { return params_.count(key) > 0; }
  // An integer parameter >= min_value.
  Result<int> GetInt(const std::string& key, int fallback, int min_value);
  // InvalidArgument naming any parameter that no Get/GetInt call consumed.
  Status CheckAllUsed() const;

 private:
  std::string rule_;
  const std::map<std::string, double>& params_;
  std::set<std::string> used_;
};

// f validation shared by the rules: InvalidArgument with the rule's bound.
Status RequireTwoFLessThanN(const std::string& rule, int n, int f);

Result<std::unique_ptr<Aggregator>> MakeCoordinatewise(const std::string& name, int f,
                                                       ParamReader& params);
Result<std::unique_ptr<Aggregator>> MakeKrum(bool multi, int f, ParamReader& params);
Result<std::unique_ptr<Aggregator>> MakeMda(int f, ParamReader& params);
Result<std::unique_ptr<Aggregator>> MakeMonna(int f, ParamReader& params);
Result<std::unique_ptr<Aggregator>> MakeBulyan(int f, ParamReader& params);
// "nna": the mean of the n - f (or k) inputs nearest to a robust pivot
// (geometric median, or Krum with pivot=1); specs §2.3 option 2.
Result<std::unique_ptr<Aggregator>> MakeNna(int f, ParamReader& params);
Result<std::unique_ptr<Aggregator>> MakeGeometricMedian(ParamReader& params);
Result<std::unique_ptr<Aggregator>> MakeCenteredClipping(const AggregatorOptions& options,
                                                         ParamReader& params);
Result<std::unique_ptr<Aggregator>> MakeFlag(const AggregatorOptions& options, ParamReader& params);
// NNM(f) followed by `inner`; display name e.g. "nnm+krum" or "nnm+mean".
std::unique_ptr<Aggregator> MakeNnmPipeline(std::string name, int f,
                                            std::unique_ptr<Aggregator> inner);

}  // namespace phalanx::aggregators::internal
