// NNM as a pre-aggregator, and "nnm+<rule>" as a composed rule ("nnm+mean" is
// the former "nna"; the current "nna" is the robust-pivot form in nna.cc).
//
// Gram form of the composition: NNM's output is G * A (A: n x n mixing), so
// the inner rule sees the Gram matrix A^T K A; its plan's mixing M is then
// composed as A * M, which keeps the whole pipeline exact across shards.

#include <string>
#include <vector>

#include "aggregators/aggregator.h"
#include "aggregators/internal/common.h"
#include "aggregators/internal/rules.h"
#include "aggregators/preaggregators.h"

namespace phalanx::aggregators {

Result<Eigen::MatrixXd> NearestNeighborMixing(const Eigen::MatrixXd& inputs, int f,
                                              std::vector<std::vector<int>>* neighbours) {
  PHX_RETURN_IF_ERROR(internal::CheckInputs(inputs, 1, "nnm"));
  if (f < 0 || f >= inputs.cols()) {
    return InvalidArgument("nnm: needs 0 <= f < n, got n=" + std::to_string(inputs.cols()) +
                           ", f=" + std::to_string(f));
  }
  const Eigen::MatrixXd mix =
      internal::NnmMixing(internal::PairwiseSquaredDistances(inputs), f, neighbours);
  return Eigen::MatrixXd(inputs * mix);
}

Result<Eigen::MatrixXd> StaticClipping(const Eigen::MatrixXd& inputs, double c) {
  PHX_RETURN_IF_ERROR(internal::CheckInputs(inputs, 1, "clipping"));
  if (!(c > 0)) return InvalidArgument("clipping: c must be > 0");
  Eigen::MatrixXd out = inputs;
  for (Eigen::Index i = 0; i < out.cols(); ++i) {
    const double norm = out.col(i).norm();
    if (norm > c) out.col(i) *= c / norm;
  }
  return out;
}

namespace internal {
namespace {

// NNM(f) then an inner rule. Owns the inner rule; same threading contract as
// any rule (one thread at a time).
class NnmPipeline final : public Aggregator {
 public:
  NnmPipeline(std::string name, int f, std::unique_ptr<Aggregator> inner)
      : name_(std::move(name)), f_(f), inner_(std::move(inner)) {}

  std::string name() const override { return name_; }
  bool coordinate_wise() const override { return false; }
  int num_extra_columns(int n) const override { return inner_->num_extra_columns(n); }
  Result<Eigen::MatrixXd> ExtraColumns(int n, int64_t row_begin, int64_t rows,
                                       const Eigen::VectorXd& previous) const override {
    return inner_->ExtraColumns(n, row_begin, rows, previous);
  }

  Result<Eigen::VectorXd> Aggregate(const Eigen::MatrixXd& inputs) override {
    PHX_RETURN_IF_ERROR(CheckInputs(inputs, 1, name_));
    PHX_RETURN_IF_ERROR(Validate(static_cast<int>(inputs.cols())));
    const Eigen::MatrixXd mix = NnmMixing(PairwiseSquaredDistances(inputs), f_, nullptr);
    const Eigen::MatrixXd mixed = inputs * mix;
    PHX_ASSIGN_OR_RETURN(Eigen::VectorXd out, inner_->Aggregate(mixed));
    selected_ = inner_->selected();
    return out;
  }

  Result<GramPlan> PlanFromGram(const Eigen::MatrixXd& gram, int n) override {
    const int k = inner_->num_extra_columns(n);
    PHX_RETURN_IF_ERROR(CheckGram(gram, n, k, name_));
    PHX_RETURN_IF_ERROR(Validate(n));
    const Eigen::MatrixXd mix = NnmMixing(SquaredDistancesFromGram(gram, n), f_, nullptr);
    Eigen::MatrixXd full = Eigen::MatrixXd::Identity(n + k, n + k);
    full.topLeftCorner(n, n) = mix;
    Eigen::MatrixXd inner_gram = full.transpose() * gram * full;
    // Symmetrise: the inner rule's exact tie-breaking relies on symmetry.
    inner_gram = (0.5 * (inner_gram + inner_gram.transpose())).eval();
    PHX_ASSIGN_OR_RETURN(GramPlan plan, inner_->PlanFromGram(inner_gram, n));
    plan.mixing = (full * plan.mixing).eval();
    selected_ = inner_->selected();
    return plan;
  }

 private:
  Status Validate(int n) const {
    if (f_ >= n) {
      return InvalidArgument(name_ + ": NNM needs f < n, got n=" + std::to_string(n) +
                             ", f=" + std::to_string(f_));
    }
    return Status::Ok();
  }

  std::string name_;
  int f_;
  std::unique_ptr<Aggregator> inner_;
};

}  // namespace

std::unique_ptr<Aggregator> MakeNnmPipeline(std::string name, int f,
                                            std::unique_ptr<Aggregator> inner) {
  return std::make_unique<NnmPipeline>(std::move(name), f, std::move(inner));
}

}  // namespace internal
}  // namespace phalanx::aggregators
