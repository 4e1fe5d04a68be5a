#pragma once
// Byzantine attacks as pure functions (docs/attacks.md, ByzFL
// definitions). Each takes the honest vectors (d x h, column = one honest
// worker) and returns the one vector that all f Byzantine workers send.
// Thread-safe; no global RNG is touched (Gaussian takes its seed).

#include <Eigen/Dense>
#include <cstdint>
#include <functional>

#include "common/status.h"

namespace phalanx::aggregators {

// -mean(H).
Result<Eigen::VectorXd> SignFlippingAttack(const Eigen::MatrixXd& honest);
// mean of the honest gradients computed on flipped labels (y -> C-1-y); the
// caller passes those flipped-label gradients.
Result<Eigen::VectorXd> LabelFlippingAttack(const Eigen::MatrixXd& flipped_gradients);
// mean(H) + tau * std(H), sample std (ddof=1), needs h >= 2.
Result<Eigen::VectorXd> ALittleIsEnoughAttack(const Eigen::MatrixXd& honest, double tau);
// Baruch et al.'s z_max = Phi^-1((n - s) / n), s = floor(n/2 + 1) - f, with n
// the total number of workers.
Result<double> AlieZMax(int n_total, int f);
// Fall of empires / inner product manipulation: -tau * mean(H).
Result<Eigen::VectorXd> InnerProductManipulationAttack(const Eigen::MatrixXd& honest, double tau);
// A copy of honest worker epsilon.
Result<Eigen::VectorXd> MimicAttack(const Eigen::MatrixXd& honest, int epsilon);
// i.i.d. N(mu, sigma^2) coordinates from a seeded generator.
Eigen::VectorXd GaussianAttack(int64_t d, double mu, double sigma, uint64_t seed);
// All +inf / all NaN (for testing the cluster's non-finite filter).
Eigen::VectorXd InfAttack(int64_t d);
Eigen::VectorXd NanAttack(int64_t d);

// The server's pipeline as seen by an attacker: d x n vectors -> aggregate.
using ServerAggregate = std::function<Result<Eigen::VectorXd>(const Eigen::MatrixXd&)>;

// ByzFL's line search over the attack factor (Optimal_* attacks): maximise
// F(tau) = ||server([H, attack_tau(H) x f]) - mean(H)||, expansion phase
// (double the step on improvement, else shrink by ratio and stop) then
// contraction (probe x* + delta, accept strict improvements, shrink), with
// evals evaluations in total. Defaults are ByzFL's.
struct LineSearchOptions {
  int evals = 20;
  double start = 0.0;
  double delta = 10.0;
  double ratio = 0.8;
};

// tau_opt, if not null, receives the selected factor.
Result<Eigen::VectorXd> OptimalALittleIsEnoughAttack(const Eigen::MatrixXd& honest, int f,
                                                     const ServerAggregate& server,
                                                     const LineSearchOptions& options,
                                                     double* tau_opt = nullptr);
Result<Eigen::VectorXd> OptimalInnerProductManipulationAttack(const Eigen::MatrixXd& honest, int f,
                                                              const ServerAggregate& server,
                                                              const LineSearchOptions& options,
                                                              double* tau_opt = nullptr);

}  // namespace phalanx::aggregators
