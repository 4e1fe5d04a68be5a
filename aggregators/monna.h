#pragma once
// One round of the MoNNA peer-to-peer algorithm (docs/aggregation-rules.md,
// "The MoNNA round") for the simulator: Polyak momentum, local step, ALIE Byzantine models,
// and NNA mixing around each honest node's own half-step model. Pure
// function, thread-safe.

#include <Eigen/Dense>
#include <vector>

#include "common/status.h"

namespace phalanx::aggregators {

struct MonnaRoundInput {
  // d x h, column i = honest node i.
  Eigen::MatrixXd theta;
  Eigen::MatrixXd momentum;
  Eigen::MatrixXd gradient;
  // For each honest node, the honest nodes whose half-step models it
  // received, its own index last (it is the NNA pivot).
  std::vector<std::vector<int>> received;
  int f = 0;              // Byzantine models each node also receives
  double beta = 0.9;      // momentum (and dampening) factor
  double lr = 0.1;        // gamma_t
  double alie_tau = 1.5;  // the Byzantine models are ALIE(tau) of all half-steps
};

struct MonnaRoundOutput {
  Eigen::MatrixXd momentum;         // m' = beta m + (1 - beta) g
  Eigen::MatrixXd half_step_theta;  // theta - lr m'
  Eigen::VectorXd byzantine_vector;
  Eigen::MatrixXd theta_next;  // NNA_f(received + f Byzantine; pivot own)
};

// InvalidArgument on shape mismatches, bad indices, or too few received
// models for f (NNA needs 2f < |R|).
Result<MonnaRoundOutput> MonnaRound(const MonnaRoundInput& input);

}  // namespace phalanx::aggregators
