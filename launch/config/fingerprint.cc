#include "launch/config/fingerprint.h"

#include <fmt/format.h>

namespace phalanx {
namespace {

void AddOptimizer(const std::string& section, const OptimizerConfig& o, ConfigFingerprint* fp) {
  fp->emplace_back(section + ".kind", o.kind);
  fp->emplace_back(section + ".learning_rate", fmt::format("{}", o.learning_rate));
  fp->emplace_back(section + ".momentum", fmt::format("{}", o.momentum));
  if (o.kind == "adam") {
    fp->emplace_back(section + ".beta1", fmt::format("{}", o.beta1));
    fp->emplace_back(section + ".beta2", fmt::format("{}", o.beta2));
  }
  fp->emplace_back(section + ".epsilon", fmt::format("{}", o.epsilon));
  fp->emplace_back(section + ".weight_decay", fmt::format("{}", o.weight_decay));
}

}  // namespace

ConfigFingerprint FingerprintOf(const JobConfig& c) {
  ConfigFingerprint fp;
  fp.emplace_back("cluster.mode", c.cluster.mode);
  fp.emplace_back("cluster.servers", std::to_string(c.cluster.servers));
  fp.emplace_back("cluster.num_slots", std::to_string(c.cluster.num_slots));
  fp.emplace_back("data.dataset", c.data.dataset);
  fp.emplace_back("model.kind", c.model.kind);
  fp.emplace_back("model.hidden", std::to_string(c.model.hidden));
  fp.emplace_back("model.embedding_dim", std::to_string(c.model.embedding_dim));
  fp.emplace_back("tables.dense_row_dim", std::to_string(c.tables.dense_row_dim));
  fp.emplace_back("tables.seed", std::to_string(c.tables.seed));
  fp.emplace_back("tables.dense_init_scale", fmt::format("{}", c.tables.dense_init_scale));
  fp.emplace_back("tables.embedding_init_scale", fmt::format("{}", c.tables.embedding_init_scale));
  AddOptimizer("optimizer", c.optimizer, &fp);
  AddOptimizer("embedding_optimizer", c.embedding_optimizer, &fp);
  fp.emplace_back("aggregator.name", c.aggregator.name);
  fp.emplace_back("aggregator.f", std::to_string(c.aggregator.f));
  for (const auto& [key, value] : c.aggregator.params) {
    fp.emplace_back("aggregator." + key, fmt::format("{}", value));
  }
  if (c.cluster.mode == "sync") fp.emplace_back("train.rounds", std::to_string(c.train.rounds));
  if (c.cluster.mode == "federated") fp.emplace_back("federated.algorithm", c.federated.algorithm);
  return fp;
}

}  // namespace phalanx
