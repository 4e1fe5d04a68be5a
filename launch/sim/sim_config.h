#pragma once
// The configuration of `phalanx simulate`: one TOML file plus
// `--set section.key=value` overrides, parsed like launch/config/config.h (unknown
// sections and keys, wrong types and impossible values are refused with the
// key's name). Sections: [simulation], [data], [model], [local], [speed],
// [server] (the defaults of every run), [byzantine] and [[runs]] (one entry per
// algorithm variant, each overriding [server] keys; without [[runs]] the
// [server] section is the single run). launch/simulations/ has examples.
// Plain value type.

#include <cstdint>
#include <string>
#include <vector>

#include "aggregators/federated.h"
#include "common/status.h"

namespace phalanx::launch {

struct SimRun {
  std::string name;
  aggregators::FederatedOptions server;  // resolved (algorithm defaults filled)
};

struct SimConfig {
  // [simulation]
  uint64_t seed = 1;
  int64_t clients = 20;           // registered clients M
  double time_budget = 50.0;      // virtual time T (units of the slowest F-X client)
  double eval_every = 1.0;        // virtual time between test evaluations (0 = start and end only)
  int64_t concurrency = 0;        // clients training at once; 0 = all M
  std::vector<std::string> only;  // run names to keep (empty = all)
  std::string title;              // plot title

  // [data]
  std::string dataset = "fashion-mnist";      // fashion-mnist | spam-assassin
  std::string path;                           // default per dataset
  std::string partition = "dirichlet-equal";  // dirichlet-equal | dirichlet | iid
  double alpha = 0.1;
  int64_t samples_per_client = 0;  // 0 = floor(N / M)
  uint64_t partition_seed = 42;
  int64_t max_train = 0;         // 0 = all
  int64_t max_test = 0;          // 0 = all
  double test_fraction = 0.2;    // spam-assassin
  int64_t hash_buckets = 16384;  // spam-assassin: token ids -> this many embedding rows

  // [model]
  std::string model = "softmax";  // softmax | mlp | embedding-bag
  int hidden = 128;
  int embedding_dim = 16;
  double l2 = 0.0;
  double init_scale = 0.05;  // θ⁰ uniform in [-s, s] from the seed

  // [local] client training: `steps` SGD steps (or epochs·⌈n_i/B⌉) of batch B.
  int steps = 10;
  int epochs = 0;
  int batch_size = 64;
  double learning_rate = 0.05;
  double momentum = 0.0;
  double clip = 0.0;  // gradient-norm clip, 0 = off

  // [speed] F-X (deterministic τ_i), exponential / lognormal (random around
  // per-client means τ_i of the F-fx profile), trace (file of durations).
  std::string profile = "F-80";
  double fx = 80.0;      // for exponential / lognormal: spread of the means (percent)
  double sigma = 0.5;    // lognormal
  std::string trace;     // profile = trace: lines "client duration [duration ...]"
  double dropout = 0.0;  // probability that a training never returns

  // [byzantine] `count` clients spread evenly over the ids send `attack`.
  int64_t byzantine_count = 0;
  std::string attack = "none";  // none | random | sign-flip | gaussian | nan | inf
  double attack_scale = 1.0;
  double attack_sigma = 200.0;
  int64_t attack_from = 0;  // client trainings before the attack starts

  std::vector<SimRun> runs;
  std::string source;

  // Fixed F-X percent when profile is "F-X" (else fx).
  double ProfilePercent() const;
};

Result<SimConfig> ParseSimConfig(const std::string& toml_text,
                                 const std::vector<std::string>& overrides = {});
Result<SimConfig> LoadSimConfig(const std::string& path,
                                const std::vector<std::string>& overrides = {});

}  // namespace phalanx::launch
