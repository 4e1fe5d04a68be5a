#include "aggregators/attacks.h"

#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "aggregators/internal/common.h"

namespace phalanx::aggregators {
namespace {

Status CheckHonest(const Eigen::MatrixXd& honest, int min_cols, const std::string& attack) {
  return internal::CheckInputs(honest, min_cols, attack);
}

// Inverse standard normal CDF: Acklam's rational approximation, refined by
// one Halley step on erfc (accurate to ~1e-15).
double NormalQuantile(double p) {
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,  -2.759285104469687e+02,
                             1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01, -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  double x;
  if (p < 0.02425) {
    const double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p <= 1 - 0.02425) {
    const double q = p - 0.5;
    const double r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  } else {
    const double q = std::sqrt(-2 * std::log(1 - p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  for (int it = 0; it < 2; ++it) {
    const double e = 0.5 * std::erfc(-x / std::sqrt(2.0)) - p;
    const double u = e * std::sqrt(2 * M_PI) * std::exp(x * x / 2);
    x = x - u / (1 + x * u / 2);
  }
  return x;
}

using AttackOfTau = std::function<Result<Eigen::VectorXd>(double)>;

// ByzFL's _expansion_phase + _contraction_phase.
Result<double> LineSearch(const Eigen::MatrixXd& honest, int f, const ServerAggregate& server,
                          const LineSearchOptions& options, const AttackOfTau& attack) {
  if (options.evals < 1) return InvalidArgument("line search: evals must be >= 1");
  if (!(options.ratio > 0.5 && options.ratio < 1)) {
    return InvalidArgument("line search: ratio must be in (0.5, 1)");
  }
  if (options.delta == 0) return InvalidArgument("line search: delta must be non-zero");
  const Eigen::VectorXd mean = honest.rowwise().mean();
  const Eigen::Index h = honest.cols();
  Eigen::MatrixXd all(honest.rows(), h + f);
  all.leftCols(h) = honest;
  auto evaluate = [&](double tau) -> Result<double> {
    PHX_ASSIGN_OR_RETURN(const Eigen::VectorXd byz, attack(tau));
    for (int j = 0; j < f; ++j) all.col(h + j) = byz;
    PHX_ASSIGN_OR_RETURN(const Eigen::VectorXd agg, server(all));
    if (agg.size() != mean.size()) return InvalidArgument("line search: aggregate has wrong size");
    return (agg - mean).norm();
  };
  double best_x = options.start;
  PHX_ASSIGN_OR_RETURN(double best_y, evaluate(best_x));
  double delta = options.delta;
  int remaining = options.evals - 1;
  while (remaining > 0) {
    const double x = best_x + delta;
    PHX_ASSIGN_OR_RETURN(const double y, evaluate(x));
    --remaining;
    if (y > best_y) {
      best_x = x;
      best_y = y;
      delta *= 2;
    } else {
      delta *= options.ratio;
      break;
    }
  }
  while (remaining > 0) {
    const double x = best_x + delta;
    PHX_ASSIGN_OR_RETURN(const double y, evaluate(x));
    --remaining;
    if (y > best_y) {
      best_x = x;
      best_y = y;
    }
    delta *= options.ratio;
  }
  return best_x;
}

}  // namespace

Result<Eigen::VectorXd> SignFlippingAttack(const Eigen::MatrixXd& honest) {
  PHX_RETURN_IF_ERROR(CheckHonest(honest, 1, "sign-flipping"));
  return Eigen::VectorXd(-honest.rowwise().mean());
}

Result<Eigen::VectorXd> LabelFlippingAttack(const Eigen::MatrixXd& flipped_gradients) {
  PHX_RETURN_IF_ERROR(CheckHonest(flipped_gradients, 1, "label-flipping"));
  return Eigen::VectorXd(flipped_gradients.rowwise().mean());
}

Result<Eigen::VectorXd> ALittleIsEnoughAttack(const Eigen::MatrixXd& honest, double tau) {
  PHX_RETURN_IF_ERROR(CheckHonest(honest, 2, "a-little-is-enough"));
  const Eigen::VectorXd mean = honest.rowwise().mean();
  const Eigen::VectorXd var =
      (honest.colwise() - mean).rowwise().squaredNorm() / static_cast<double>(honest.cols() - 1);
  return Eigen::VectorXd(mean + tau * var.cwiseSqrt());
}

Result<double> AlieZMax(int n_total, int f) {
  const int s = n_total / 2 + 1 - f;
  const double p = static_cast<double>(n_total - s) / n_total;
  if (n_total < 1 || !(p > 0 && p < 1)) {
    return InvalidArgument("a-little-is-enough: z_max undefined for n=" + std::to_string(n_total) +
                           ", f=" + std::to_string(f));
  }
  return NormalQuantile(p);
}

Result<Eigen::VectorXd> InnerProductManipulationAttack(const Eigen::MatrixXd& honest, double tau) {
  PHX_RETURN_IF_ERROR(CheckHonest(honest, 1, "inner-product-manipulation"));
  return Eigen::VectorXd(-tau * honest.rowwise().mean());
}

Result<Eigen::VectorXd> MimicAttack(const Eigen::MatrixXd& honest, int epsilon) {
  PHX_RETURN_IF_ERROR(CheckHonest(honest, 1, "mimic"));
  if (epsilon < 0 || epsilon >= honest.cols()) {
    return InvalidArgument("mimic: epsilon=" + std::to_string(epsilon) + " is not an honest index");
  }
  return Eigen::VectorXd(honest.col(epsilon));
}

Eigen::VectorXd GaussianAttack(int64_t d, double mu, double sigma, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(mu, sigma);
  Eigen::VectorXd out(d);
  for (int64_t i = 0; i < d; ++i) out[i] = normal(rng);
  return out;
}

Eigen::VectorXd InfAttack(int64_t d) {
  return Eigen::VectorXd::Constant(d, std::numeric_limits<double>::infinity());
}

Eigen::VectorXd NanAttack(int64_t d) {
  return Eigen::VectorXd::Constant(d, std::numeric_limits<double>::quiet_NaN());
}

namespace {

// The optimal variant of a τ-parameterised attack: the τ that the line search
// finds worst for the server's rule, and the attack at that τ.
template <class Attack>
Result<Eigen::VectorXd> OptimalAttack(const char* name, int min_honest,
                                      const Eigen::MatrixXd& honest, int f,
                                      const ServerAggregate& server,
                                      const LineSearchOptions& options, double* tau_opt,
                                      Attack attack) {
  PHX_RETURN_IF_ERROR(CheckHonest(honest, min_honest, name));
  if (f < 1) return InvalidArgument("optimal attack: f must be >= 1");
  PHX_ASSIGN_OR_RETURN(const double tau, LineSearch(honest, f, server, options, attack));
  if (tau_opt != nullptr) *tau_opt = tau;
  return attack(tau);
}

}  // namespace

Result<Eigen::VectorXd> OptimalALittleIsEnoughAttack(const Eigen::MatrixXd& honest, int f,
                                                     const ServerAggregate& server,
                                                     const LineSearchOptions& options,
                                                     double* tau_opt) {
  return OptimalAttack("optimal-a-little-is-enough", 2, honest, f, server, options, tau_opt,
                       [&](double tau) { return ALittleIsEnoughAttack(honest, tau); });
}

Result<Eigen::VectorXd> OptimalInnerProductManipulationAttack(const Eigen::MatrixXd& honest, int f,
                                                              const ServerAggregate& server,
                                                              const LineSearchOptions& options,
                                                              double* tau_opt) {
  return OptimalAttack("optimal-inner-product-manipulation", 1, honest, f, server, options, tau_opt,
                       [&](double tau) { return InnerProductManipulationAttack(honest, tau); });
}

}  // namespace phalanx::aggregators
