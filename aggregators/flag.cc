// The Flag aggregator (FA) of Almasi et al., as its authors' code computes it
// (docs/aggregation-rules.md, "Flag aggregator"), in its p-space form: the IRLS
// runs on p x p matrices built from the Gram matrix of [G | E], where E holds
// the initial subspace's generating columns, so the cost is O(d p^2) for the
// Gram matrix and never a d x q temporary. The direct form is that same
// computation with the Gram matrix formed locally.
//
// Notation (spec): p workers, x̂_i = g_i / max(||g_i||, norm_eps), K̂ = X̂ᵀX̂,
// Z = YᵀX̂ (coordinates of the unit gradients in the current subspace),
// C = diag(w²) + Σ_{i≠j} c_ij² (e_i - e_j)(e_i - e_j)ᵀ, B = C^{1/2},
// M = B K̂ B = V Λ Vᵀ. Then Y_new = X̂ B V_r Λ_r^{-1/2}, and (using
// B K̂ = M B⁻¹) Z_new = Λ_r^{1/2} V_rᵀ B⁻¹ and the output
// Y Yᵀ X̂ 1 / r = X̂ B V_r V_rᵀ B⁻¹ 1 / r: no Λ⁻¹ appears, which keeps
// near-singular cases stable.

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <string>

#include "aggregators/aggregator.h"
#include "aggregators/gram.h"
#include "aggregators/internal/common.h"
#include "aggregators/internal/rules.h"

namespace phalanx::aggregators::internal {
namespace {

struct FlagParams {
  int r = 0;  // 0: ceil((p+1)/2), resolved per call
  double lambda = 0.0;
  int n_its = 1;
  double eps = 1e-7;
  double norm_eps = 1e-12;
  double tol = 1e-10;
  uint64_t seed = 1;
  // Start from a subspace orthogonal to every input (no extra Gram columns)
  // instead of r seeded random columns. See MakeFlag.
  bool orthogonal_init = true;
};

// Eigenvalues below this fraction of the largest are treated as zero (rank
// deficiency: r > rank, or d < p).
constexpr double kRankTol = 1e-13;

// One IRLS state: Z (r' x p) and the output coefficients over X̂.
struct FlagIterate {
  Eigen::MatrixXd z;
  Eigen::VectorXd a;  // output = X̂ a / r; unused for the initial subspace
};

double Objective(const Eigen::MatrixXd& z) {
  double j = 0.0;
  for (Eigen::Index i = 0; i < z.cols(); ++i) {
    j += std::sqrt(std::max(0.0, 1.0 - z.col(i).squaredNorm()));
  }
  return j;
}

// One weighted flag-mean step (docs/aggregation-rules.md, "One IRLS step") in p-space.
FlagIterate FlagMeanStep(const Eigen::MatrixXd& khat, const Eigen::MatrixXd& z,
                         const FlagParams& params, int r) {
  const int p = static_cast<int>(khat.rows());
  Eigen::MatrixXd c = Eigen::MatrixXd::Zero(p, p);
  for (int i = 0; i < p; ++i) {
    const double s = std::abs(1.0 - z.col(i).squaredNorm());
    c(i, i) = 1.0 / std::sqrt(s + params.eps);  // w_i², w_i = (s + eps)^(-1/4)
  }
  Eigen::MatrixXd b;
  Eigen::MatrixXd b_inv;
  if (params.lambda > 0 && p > 1) {
    const double scale = params.lambda / (static_cast<double>(p) * (p - 1));
    for (int i = 0; i < p; ++i) {
      for (int j = 0; j < p; ++j) {
        if (i == j) continue;
        const double s = std::abs(1.0 - (z.col(i) - z.col(j)).squaredNorm());
        const double cij = scale / std::pow(s + params.eps, 0.25);
        const double c2 = cij * cij;  // ordered pair (i, j): Laplacian term
        c(i, i) += c2;
        c(j, j) += c2;
        c(i, j) -= c2;
        c(j, i) -= c2;
      }
    }
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> ec(c);
    const Eigen::VectorXd mu = ec.eigenvalues().cwiseMax(0.0);
    b = ec.eigenvectors() * mu.cwiseSqrt().asDiagonal() * ec.eigenvectors().transpose();
    b_inv = ec.eigenvectors() * mu.cwiseSqrt().cwiseInverse().asDiagonal() *
            ec.eigenvectors().transpose();
  } else {
    b = c.diagonal().cwiseSqrt().asDiagonal();
    b_inv = c.diagonal().cwiseSqrt().cwiseInverse().asDiagonal();
  }
  Eigen::MatrixXd m = b * khat * b;
  m = (0.5 * (m + m.transpose())).eval();
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> em(m);
  const Eigen::VectorXd& lam = em.eigenvalues();  // ascending
  const double lam_max = std::max(0.0, lam[p - 1]);
  int keep = 0;
  for (int t = p - 1; t >= 0 && keep < r; --t, ++keep) {
    if (!(lam[t] > kRankTol * lam_max)) break;
  }
  const Eigen::MatrixXd v = em.eigenvectors().rightCols(keep);
  const Eigen::VectorXd lam_r = lam.tail(keep);
  FlagIterate next;
  next.z = lam_r.cwiseSqrt().asDiagonal() * v.transpose() * b_inv;
  next.a = b * v * (v.transpose() * (b_inv * Eigen::VectorXd::Ones(p)));
  return next;
}

// FA on X = [G | E]: gram is its (p+k) x (p+k) Gram matrix, E spans the
// initial subspace (any basis: only Y0 Y0ᵀ matters). Returns the plan.
Result<GramPlan> FlagFromGram(const Eigen::MatrixXd& gram, int p, int k, const FlagParams& params) {
  const int r = params.r > 0 ? params.r : (p + 2) / 2;
  Eigen::VectorXd norms(p);
  for (int i = 0; i < p; ++i) norms[i] = std::max(std::sqrt(gram(i, i)), params.norm_eps);
  const Eigen::VectorXd inv_norms = norms.cwiseInverse();
  const Eigen::MatrixXd khat =
      inv_norms.asDiagonal() * gram.topLeftCorner(p, p) * inv_norms.asDiagonal();
  // Orthonormal basis of col(E): Y0 = E T with T = W S^{-1/2} from EᵀE = W S Wᵀ
  // (a rank-revealing alternative to QR; equal to Q up to a rotation).
  // Without extra columns (orthogonal_init) Y0 is orthogonal to every input:
  // Z0 = Y0ᵀX̂ = 0, and Y0 Y0ᵀ X̂ = 0.
  Eigen::MatrixXd t(0, r);
  Eigen::MatrixXd z0 = Eigen::MatrixXd::Zero(r, p);
  if (k > 0) {
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> ee(gram.bottomRightCorner(k, k));
    const Eigen::VectorXd s = ee.eigenvalues();
    const double s_max = std::max(0.0, s[k - 1]);
    int rank = 0;
    while (rank < k && s[k - 1 - rank] > kRankTol * s_max) ++rank;
    if (rank == 0) return InvalidArgument("flag: the initial subspace is zero");
    t = ee.eigenvectors().rightCols(rank) * s.tail(rank).cwiseSqrt().cwiseInverse().asDiagonal();
    z0 = t.transpose() * gram.bottomLeftCorner(k, p) * inv_norms.asDiagonal();
  }

  // IRLS driver (docs/aggregation-rules.md, "IRLS driver").
  FlagIterate current{z0, Eigen::VectorXd()};
  FlagIterate previous = current;
  bool current_is_initial = true;
  bool previous_is_initial = true;
  double j_prev = Objective(z0);
  double diff = 1.0;
  for (int it = 1; it <= params.n_its && diff > params.tol && j_prev > params.tol; ++it) {
    previous = current;
    previous_is_initial = current_is_initial;
    current = FlagMeanStep(khat, current.z, params, r);
    current_is_initial = false;
    const double j = Objective(current.z);
    diff = j_prev - j;
    j_prev = j;
  }
  const bool use_previous = !(diff > 0);
  const FlagIterate& best = use_previous ? previous : current;
  const bool initial = use_previous ? previous_is_initial : current_is_initial;

  Eigen::VectorXd coeff = Eigen::VectorXd::Zero(p + k);
  if (initial) {
    // No step taken (n_its = 0): Y0 Y0ᵀ X̂ 1 / r = E T (Z0 1) / r, which is
    // zero for the orthogonal Y0 (k = 0; the initial iterate has no `a`).
    if (k > 0) coeff.tail(k) = t * (z0 * Eigen::VectorXd::Ones(p)) / r;
  } else {
    coeff.head(p) = best.a.cwiseProduct(inv_norms) / r;
  }
  GramPlan plan;
  plan.mixing = coeff;
  plan.coefficients = Eigen::VectorXd::Ones(1);
  return plan;
}

// Same threading contract as every rule; stateless between calls.
class Flag final : public Aggregator {
 public:
  Flag(FlagParams params, Eigen::MatrixXd initial_subspace)
      : params_(params), initial_subspace_(std::move(initial_subspace)) {}

  std::string name() const override { return "flag"; }
  bool coordinate_wise() const override { return false; }
  int num_extra_columns(int n) const override {
    if (initial_subspace_.size() > 0) return static_cast<int>(initial_subspace_.cols());
    if (params_.orthogonal_init) return 0;
    return params_.r > 0 ? params_.r : (n + 2) / 2;
  }

  Result<Eigen::MatrixXd> ExtraColumns(int n, int64_t row_begin, int64_t rows,
                                       const Eigen::VectorXd& previous) const override {
    (void)previous;
    if (initial_subspace_.size() > 0) {
      if (row_begin < 0 || row_begin + rows > initial_subspace_.rows()) {
        return InvalidArgument("flag: rows outside the injected initial subspace");
      }
      return Eigen::MatrixXd(initial_subspace_.middleRows(row_begin, rows));
    }
    if (num_extra_columns(n) == 0) return Eigen::MatrixXd(rows, 0);
    return SeededUniformColumns(params_.seed, row_begin, rows, num_extra_columns(n));
  }

  Result<Eigen::VectorXd> Aggregate(const Eigen::MatrixXd& inputs) override {
    PHX_RETURN_IF_ERROR(CheckInputs(inputs, 1, "flag"));
    const int n = static_cast<int>(inputs.cols());
    if (initial_subspace_.size() > 0 && initial_subspace_.rows() != inputs.rows()) {
      return InvalidArgument("flag: initial subspace has " +
                             std::to_string(initial_subspace_.rows()) + " rows, inputs " +
                             std::to_string(inputs.rows()));
    }
    PHX_ASSIGN_OR_RETURN(const Eigen::MatrixXd extras,
                         ExtraColumns(n, 0, inputs.rows(), Eigen::VectorXd()));
    PHX_ASSIGN_OR_RETURN(const Eigen::MatrixXd gram, PartialGram(inputs, extras));
    PHX_ASSIGN_OR_RETURN(const GramPlan plan, PlanFromGram(gram, n));
    return ApplyGramPlan(plan, inputs, extras);
  }

  Result<GramPlan> PlanFromGram(const Eigen::MatrixXd& gram, int n) override {
    const int k = num_extra_columns(n);
    PHX_RETURN_IF_ERROR(CheckGram(gram, n, k, "flag"));
    return FlagFromGram(gram, n, k, params_);
  }

 private:
  FlagParams params_;
  Eigen::MatrixXd initial_subspace_;
};

}  // namespace

Result<std::unique_ptr<Aggregator>> MakeFlag(const AggregatorOptions& options,
                                             ParamReader& params) {
  FlagParams fp;
  PHX_ASSIGN_OR_RETURN(fp.r, params.GetInt("r", 0, 0));
  fp.lambda = params.Get("lambda", 0.0);
  PHX_ASSIGN_OR_RETURN(fp.n_its, params.GetInt("n_its", 1, 0));
  fp.eps = params.Get("eps", 1e-7);
  fp.norm_eps = params.Get("norm_eps", 1e-12);
  fp.tol = params.Get("tol", 1e-10);
  // The authors draw Y0 at random in R^d (docs/aggregation-rules.md); with d >> r its
  // projections ||Y0ᵀx̂_i||² are about r/d, so the first IRLS weights are 1 to
  // within O(r/d). orthogonal_init (the default) takes that limit exactly: Y0
  // orthogonal to every input, weights exactly uniform. It saves the r seeded
  // float64 columns, which at d = 1e6 double the Gram work and add a 64 MB
  // read. orthogonal_init = 0 keeps the seeded random columns (init_seed).
  // An explicit init_seed asks for the seeded columns.
  const double ortho = params.Get("orthogonal_init", params.Has("init_seed") ? 0.0 : 1.0);
  if (ortho != 0.0 && ortho != 1.0) return InvalidArgument("flag: orthogonal_init must be 0 or 1");
  fp.orthogonal_init = ortho == 1.0;
  fp.seed = options.seed;
  if (params.Has("init_seed")) {
    PHX_ASSIGN_OR_RETURN(const int seed, params.GetInt("init_seed", 1, 0));
    fp.seed = static_cast<uint64_t>(seed);
  }
  if (!(fp.lambda >= 0) || !(fp.eps > 0) || !(fp.norm_eps > 0) || !(fp.tol >= 0)) {
    return InvalidArgument("flag: needs lambda >= 0, eps > 0, norm_eps > 0, tol >= 0");
  }
  if (options.initial_subspace.size() > 0) {
    if (!options.initial_subspace.allFinite()) {
      return InvalidArgument("flag: non-finite initial subspace");
    }
    if (fp.r > 0 && options.initial_subspace.cols() > fp.r) {
      return InvalidArgument("flag: initial subspace has more columns than r");
    }
    if (fp.r == 0) fp.r = static_cast<int>(options.initial_subspace.cols());
  }
  return std::unique_ptr<Aggregator>(std::make_unique<Flag>(fp, options.initial_subspace));
}

}  // namespace phalanx::aggregators::internal
