#pragma once
// Byzantine worker behaviours: what a lying worker pushes instead of its
// honest gradient, from a given round on. The attacks that need the round's
// honest gradients (ALIE, FOE/IPM, mimic and the line-searched optimal ALIE
// and IPM) come in two forms: non-omniscient, estimated from several batches
// of the attacker's own data shard, and omniscient, on the honest workers'
// actual gradients of the round, which the servers forward to the colluding
// Byzantine workers only when the experiment enables it
// (byzantine.omniscient; worker/honest_peek.h).
// Owned and called by the worker's training thread only.

#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace phalanx::worker {

struct ByzantineOptions {
  // none|random|sign-flip|gaussian|alie|foe|ipm|mimic|alie-opt|ipm-opt|label-flip|nan|inf|silent
  // (ipm is foe under its other name; silent registers and pulls but never
  // pushes).
  std::string attack = "none";
  int from_round = 0;
  double scale = 1.0;    // random: U[0, scale) per coordinate (the Flag Aggregator paper's threat)
  double sigma = 200.0;  // gaussian: N(0, sigma^2)
  double tau = -1.0;     // alie: z (default z_max for n, f); foe: epsilon (default 2.0)
  int estimate_batches = 5;   // alie/foe: own batches used to estimate honest statistics
  int total_workers = 1;      // n, for ALIE's z_max
  int byzantine_workers = 0;  // f
  uint64_t seed = 1;
  bool omniscient = false;  // use the round's honest gradients (from the servers)
  int mimic_target = 0;     // mimic: index of the honest worker copied
  // The server's rule as the attacker models it (optimal attacks' line search).
  std::string rule = "mean";
  std::map<std::string, double> rule_params;
  int line_search_evals = 20;
};

Status ValidateByzantine(const ByzantineOptions& options);

class ByzantineBehaviour {
 public:
  explicit ByzantineBehaviour(const ByzantineOptions& options);

  bool active(int round) const { return options_.attack != "none" && round >= options_.from_round; }
  bool flips_labels() const { return options_.attack == "label-flip"; }
  // Pulls every round but pushes nothing (a hung or free-riding worker).
  bool silent(int round) const { return active(round) && options_.attack == "silent"; }
  // Attacks computed from the honest gradients (or their estimate).
  bool needs_samples() const;
  // Needs the round's actual honest gradients from the servers.
  bool needs_honest() const { return options_.omniscient && needs_samples(); }
  int sample_batches() const { return options_.estimate_batches; }

  // Replaces `gradient` (the dense part) in place. For the attacks that
  // need_samples(), `samples` holds k gradients (each of gradient.size()
  // floats, concatenated): the honest workers' of this round when
  // omniscient, else estimates from `sample_batches()` batches of own data.
  Status Corrupt(std::span<float> gradient, std::span<const float> samples);
  // Sparse rows get the value-free attacks (random, sign-flip, gaussian,
  // nan, inf); ALIE/FOE and label flipping act through the dense part and
  // the labels.
  void CorruptRows(std::span<float> rows);

 private:
  ByzantineOptions options_;
  std::mt19937_64 rng_;
};

}  // namespace phalanx::worker
