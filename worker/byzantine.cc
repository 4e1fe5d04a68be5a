#include "worker/byzantine.h"

#include <Eigen/Dense>
#include <cmath>
#include <limits>

#include "aggregators/attacks.h"

namespace phalanx::worker {

Status ValidateByzantine(const ByzantineOptions& o) {
  static const char* kAttacks[] = {"none", "random",     "sign-flip", "gaussian", "alie",
                                   "foe",  "label-flip", "nan",       "inf"};
  bool known = false;
  for (const char* a : kAttacks) known |= o.attack == a;
  if (!known) {
    return InvalidArgument(
        "byzantine.attack must be one of none, random, sign-flip, gaussian, "
        "alie, foe, label-flip, nan, inf; got '" +
        o.attack + "'");
  }
  if (o.from_round < 0) return InvalidArgument("byzantine.from_round must not be negative");
  if (!(o.scale > 0) || !(o.sigma > 0)) return InvalidArgument("byzantine.scale/sigma must be > 0");
  if (o.estimate_batches < 2 || o.estimate_batches > 64) {
    return InvalidArgument("byzantine.estimate_batches must be in [2, 64]");
  }
  return Status::Ok();
}

ByzantineBehaviour::ByzantineBehaviour(const ByzantineOptions& options)
    : options_(options), rng_(options.seed * 0x9E3779B97F4A7C15ull + 17) {}

Status ByzantineBehaviour::Corrupt(std::span<float> g, std::span<const float> samples) {
  const std::string& a = options_.attack;
  if (a == "random") {
    std::uniform_real_distribution<float> u(0.0f, static_cast<float>(options_.scale));
    for (float& x : g) x = u(rng_);
  } else if (a == "sign-flip") {
    for (float& x : g) x = -x;
  } else if (a == "gaussian") {
    std::normal_distribution<float> nd(0.0f, static_cast<float>(options_.sigma));
    for (float& x : g) x = nd(rng_);
  } else if (a == "nan") {
    for (float& x : g) x = std::numeric_limits<float>::quiet_NaN();
  } else if (a == "inf") {
    for (float& x : g) x = std::numeric_limits<float>::infinity();
  } else if (a == "alie" || a == "foe") {
    const Eigen::Index d = static_cast<Eigen::Index>(g.size());
    const Eigen::Index k = static_cast<Eigen::Index>(samples.size() / g.size());
    if (k < 2 || samples.size() != static_cast<size_t>(d * k)) {
      return InvalidArgument("attack needs at least 2 sample gradients");
    }
    Eigen::MatrixXd h = Eigen::Map<const Eigen::MatrixXf>(samples.data(), d, k).cast<double>();
    Eigen::VectorXd out;
    if (a == "alie") {
      double tau = options_.tau;
      if (tau < 0) {
        auto z = aggregators::AlieZMax(options_.total_workers, options_.byzantine_workers);
        if (!z.ok()) return z.status();
        tau = *z;
      }
      PHX_ASSIGN_OR_RETURN(out, aggregators::ALittleIsEnoughAttack(h, tau));
    } else {
      double tau = options_.tau < 0 ? 2.0 : options_.tau;
      PHX_ASSIGN_OR_RETURN(out, aggregators::InnerProductManipulationAttack(h, tau));
    }
    Eigen::Map<Eigen::VectorXf>(g.data(), d) = out.cast<float>();
  }
  // label-flip: the gradient was computed on flipped labels already.
  return Status::Ok();
}

void ByzantineBehaviour::CorruptRows(std::span<float> rows) {
  const std::string& a = options_.attack;
  if (a == "random" || a == "sign-flip" || a == "gaussian" || a == "nan" || a == "inf") {
    (void)Corrupt(rows, {});
  }
}

}  // namespace phalanx::worker
