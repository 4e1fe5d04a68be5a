#include "aggregators/monna.h"

#include <string>

#include "aggregators/aggregator.h"
#include "aggregators/attacks.h"

namespace phalanx::aggregators {

Result<MonnaRoundOutput> MonnaRound(const MonnaRoundInput& in) {
  const Eigen::Index d = in.theta.rows();
  const Eigen::Index h = in.theta.cols();
  if (h == 0 || d == 0) return InvalidArgument("monna round: no honest nodes");
  if (in.momentum.rows() != d || in.momentum.cols() != h || in.gradient.rows() != d ||
      in.gradient.cols() != h) {
    return InvalidArgument("monna round: theta, momentum and gradient shapes differ");
  }
  if (static_cast<Eigen::Index>(in.received.size()) != h) {
    return InvalidArgument("monna round: need one received list per honest node");
  }
  MonnaRoundOutput out;
  out.momentum = in.beta * in.momentum + (1.0 - in.beta) * in.gradient;
  out.half_step_theta = in.theta - in.lr * out.momentum;
  PHX_ASSIGN_OR_RETURN(out.byzantine_vector,
                       ALittleIsEnoughAttack(out.half_step_theta, in.alie_tau));
  out.theta_next.resize(d, h);
  for (Eigen::Index i = 0; i < h; ++i) {
    const auto& recv = in.received[i];
    if (recv.empty() || recv.back() != i) {
      return InvalidArgument("monna round: node " + std::to_string(i) +
                             " must list its own index last");
    }
    const int m = static_cast<int>(recv.size());
    Eigen::MatrixXd rows(d, m + in.f);
    for (int t = 0; t < m; ++t) {
      if (recv[t] < 0 || recv[t] >= h) return InvalidArgument("monna round: bad received index");
      rows.col(t) = out.half_step_theta.col(recv[t]);
    }
    for (int j = 0; j < in.f; ++j) rows.col(m + j) = out.byzantine_vector;
    AggregatorOptions options{"monna", in.f, {{"idx", static_cast<double>(m - 1)}}, 1};
    PHX_ASSIGN_OR_RETURN(auto nna, CreateAggregator(options));
    PHX_ASSIGN_OR_RETURN(out.theta_next.col(i), nna->Aggregate(rows));
  }
  return out;
}

}  // namespace phalanx::aggregators
