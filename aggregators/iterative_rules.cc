// Iterative rules whose iterate stays a linear combination of the inputs (and
// extra columns): the geometric median by smoothed Weiszfeld (ByzFL
// GeometricMedian / RFA) and centered clipping (ByzFL CenteredClipping). The
// Gram form runs the same iteration on the coefficient vector c of the
// iterate z = X c, with ||x_i - z||^2 = (e_i - c)^T K (e_i - c).

#include <algorithm>
#include <cmath>
#include <string>

#include "aggregators/aggregator.h"
#include "aggregators/internal/common.h"
#include "aggregators/internal/rules.h"

namespace phalanx::aggregators::internal {
namespace {

// Squared distances of column i (i < n) of X to z = X c, from K = X^T X.
Eigen::VectorXd DistancesToCombination(const Eigen::MatrixXd& gram, int n,
                                       const Eigen::VectorXd& c) {
  const Eigen::VectorXd kc = gram * c;
  const double cc = c.dot(kc);
  Eigen::VectorXd d2(n);
  for (int i = 0; i < n; ++i) d2[i] = std::max(0.0, gram(i, i) - 2.0 * kc[i] + cc);
  return d2;
}

Eigen::VectorXd ColumnDistances(const Eigen::MatrixXd& x, const Eigen::VectorXd& z) {
  Eigen::VectorXd d(x.cols());
  for (Eigen::Index i = 0; i < x.cols(); ++i) d[i] = (x.col(i) - z).norm();
  return d;
}

// Smoothed Weiszfeld: z <- sum_i b_i x_i / sum_i b_i, b_i = 1/max(||x_i - z||,
// nu), T iterations from z0 (0 as in ByzFL, or the mean), stopping early when
// tol > 0 and the step is below tol * ||z||.
class GeometricMedian final : public Aggregator {
 public:
  GeometricMedian(double nu, int max_iter, double tol, bool start_at_mean)
      : nu_(nu), max_iter_(max_iter), tol_(tol), start_at_mean_(start_at_mean) {}
  std::string name() const override { return "geometric-median"; }
  bool coordinate_wise() const override { return false; }

  Result<Eigen::VectorXd> Aggregate(const Eigen::MatrixXd& inputs) override {
    PHX_RETURN_IF_ERROR(CheckInputs(inputs, 1, name()));
    const int n = static_cast<int>(inputs.cols());
    Eigen::VectorXd z = start_at_mean_ ? MixColumns(inputs, Eigen::VectorXd::Constant(n, 1.0 / n))
                                       : Eigen::VectorXd::Zero(inputs.rows());
    for (int t = 0; t < max_iter_; ++t) {
      const Eigen::VectorXd dist = ColumnDistances(inputs, z);
      const Eigen::VectorXd beta = dist.cwiseMax(nu_).cwiseInverse();
      Eigen::VectorXd next = MixColumns(inputs, beta / beta.sum());
      const bool done = tol_ > 0 && (next - z).norm() <= tol_ * next.norm();
      z = std::move(next);
      if (done) break;
    }
    return z;
  }

  Result<GramPlan> PlanFromGram(const Eigen::MatrixXd& gram, int n) override {
    PHX_RETURN_IF_ERROR(CheckGram(gram, n, 0, name()));
    Eigen::VectorXd c = Eigen::VectorXd::Constant(n, start_at_mean_ ? 1.0 / n : 0.0);
    for (int t = 0; t < max_iter_; ++t) {
      const Eigen::VectorXd dist = DistancesToCombination(gram, n, c).cwiseSqrt();
      const Eigen::VectorXd beta = dist.cwiseMax(nu_).cwiseInverse();
      const Eigen::VectorXd next = beta / beta.sum();
      const Eigen::VectorXd step = next - c;
      const bool done = tol_ > 0 && std::sqrt(std::max(0.0, step.dot(gram * step))) <=
                                        tol_ * std::sqrt(std::max(0.0, next.dot(gram * next)));
      c = next;
      if (done) break;
    }
    GramPlan plan;
    plan.mixing = c;
    plan.coefficients = Eigen::VectorXd::Ones(1);
    return plan;
  }

 private:
  double nu_;
  int max_iter_;
  double tol_;
  bool start_at_mean_;
};

// Centered clipping: v <- v + (1/n) sum_i (x_i - v) min(1, tau/||x_i - v||),
// L times from the centre. Stateful in the direct form: the output becomes
// the next call's centre (ByzFL). In the Gram form the centre is extra column
// n, supplied by each shard (its slice of the previous aggregate), so the
// coordinator keeps no d-length state.
class CenteredClipping final : public Aggregator {
 public:
  CenteredClipping(double tau, int iterations, Eigen::VectorXd center)
      : tau_(tau), iterations_(iterations), center_(std::move(center)) {}
  std::string name() const override { return "centered-clipping"; }
  bool coordinate_wise() const override { return false; }
  int num_extra_columns(int n) const override {
    (void)n;
    return 1;
  }

  Result<Eigen::MatrixXd> ExtraColumns(int n, int64_t row_begin, int64_t rows,
                                       const Eigen::VectorXd& previous) const override {
    (void)n;
    if (previous.size() > 0) {
      if (previous.size() != rows) {
        return InvalidArgument("centered-clipping: previous aggregate slice has " +
                               std::to_string(previous.size()) + " rows, expected " +
                               std::to_string(rows));
      }
      return Eigen::MatrixXd(previous);
    }
    if (center_.size() == 0) return Eigen::MatrixXd(Eigen::MatrixXd::Zero(rows, 1));
    if (row_begin < 0 || row_begin + rows > center_.size()) {
      return InvalidArgument("centered-clipping: rows outside the configured centre");
    }
    return Eigen::MatrixXd(center_.segment(row_begin, rows));
  }

  Result<Eigen::VectorXd> Aggregate(const Eigen::MatrixXd& inputs) override {
    PHX_RETURN_IF_ERROR(CheckInputs(inputs, 1, name()));
    if (center_.size() == 0) center_ = Eigen::VectorXd::Zero(inputs.rows());
    if (center_.size() != inputs.rows()) {
      return InvalidArgument("centered-clipping: centre has dimension " +
                             std::to_string(center_.size()) + ", inputs " +
                             std::to_string(inputs.rows()));
    }
    if (!center_.allFinite()) return InvalidArgument("centered-clipping: non-finite centre");
    const double n = static_cast<double>(inputs.cols());
    Eigen::VectorXd v = center_;
    for (int l = 0; l < iterations_; ++l) {
      const Eigen::VectorXd dist = ColumnDistances(inputs, v);
      Eigen::VectorXd w(inputs.cols());
      for (Eigen::Index i = 0; i < w.size(); ++i) w[i] = ClipFactor(dist[i]);
      // v + (1/n) sum_i w_i (x_i - v), as one pass over the inputs.
      Eigen::VectorXd next = MixColumns(inputs, w / n);
      next += (1.0 - w.sum() / n) * v;
      v = std::move(next);
    }
    center_ = v;
    return v;
  }

  Result<GramPlan> PlanFromGram(const Eigen::MatrixXd& gram, int n) override {
    PHX_RETURN_IF_ERROR(CheckGram(gram, n, 1, name()));
    Eigen::VectorXd c = Eigen::VectorXd::Zero(n + 1);
    c[n] = 1.0;
    for (int l = 0; l < iterations_; ++l) {
      const Eigen::VectorXd kc = gram * c;
      const double cc = c.dot(kc);
      Eigen::VectorXd next = c;
      double wsum = 0.0;
      for (int i = 0; i < n; ++i) {
        const double d = std::sqrt(std::max(0.0, gram(i, i) - 2.0 * kc[i] + cc));
        const double w = ClipFactor(d);
        next[i] += w / n;
        wsum += w;
      }
      // next = c + (1/n) sum_i w_i (e_i - c).
      next -= (wsum / n) * c;
      c = std::move(next);
    }
    GramPlan plan;
    plan.mixing = c;
    plan.coefficients = Eigen::VectorXd::Ones(1);
    return plan;
  }

 private:
  // min(1, tau/d), with d = 0 giving 1 (tau/0 = inf in ByzFL).
  double ClipFactor(double d) const { return d > 0 ? std::min(1.0, tau_ / d) : 1.0; }

  double tau_;
  int iterations_;
  Eigen::VectorXd center_;
};

}  // namespace

Result<std::unique_ptr<Aggregator>> MakeGeometricMedian(ParamReader& params) {
  const double nu = params.Get("nu", 0.1);
  PHX_ASSIGN_OR_RETURN(const int max_iter, params.GetInt("T", 100, 0));
  const double tol = params.Get("tol", 1e-6);
  PHX_ASSIGN_OR_RETURN(const int start, params.GetInt("start_at_mean", 0, 0));
  if (!(nu >= 0) || !(tol >= 0)) {
    return InvalidArgument("geometric-median: nu and tol must be >= 0");
  }
  return std::unique_ptr<Aggregator>(
      std::make_unique<GeometricMedian>(nu, max_iter, tol, start != 0));
}

Result<std::unique_ptr<Aggregator>> MakeCenteredClipping(const AggregatorOptions& options,
                                                         ParamReader& params) {
  const double tau = params.Get("tau", 100.0);
  PHX_ASSIGN_OR_RETURN(const int iterations, params.GetInt("L", 1, 0));
  if (!(tau >= 0)) return InvalidArgument("centered-clipping: tau must be >= 0");
  return std::unique_ptr<Aggregator>(
      std::make_unique<CenteredClipping>(tau, iterations, options.center));
}

}  // namespace phalanx::aggregators::internal
