#include "launch/sim/sim_config.h"

#include <toml++/toml.h>

#include <cmath>
#include <set>
#include <sstream>

#include "launch/config/toml_section.h"

namespace phalanx::launch {
namespace {

// --set for simulation configs: [[runs]] is an array, edited in the file only.
Status ApplyOverride(toml::table& root, const std::string& item) {
  if (item.rfind("runs.", 0) == 0) {
    return InvalidArgument("--set cannot edit [[runs]]; set server.* instead");
  }
  return ApplyTomlOverride(root, item);
}

void ReadServer(TomlSection& r, aggregators::FederatedOptions* s) {
  r.Read("algorithm", &s->algorithm);
  r.Read("server_lr", &s->server_lr);
  r.Read("weights", &s->weights);
  r.Read("clients_per_round", &s->clients_per_round);
  r.Read("buffer_size", &s->buffer_size);
  r.Read("window", &s->window);
  r.Read("mix_alpha", &s->mix_alpha);
  r.Read("staleness", &s->staleness.fn);
  r.Read("staleness_a", &s->staleness.a);
  r.Read("staleness_b", &s->staleness.b);
  r.Read("max_staleness", &s->max_staleness);
  r.Read("redispatch", &s->redispatch);
  r.Read("aggregator", &s->robust.name);
  r.Read("f", &s->robust.f);
}

bool ParseFx(const std::string& profile, double* x) {
  if (profile.size() < 3 || profile.compare(0, 2, "F-") != 0) return false;
  try {
    size_t used = 0;
    *x = std::stod(profile.substr(2), &used);
    return used == profile.size() - 2;
  } catch (const std::exception&) {
    return false;
  }
}

Status Validate(const SimConfig& c) {
  if (c.clients < 1 || c.clients > 100000000) {
    return InvalidArgument("simulation.clients must be in [1, 1e8]");
  }
  if (!(c.time_budget > 0)) return InvalidArgument("simulation.time_budget must be > 0");
  if (c.eval_every < 0) return InvalidArgument("simulation.eval_every must be >= 0");
  if (c.concurrency < 0) return InvalidArgument("simulation.concurrency must be >= 0");
  if (c.concurrency > c.clients) {
    return InvalidArgument("simulation.concurrency " + std::to_string(c.concurrency) +
                           " exceeds the " + std::to_string(c.clients) + " clients");
  }
  if (c.dataset != "fashion-mnist" && c.dataset != "spam-assassin") {
    return InvalidArgument("data.dataset must be fashion-mnist or spam-assassin, got '" +
                           c.dataset + "'");
  }
  if (c.partition != "dirichlet-equal" && c.partition != "dirichlet" && c.partition != "iid") {
    return InvalidArgument("data.partition must be dirichlet-equal, dirichlet or iid, got '" +
                           c.partition + "'");
  }
  if (!(c.alpha > 0)) {
    return InvalidArgument("data.alpha (Dirichlet concentration) must be > 0, got " +
                           std::to_string(c.alpha));
  }
  if (c.samples_per_client < 0 || c.max_train < 0 || c.max_test < 0) {
    return InvalidArgument("data.samples_per_client/max_train/max_test must be >= 0");
  }
  if (!(c.test_fraction > 0 && c.test_fraction < 1)) {
    return InvalidArgument("data.test_fraction must be in (0, 1)");
  }
  if (c.hash_buckets < 1 || c.hash_buckets > (1 << 24)) {
    return InvalidArgument("data.hash_buckets must be in [1, 2^24]");
  }
  if (c.model != "softmax" && c.model != "mlp" && c.model != "embedding-bag") {
    return InvalidArgument("model.kind must be softmax, mlp or embedding-bag, got '" + c.model +
                           "'");
  }
  if ((c.model == "embedding-bag") != (c.dataset == "spam-assassin")) {
    return InvalidArgument("model.kind embedding-bag goes with data.dataset spam-assassin");
  }
  if (c.hidden < 1 || c.embedding_dim < 1 || c.l2 < 0 || c.init_scale < 0) {
    return InvalidArgument("model.hidden/embedding_dim must be >= 1, l2/init_scale >= 0");
  }
  if (c.steps < 1 && c.epochs < 1) return InvalidArgument("local.steps must be >= 1");
  if (c.epochs < 0) return InvalidArgument("local.epochs must be >= 0");
  if (c.batch_size < 1) return InvalidArgument("local.batch_size must be >= 1");
  if (!(c.learning_rate > 0)) return InvalidArgument("local.learning_rate must be > 0");
  if (c.momentum < 0 || c.momentum >= 1) return InvalidArgument("local.momentum must be in [0, 1)");
  if (c.clip < 0) return InvalidArgument("local.clip must be >= 0");
  double x = 0;
  const bool fx = ParseFx(c.profile, &x);
  if (!fx && c.profile != "exponential" && c.profile != "lognormal" && c.profile != "trace") {
    return InvalidArgument(
        "speed.profile must be F-<X> (e.g. F-80), exponential, lognormal or "
        "trace, got '" +
        c.profile + "'");
  }
  if (fx && !(x >= 0 && x < 100)) return InvalidArgument("speed.profile F-X needs X in [0, 100)");
  if (!(c.fx >= 0 && c.fx < 100)) return InvalidArgument("speed.fx must be in [0, 100)");
  if (!(c.sigma > 0)) return InvalidArgument("speed.sigma must be > 0");
  if (c.profile == "trace" && c.trace.empty()) {
    return InvalidArgument("speed.profile = trace needs speed.trace (a file)");
  }
  if (!(c.dropout >= 0 && c.dropout < 1)) return InvalidArgument("speed.dropout must be in [0, 1)");
  static const std::set<std::string> kAttacks = {"none",     "random", "sign-flip",
                                                 "gaussian", "nan",    "inf"};
  if (!kAttacks.count(c.attack)) {
    return InvalidArgument(
        "byzantine.attack must be none, random, sign-flip, gaussian, nan or inf in simulation "
        "(alie/foe/label-flip need the cluster's worker), got '" +
        c.attack + "'");
  }
  if (c.byzantine_count < 0 || c.byzantine_count >= c.clients) {
    return InvalidArgument("byzantine.count must be in [0, clients)");
  }
  if (!(c.attack_scale > 0) || !(c.attack_sigma > 0) || c.attack_from < 0) {
    return InvalidArgument("byzantine.scale/sigma must be > 0 and from_update >= 0");
  }
  if (c.runs.empty()) return InvalidArgument("no run left (simulation.only matches none)");
  std::set<std::string> names;
  for (const auto& r : c.runs) {
    if (!names.insert(r.name).second) return InvalidArgument("duplicate run name '" + r.name + "'");
    const int64_t m = r.server.clients_per_round > 0 ? r.server.clients_per_round : c.clients;
    if (r.server.clients_per_round > c.clients) {
      return InvalidArgument("run '" + r.name + "': clients_per_round exceeds the clients");
    }
    if (r.server.algorithm == "fedavg" && c.concurrency > 0 && m > c.concurrency) {
      return InvalidArgument("run '" + r.name + "': a fedavg round of " + std::to_string(m) +
                             " clients exceeds simulation.concurrency");
    }
  }
  return Status::Ok();
}

}  // namespace

double SimConfig::ProfilePercent() const {
  double x = 0;
  return ParseFx(profile, &x) ? x : fx;
}

Result<SimConfig> ParseSimConfig(const std::string& text,
                                 const std::vector<std::string>& overrides) {
  PHX_ASSIGN_OR_RETURN(toml::table root, ParseTomlText(text));
  for (const auto& o : overrides) PHX_RETURN_IF_ERROR(ApplyOverride(root, o));
  static const std::set<std::string> kSections = {"simulation", "data",   "model",     "local",
                                                  "speed",      "server", "byzantine", "runs"};
  for (const auto& [k, node] : root) {
    const std::string key(k.str());
    if (!kSections.count(key)) return InvalidArgument("unknown config section '" + key + "'");
    if (key == "runs" ? !node.is_array_of_tables() : !node.is_table()) {
      return InvalidArgument("config section '" + key + "' has the wrong shape");
    }
  }
  SimConfig c;
  {
    TomlSection r(root["simulation"].as_table(), "simulation");
    r.Read("seed", &c.seed);
    r.Read("clients", &c.clients);
    r.Read("time_budget", &c.time_budget);
    r.Read("eval_every", &c.eval_every);
    r.Read("concurrency", &c.concurrency);
    r.ReadList("only", &c.only);
    r.Read("title", &c.title);
    PHX_RETURN_IF_ERROR(r.Finish());
  }
  {
    TomlSection r(root["data"].as_table(), "data");
    r.Read("dataset", &c.dataset);
    r.Read("path", &c.path);
    r.Read("partition", &c.partition);
    r.Read("alpha", &c.alpha);
    r.Read("samples_per_client", &c.samples_per_client);
    r.Read("partition_seed", &c.partition_seed);
    r.Read("max_train", &c.max_train);
    r.Read("max_test", &c.max_test);
    r.Read("test_fraction", &c.test_fraction);
    r.Read("hash_buckets", &c.hash_buckets);
    PHX_RETURN_IF_ERROR(r.Finish());
  }
  {
    TomlSection r(root["model"].as_table(), "model");
    r.Read("kind", &c.model);
    r.Read("hidden", &c.hidden);
    r.Read("embedding_dim", &c.embedding_dim);
    r.Read("l2", &c.l2);
    r.Read("init_scale", &c.init_scale);
    PHX_RETURN_IF_ERROR(r.Finish());
  }
  {
    TomlSection r(root["local"].as_table(), "local");
    r.Read("steps", &c.steps);
    r.Read("epochs", &c.epochs);
    r.Read("batch_size", &c.batch_size);
    r.Read("learning_rate", &c.learning_rate);
    r.Read("momentum", &c.momentum);
    r.Read("clip", &c.clip);
    PHX_RETURN_IF_ERROR(r.Finish());
  }
  {
    TomlSection r(root["speed"].as_table(), "speed");
    r.Read("profile", &c.profile);
    r.Read("fx", &c.fx);
    r.Read("sigma", &c.sigma);
    r.Read("trace", &c.trace);
    r.Read("dropout", &c.dropout);
    PHX_RETURN_IF_ERROR(r.Finish());
  }
  {
    TomlSection r(root["byzantine"].as_table(), "byzantine");
    r.Read("count", &c.byzantine_count);
    r.Read("attack", &c.attack);
    r.Read("scale", &c.attack_scale);
    r.Read("sigma", &c.attack_sigma);
    r.Read("from_update", &c.attack_from);
    PHX_RETURN_IF_ERROR(r.Finish());
  }
  aggregators::FederatedOptions base;
  {
    TomlSection r(root["server"].as_table(), "server");
    ReadServer(r, &base);
    PHX_RETURN_IF_ERROR(r.Finish());
  }
  std::vector<SimRun> runs;
  if (const toml::array* arr = root["runs"].as_array()) {
    for (size_t i = 0; i < arr->size(); ++i) {
      const toml::table* t = arr->get(i)->as_table();
      SimRun run;
      run.server = base;
      TomlSection r(t, "runs[" + std::to_string(i) + "]");
      r.Read("name", &run.name);
      ReadServer(r, &run.server);
      PHX_RETURN_IF_ERROR(r.Finish());
      if (run.name.empty()) {
        return InvalidArgument("runs[" + std::to_string(i) + "] needs a name");
      }
      runs.push_back(std::move(run));
    }
  } else {
    runs.push_back(SimRun{base.algorithm, base});
  }
  for (auto& run : runs) {
    if (!c.only.empty() && std::find(c.only.begin(), c.only.end(), run.name) == c.only.end()) {
      continue;
    }
    Status s = aggregators::ResolveFederatedOptions(&run.server);
    if (!s.ok()) return s.WithContext("run '" + run.name + "'");
    run.server.robust.seed = c.seed;
    c.runs.push_back(std::move(run));
  }
  if (c.path.empty()) {
    c.path = c.dataset == "fashion-mnist" ? "/usr/share/datasets/fashion-mnist"
                                          : "data/spam-assassin/data";
  }
  PHX_RETURN_IF_ERROR(Validate(c));
  return c;
}

Result<SimConfig> LoadSimConfig(const std::string& path,
                                const std::vector<std::string>& overrides) {
  PHX_ASSIGN_OR_RETURN(std::string text, ReadConfigFile(path, "simulation config"));
  auto r = ParseSimConfig(text, overrides);
  if (!r.ok()) return r.status().WithContext(path);
  r->source = path;
  return r;
}

}  // namespace phalanx::launch
