#pragma once
// Byzantine worker behaviours: what a lying worker pushes instead of its
// honest gradient, from a given round on. The attacks that need the round's
// honest gradients (ALIE, FOE/IPM) use the non-omniscient form: the attacker
// estimates them from several batches of its own data shard.
// Owned and called by the worker's training thread only.

#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace phalanx::worker {

struct ByzantineOptions {
  std::string attack = "none";  // none|random|sign-flip|gaussian|alie|foe|label-flip|nan|inf
  int from_round = 0;
  double scale = 1.0;    // random: U[0, scale) per coordinate (the Flag Aggregator paper's threat)
  double sigma = 200.0;  // gaussian: N(0, sigma^2)
  double tau = -1.0;     // alie: z (default z_max for n, f); foe: epsilon (default 2.0)
  int estimate_batches = 5;   // alie/foe: own batches used to estimate honest statistics
  int total_workers = 1;      // n, for ALIE's z_max
  int byzantine_workers = 0;  // f
  uint64_t seed = 1;
};

Status ValidateByzantine(const ByzantineOptions& options);

class ByzantineBehaviour {
 public:
  explicit ByzantineBehaviour(const ByzantineOptions& options);

  bool active(int round) const { return options_.attack != "none" && round >= options_.from_round; }
  bool flips_labels() const { return options_.attack == "label-flip"; }
  bool needs_samples() const { return options_.attack == "alie" || options_.attack == "foe"; }
  int sample_batches() const { return options_.estimate_batches; }

  // Replaces `gradient` (the dense part) in place. For alie/foe, `samples`
  // holds gradients of `sample_batches()` batches of own data (each of
  // gradient.size() floats, concatenated).
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
