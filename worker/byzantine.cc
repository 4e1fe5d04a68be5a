#include "worker/byzantine.h"

#include <Eigen/Dense>
#include <cmath>
#include <limits>

#include "aggregators/aggregator.h"
#include "aggregators/attacks.h"

namespace phalanx::worker {

Status ValidateByzantine(const ByzantineOptions& o) {
  static const char* kAttacks[] = {"none",       "random", "sign-flip", "gaussian", "alie",
                                   "foe",        "ipm",    "mimic",     "alie-opt", "ipm-opt",
                                   "label-flip", "nan",    "inf",       "silent"};
  bool known = false;
  for (const char* a : kAttacks) known |= o.attack == a;
  if (!known) {
    return InvalidArgument(
        "byzantine.attack must be one of none, random, sign-flip, gaussian, alie, foe, ipm, "
        "mimic, alie-opt, ipm-opt, label-flip, nan, inf, silent; got '" +
        o.attack + "'");
  }
  if (o.mimic_target < 0) return InvalidArgument("byzantine.mimic_target must not be negative");
  if (o.line_search_evals < 1 || o.line_search_evals > 1000) {
    return InvalidArgument("byzantine.line_search_evals must be in [1, 1000]");
  }
  if (o.attack == "alie-opt" || o.attack == "ipm-opt") {
    aggregators::AggregatorOptions ao;
    ao.name = o.rule;
    ao.f = o.byzantine_workers;
    ao.params = o.rule_params;
    auto rule = aggregators::CreateAggregator(ao);
    if (!rule.ok()) return rule.status().WithContext("the optimal attack's model of the server");
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

bool ByzantineBehaviour::needs_samples() const {
  const std::string& a = options_.attack;
  return a == "alie" || a == "foe" || a == "ipm" || a == "mimic" || a == "alie-opt" ||
         a == "ipm-opt";
}

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
  } else if (needs_samples()) {
    const Eigen::Index d = static_cast<Eigen::Index>(g.size());
    const Eigen::Index k = static_cast<Eigen::Index>(samples.size() / g.size());
    if (k < 1 || samples.size() != static_cast<size_t>(d * k) || (a != "mimic" && k < 2)) {
      return InvalidArgument(a + " needs at least 2 honest (or estimated) gradients, got " +
                             std::to_string(k));
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
    } else if (a == "foe" || a == "ipm") {
      double tau = options_.tau < 0 ? 2.0 : options_.tau;
      PHX_ASSIGN_OR_RETURN(out, aggregators::InnerProductManipulationAttack(h, tau));
    } else if (a == "mimic") {
      PHX_ASSIGN_OR_RETURN(
          out, aggregators::MimicAttack(h, static_cast<int>(options_.mimic_target % h.cols())));
    } else {
      // Line search against the attacker's model of the server rule, over
      // [honest (or estimates), f copies of the attack].
      aggregators::AggregatorOptions ao;
      ao.name = options_.rule;
      ao.f = options_.byzantine_workers;
      ao.params = options_.rule_params;
      ao.seed = options_.seed;
      PHX_ASSIGN_OR_RETURN(auto rule, aggregators::CreateAggregator(ao));
      aggregators::ServerAggregate server = [&](const Eigen::MatrixXd& x) {
        return rule->Aggregate(x);
      };
      aggregators::LineSearchOptions ls;
      ls.evals = options_.line_search_evals;
      const int f = std::max(1, options_.byzantine_workers);
      if (a == "alie-opt") {
        PHX_ASSIGN_OR_RETURN(out, aggregators::OptimalALittleIsEnoughAttack(h, f, server, ls));
      } else {
        PHX_ASSIGN_OR_RETURN(out,
                             aggregators::OptimalInnerProductManipulationAttack(h, f, server, ls));
      }
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
