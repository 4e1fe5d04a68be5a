// Rules that depend on the inputs only through their pairwise distances and
// output a combination of selected inputs (or a coordinate-wise rule over
// them): the coordinate-wise rules themselves, Krum, Multi-Krum, MDA, MoNNA's
// pivot form (ByzFL MoNNA(f, idx)) and Bulyan. The direct form computes the
// distances from the vectors, the Gram form from K; both then share one
// PlanFromDistances, so they agree whenever the distances agree.

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "aggregators/aggregator.h"
#include "aggregators/internal/common.h"
#include "aggregators/internal/rules.h"

namespace phalanx::aggregators::internal {
namespace {

// A plan whose aggregate is G * c: one mixed column, coefficient 1. Sending c
// rather than an n x n identity keeps phase 2 at O(n) numbers.
GramPlan CombinationPlan(const Eigen::VectorXd& c) {
  GramPlan plan;
  plan.mixing = c;
  plan.coefficients = Eigen::VectorXd::Ones(1);
  return plan;
}

GramPlan AverageOfPlan(int n, const std::vector<int>& subset) {
  Eigen::VectorXd c = Eigen::VectorXd::Zero(n);
  for (int i : subset) c[i] = 1.0 / static_cast<double>(subset.size());
  GramPlan plan = CombinationPlan(c);
  plan.selected = subset;
  std::sort(plan.selected.begin(), plan.selected.end());
  return plan;
}

Result<Eigen::VectorXd> ApplyPlanDirect(const GramPlan& plan, const Eigen::MatrixXd& x) {
  if (plan.coordinatewise_rule.empty()) {
    return MixColumns(x, plan.mixing * plan.coefficients);
  }
  const Eigen::MatrixXd mixed = x * plan.mixing;
  return ApplyCoordinatewise(plan.coordinatewise_rule, plan.coordinatewise_f, mixed);
}

class CoordinatewiseRule final : public Aggregator {
 public:
  CoordinatewiseRule(std::string name, int f) : name_(std::move(name)), f_(f) {}
  std::string name() const override { return name_; }
  bool coordinate_wise() const override { return true; }

  Result<Eigen::VectorXd> Aggregate(const Eigen::MatrixXd& inputs) override {
    PHX_RETURN_IF_ERROR(CheckInputs(inputs, 1, name_));
    PHX_RETURN_IF_ERROR(Validate(static_cast<int>(inputs.cols())));
    return ApplyCoordinatewise(name_, f_, inputs);
  }

  Result<GramPlan> PlanFromGram(const Eigen::MatrixXd& gram, int n) override {
    PHX_RETURN_IF_ERROR(CheckGram(gram, n, 0, name_));
    PHX_RETURN_IF_ERROR(Validate(n));
    if (name_ == "mean") return CombinationPlan(Eigen::VectorXd::Constant(n, 1.0 / n));
    GramPlan plan;
    plan.mixing = Eigen::MatrixXd::Identity(n, n);
    plan.coordinatewise_rule = name_;
    plan.coordinatewise_f = f_;
    return plan;
  }

 private:
  Status Validate(int n) const {
    if (name_ == "trimmed-mean" || name_ == "meamed") return RequireTwoFLessThanN(name_, n, f_);
    return Status::Ok();
  }

  std::string name_;
  int f_;
};

// Shared driver of the distance-based rules.
class DistanceRule : public Aggregator {
 public:
  bool coordinate_wise() const override { return false; }

  Result<Eigen::VectorXd> Aggregate(const Eigen::MatrixXd& inputs) override {
    PHX_RETURN_IF_ERROR(CheckInputs(inputs, 1, name()));
    PHX_RETURN_IF_ERROR(Validate(static_cast<int>(inputs.cols())));
    const GramPlan plan = PlanFromDistances(PairwiseSquaredDistances(inputs));
    selected_ = plan.selected;
    return ApplyPlanDirect(plan, inputs);
  }

  Result<GramPlan> PlanFromGram(const Eigen::MatrixXd& gram, int n) override {
    PHX_RETURN_IF_ERROR(CheckGram(gram, n, 0, name()));
    PHX_RETURN_IF_ERROR(Validate(n));
    GramPlan plan = PlanFromDistances(SquaredDistancesFromGram(gram, n));
    selected_ = plan.selected;
    return plan;
  }

 protected:
  virtual Status Validate(int n) const = 0;
  // d2: n x n squared distances, exactly symmetric.
  virtual GramPlan PlanFromDistances(const Eigen::MatrixXd& d2) const = 0;
};

// Krum / Multi-Krum with ByzFL's conventions (squared distances, n-f-1
// neighbours, lowest index on score ties); paper=1 counts n-f-2 neighbours
// as in Blanchard et al. and then needs n > 2f+2.
class Krum final : public DistanceRule {
 public:
  Krum(bool multi, int f, bool paper, int m) : multi_(multi), f_(f), paper_(paper), m_(m) {}
  std::string name() const override { return multi_ ? "multi-krum" : "krum"; }

 protected:
  Status Validate(int n) const override {
    if (paper_ && n <= 2 * f_ + 2) {
      return InvalidArgument(name() + " (paper=1): needs n > 2f+2, got n=" + std::to_string(n) +
                             ", f=" + std::to_string(f_));
    }
    PHX_RETURN_IF_ERROR(RequireTwoFLessThanN(name(), n, f_));
    if (multi_ && m_ > n) {
      return InvalidArgument("multi-krum: m=" + std::to_string(m_) + " exceeds n");
    }
    return Status::Ok();
  }

  GramPlan PlanFromDistances(const Eigen::MatrixXd& d2) const override {
    const int n = static_cast<int>(d2.rows());
    std::vector<int> all(n);
    for (int i = 0; i < n; ++i) all[i] = i;
    const Eigen::VectorXd scores = KrumScores(d2, all, n - f_ - (paper_ ? 2 : 1));
    if (!multi_) {
      const int best = StableSmallest(scores, 1)[0];
      return AverageOfPlan(n, {best});
    }
    return AverageOfPlan(n, StableSmallest(scores, m_ > 0 ? m_ : n - f_));
  }

 private:
  bool multi_;
  int f_;
  bool paper_;
  int m_;
};

class Mda final : public DistanceRule {
 public:
  explicit Mda(int f) : f_(f) {}
  std::string name() const override { return "mda"; }

 protected:
  Status Validate(int n) const override { return RequireTwoFLessThanN("mda", n, f_); }
  GramPlan PlanFromDistances(const Eigen::MatrixXd& d2) const override {
    const int n = static_cast<int>(d2.rows());
    return AverageOfPlan(n, MinDiameterSubset(d2.cwiseSqrt(), n - f_));
  }

 private:
  int f_;
};

// ByzFL MoNNA(f, idx): the mean of the n-f inputs nearest to input idx. Only
// robust when input idx is trusted (the server's own vector, specs §2.3).
class MonnaPivot final : public DistanceRule {
 public:
  MonnaPivot(int f, int idx) : f_(f), idx_(idx) {}
  std::string name() const override { return "monna"; }

 protected:
  Status Validate(int n) const override {
    PHX_RETURN_IF_ERROR(RequireTwoFLessThanN("monna", n, f_));
    if (idx_ >= n) {
      return InvalidArgument("monna: pivot idx=" + std::to_string(idx_) +
                             " >= n=" + std::to_string(n));
    }
    return Status::Ok();
  }
  GramPlan PlanFromDistances(const Eigen::MatrixXd& d2) const override {
    const int n = static_cast<int>(d2.rows());
    return AverageOfPlan(n, StableSmallest(d2.row(idx_).transpose(), n - f_));
  }

 private:
  int f_;
  int idx_;
};

// Bulyan (specs §10): theta = n-2f rounds of ByzFL Krum(f), then per
// coordinate the mean of the beta = theta-2f selected values nearest the
// median, i.e. meamed with 2f dropped over the selected inputs.
class Bulyan final : public DistanceRule {
 public:
  explicit Bulyan(int f) : f_(f) {}
  std::string name() const override { return "bulyan"; }

 protected:
  Status Validate(int n) const override {
    if (n < 4 * f_ + 3) {
      return InvalidArgument("bulyan: needs n >= 4f+3, got n=" + std::to_string(n) +
                             ", f=" + std::to_string(f_));
    }
    return Status::Ok();
  }
  GramPlan PlanFromDistances(const Eigen::MatrixXd& d2) const override {
    const int n = static_cast<int>(d2.rows());
    const int theta = n - 2 * f_;
    GramPlan plan;
    plan.selected = BulyanSelection(d2, f_, theta);
    plan.mixing = Eigen::MatrixXd::Zero(n, theta);
    for (int t = 0; t < theta; ++t) plan.mixing(plan.selected[t], t) = 1.0;
    plan.coordinatewise_rule = "meamed";
    plan.coordinatewise_f = 2 * f_;
    return plan;
  }

 private:
  int f_;
};

}  // namespace

Result<std::unique_ptr<Aggregator>> MakeCoordinatewise(const std::string& name, int f,
                                                       ParamReader& params) {
  (void)params;
  return std::unique_ptr<Aggregator>(std::make_unique<CoordinatewiseRule>(name, f));
}

Result<std::unique_ptr<Aggregator>> MakeKrum(bool multi, int f, ParamReader& params) {
  PHX_ASSIGN_OR_RETURN(const int paper, params.GetInt("paper", 0, 0));
  int m = 0;
  if (multi) {
    PHX_ASSIGN_OR_RETURN(m, params.GetInt("m", 0, 0));
  }
  return std::unique_ptr<Aggregator>(std::make_unique<Krum>(multi, f, paper != 0, m));
}

Result<std::unique_ptr<Aggregator>> MakeMda(int f, ParamReader& params) {
  (void)params;
  return std::unique_ptr<Aggregator>(std::make_unique<Mda>(f));
}

Result<std::unique_ptr<Aggregator>> MakeMonna(int f, ParamReader& params) {
  PHX_ASSIGN_OR_RETURN(const int idx, params.GetInt("idx", 0, 0));
  return std::unique_ptr<Aggregator>(std::make_unique<MonnaPivot>(f, idx));
}

Result<std::unique_ptr<Aggregator>> MakeBulyan(int f, ParamReader& params) {
  (void)params;
  return std::unique_ptr<Aggregator>(std::make_unique<Bulyan>(f));
}

}  // namespace phalanx::aggregators::internal
