// "nna": nearest-neighbour averaging around a robust pivot, the
// parameter-server form of NNA (docs/aggregation-rules.md, "NNA, MoNNA and
// NNM": robust pivot; MoNNA repo `cva --gar-pivot`). The pivot is p = A(X) for a
// robust rule A (geometric median by default, Krum with pivot=1); the output
// is the mean of the k = n - f inputs nearest to p (squared Euclidean
// distance, ties by (distance, index)).
//
// Gram form: the pivot rule's plan gives p = X c_p, so the distances follow
// from K alone: ||x_i - p||^2 = K_ii - 2 (K c_p)_i + c_p^T K c_p. The plan is
// a selection of the k nearest (mixing n x k, 0/1) with coefficients 1/k.
//
// The old "nna" (NNM then mean, §2.3 option 3) is "nnm+mean".

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "aggregators/aggregator.h"
#include "aggregators/internal/common.h"
#include "aggregators/internal/rules.h"

namespace phalanx::aggregators::internal {
namespace {

class RobustPivotNna final : public Aggregator {
 public:
  RobustPivotNna(int f, int k, std::unique_ptr<Aggregator> pivot)
      : f_(f), k_(k), pivot_(std::move(pivot)) {}
  std::string name() const override { return "nna"; }
  bool coordinate_wise() const override { return false; }

  Result<Eigen::VectorXd> Aggregate(const Eigen::MatrixXd& inputs) override {
    PHX_RETURN_IF_ERROR(CheckInputs(inputs, 1, name()));
    const int n = static_cast<int>(inputs.cols());
    PHX_RETURN_IF_ERROR(Validate(n));
    PHX_ASSIGN_OR_RETURN(const Eigen::VectorXd p, pivot_->Aggregate(inputs));
    Eigen::VectorXd d2(n);
    for (int i = 0; i < n; ++i) d2[i] = (inputs.col(i) - p).squaredNorm();
    const GramPlan plan = SelectionPlan(d2);
    selected_ = plan.selected;
    return MixColumns(inputs, plan.mixing * plan.coefficients);
  }

  Result<GramPlan> PlanFromGram(const Eigen::MatrixXd& gram, int n) override {
    PHX_RETURN_IF_ERROR(CheckGram(gram, n, 0, name()));
    PHX_RETURN_IF_ERROR(Validate(n));
    PHX_ASSIGN_OR_RETURN(const GramPlan pivot_plan, pivot_->PlanFromGram(gram, n));
    if (!pivot_plan.coordinatewise_rule.empty() || pivot_plan.mixing.rows() != n ||
        pivot_plan.coefficients.size() != pivot_plan.mixing.cols()) {
      return Internal("nna: the pivot rule's plan is not a linear combination of the inputs");
    }
    const Eigen::VectorXd c = pivot_plan.mixing * pivot_plan.coefficients;
    const Eigen::VectorXd kc = gram * c;
    const double ckc = c.dot(kc);
    Eigen::VectorXd d2(n);
    for (int i = 0; i < n; ++i) d2[i] = std::max(0.0, gram(i, i) - 2.0 * kc[i] + ckc);
    GramPlan plan = SelectionPlan(d2);
    selected_ = plan.selected;
    return plan;
  }

 private:
  int KeepCount(int n) const { return k_ > 0 ? k_ : n - f_; }

  Status Validate(int n) const {
    PHX_RETURN_IF_ERROR(RequireTwoFLessThanN("nna", n, f_));
    if (k_ > n) {
      return InvalidArgument("nna: k=" + std::to_string(k_) + " exceeds n=" + std::to_string(n));
    }
    return Status::Ok();
  }

  // The k nearest to the pivot (ties by index), as a 0/1 selection with
  // coefficients 1/k; `selected` ascending.
  GramPlan SelectionPlan(const Eigen::VectorXd& d2) const {
    const int n = static_cast<int>(d2.size());
    const int k = KeepCount(n);
    std::vector<int> chosen = StableSmallest(d2, k);
    std::sort(chosen.begin(), chosen.end());
    GramPlan plan;
    plan.mixing = Eigen::MatrixXd::Zero(n, k);
    for (int t = 0; t < k; ++t) plan.mixing(chosen[t], t) = 1.0;
    plan.coefficients = Eigen::VectorXd::Constant(k, 1.0 / k);
    plan.selected = std::move(chosen);
    return plan;
  }

  int f_;
  int k_;  // 0: n - f
  std::unique_ptr<Aggregator> pivot_;
};

}  // namespace

Result<std::unique_ptr<Aggregator>> MakeNna(int f, ParamReader& params) {
  const double pivot = params.Get("pivot", 0);
  PHX_ASSIGN_OR_RETURN(const int k, params.GetInt("k", 0, 0));
  // The pivot rule runs with its own defaults, not the nna params.
  const std::map<std::string, double> no_params;
  ParamReader pivot_params("nna", no_params);
  std::unique_ptr<Aggregator> pivot_rule;
  if (pivot == 0) {
    PHX_ASSIGN_OR_RETURN(pivot_rule, MakeGeometricMedian(pivot_params));
  } else if (pivot == 1) {
    PHX_ASSIGN_OR_RETURN(pivot_rule, MakeKrum(false, f, pivot_params));
  } else {
    return InvalidArgument("nna: parameter 'pivot' must be 0 (geometric median) or 1 (krum), got " +
                           std::to_string(pivot));
  }
  return std::unique_ptr<Aggregator>(std::make_unique<RobustPivotNna>(f, k, std::move(pivot_rule)));
}

}  // namespace phalanx::aggregators::internal
