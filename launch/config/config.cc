#include "launch/config/config.h"

#include <toml++/toml.h>

#include <set>
#include <sstream>

#include "aggregators/aggregator.h"
#include "launch/config/toml_section.h"

namespace phalanx {
namespace {

Status ReadOptimizer(const toml::table& root, const char* name, OptimizerConfig* o,
                     toml::table* echo) {
  TomlSection r(root[name].as_table(), name, EchoSection(echo, name));
  r.Read("kind", &o->kind);
  r.Read("learning_rate", &o->learning_rate);
  r.Read("momentum", &o->momentum);
  r.Read("beta1", &o->beta1);
  r.Read("beta2", &o->beta2);
  r.Read("epsilon", &o->epsilon);
  r.Read("weight_decay", &o->weight_decay);
  PHX_RETURN_IF_ERROR(r.Finish());
  std::string where = std::string(name) + ".";
  if (o->kind != "sgd" && o->kind != "adagrad" && o->kind != "adam") {
    return InvalidArgument(where + "kind must be sgd, adagrad or adam, got '" + o->kind + "'");
  }
  if (!(o->learning_rate > 0) || !std::isfinite(o->learning_rate)) {
    return InvalidArgument(where + "learning_rate must be a positive number");
  }
  if (o->momentum < 0 || o->momentum >= 1)
    return InvalidArgument(where + "momentum must be in [0, 1)");
  if (o->beta1 < 0 || o->beta1 >= 1 || o->beta2 < 0 || o->beta2 >= 1) {
    return InvalidArgument(where + "beta1 and beta2 must be in [0, 1)");
  }
  if (!(o->epsilon > 0)) return InvalidArgument(where + "epsilon must be positive");
  if (o->weight_decay < 0) return InvalidArgument(where + "weight_decay must not be negative");
  return Status::Ok();
}

// The servers build their rule from [aggregator] as RunServer does (name, f,
// params). A synchronous round combines one push per worker, so the rule must
// run on cluster.workers inputs. Asynchronous servers apply each push as it
// comes (the rule is only created, and a bad name fails the server's start);
// federated servers use [federated]'s rule (launch/cli/federated_live.h).
Status CheckRuleForCluster(const JobConfig& c) {
  if (c.cluster.mode != "sync") return Status::Ok();
  aggregators::AggregatorOptions o;
  o.name = c.aggregator.name;
  o.f = c.aggregator.f;
  o.params = c.aggregator.params;
  Status s = aggregators::CheckRuleCanRun(o, c.cluster.workers);
  if (s.ok()) return s;
  return InvalidArgument(s.message() + " (a synchronous round combines the pushes of all " +
                         std::to_string(c.cluster.workers) +
                         " workers of cluster.workers, so no round could update the model; " +
                         "change aggregator.name, aggregator.f or cluster.workers)");
}

Status Validate(const JobConfig& c) {
  const auto& cl = c.cluster;
  if (cl.max_restarts < 0 || cl.max_restarts > 10000)
    return InvalidArgument("cluster.max_restarts must be in [0, 10000] (0: fail fast)");
  if (cl.servers < 1 || cl.servers > 256)
    return InvalidArgument("cluster.servers must be in [1, 256]");
  if (cl.workers < 1 || cl.workers > 4096)
    return InvalidArgument("cluster.workers must be in [1, 4096]");
  if (cl.mode != "sync" && cl.mode != "async" && cl.mode != "federated") {
    return InvalidArgument("cluster.mode must be sync, async or federated, got '" + cl.mode + "'");
  }
  if (cl.num_slots < static_cast<uint32_t>(cl.servers) || cl.num_slots > (1u << 20)) {
    return InvalidArgument("cluster.num_slots must be in [servers, 2^20]");
  }
  if (cl.heartbeat_ms <= 0 || cl.heartbeat_timeout_ms <= cl.heartbeat_ms) {
    return InvalidArgument("cluster.heartbeat_timeout_ms must exceed cluster.heartbeat_ms > 0");
  }
  if (cl.register_timeout_ms <= 0 || cl.round_timeout_ms <= 0 || cl.request_timeout_ms <= 0 ||
      cl.formation_timeout_ms <= 0) {
    return InvalidArgument("cluster timeouts must be positive");
  }
  if (cl.exclude_after_missed_rounds < 0 || cl.exclude_after_missed_rounds > 1000000) {
    return InvalidArgument(
        "cluster.exclude_after_missed_rounds must be in [0, 1000000] (0: never exclude), got " +
        std::to_string(cl.exclude_after_missed_rounds));
  }
  if (cl.checksum != "auto" && cl.checksum != "always" && cl.checksum != "never") {
    return InvalidArgument("cluster.checksum must be auto, always or never, got '" + cl.checksum +
                           "'");
  }
  if (cl.max_part_bytes < 0) {
    return InvalidArgument("cluster.max_part_bytes must be >= 0 (0: never split requests)");
  }
  const auto& d = c.data;
  if (d.dataset != "fashion-mnist" && d.dataset != "spam-assassin" && d.dataset != "libsvm") {
    return InvalidArgument("data.dataset must be fashion-mnist, spam-assassin or libsvm, got '" +
                           d.dataset + "'");
  }
  if (d.partition != "iid" && d.partition != "dirichlet") {
    return InvalidArgument("data.partition must be iid or dirichlet, got '" + d.partition + "'");
  }
  if (!(d.dirichlet_alpha > 0) || !std::isfinite(d.dirichlet_alpha)) {
    return InvalidArgument("data.dirichlet_alpha must be a positive number");
  }
  if (!(d.test_fraction > 0 && d.test_fraction < 1)) {
    return InvalidArgument("data.test_fraction must be in (0, 1)");
  }
  if (d.max_train < 0 || d.max_test < 0) return InvalidArgument("data.max_train/max_test >= 0");
  const auto& m = c.model;
  if (m.kind != "softmax" && m.kind != "mlp" && m.kind != "embedding-bag") {
    return InvalidArgument("model.kind must be softmax, mlp or embedding-bag, got '" + m.kind +
                           "'");
  }
  if (m.hidden < 1 || m.hidden > 65536)
    return InvalidArgument("model.hidden must be in [1, 65536]");
  if (m.embedding_dim < 1 || m.embedding_dim > 4096) {
    return InvalidArgument("model.embedding_dim must be in [1, 4096]");
  }
  if (m.l2 < 0) return InvalidArgument("model.l2 must not be negative");
  if ((m.kind == "embedding-bag") != (d.dataset != "fashion-mnist")) {
    if (m.kind == "embedding-bag" && d.dataset == "fashion-mnist") {
      return InvalidArgument(
          "model.kind embedding-bag needs a sparse data set (spam-assassin, libsvm)");
    }
    if (d.dataset == "spam-assassin") {
      return InvalidArgument("data.dataset spam-assassin needs model.kind = embedding-bag");
    }
  }
  const auto& t = c.train;
  if (t.rounds < 1) return InvalidArgument("train.rounds must be >= 1");
  if (t.batch_size < 1 || t.batch_size > 1 << 20)
    return InvalidArgument("train.batch_size must be >= 1");
  if (t.eval_every < 1 || t.log_every < 1)
    return InvalidArgument("train.eval_every/log_every >= 1");
  if (c.tables.dense_row_dim < 1 || c.tables.dense_row_dim > 65536) {
    return InvalidArgument("tables.dense_row_dim must be in [1, 65536]");
  }
  if (!(c.tables.dense_init_scale >= 0) || !(c.tables.embedding_init_scale >= 0)) {
    return InvalidArgument("tables init scales must not be negative");
  }
  if (c.aggregator.f < 0) return InvalidArgument("aggregator.f must not be negative");
  if (c.train.momentum < 0 || c.train.momentum >= 1) {
    return InvalidArgument("train.momentum must be in [0, 1)");
  }
  {
    static const std::set<std::string> kAttacks = {
        "none",  "random",   "sign-flip", "gaussian",   "alie", "foe", "ipm",
        "mimic", "alie-opt", "ipm-opt",   "label-flip", "nan",  "inf", "silent"};
    if (!kAttacks.count(c.byzantine.attack)) {
      return InvalidArgument(
          "byzantine.attack must be one of none, random, sign-flip, gaussian, alie, foe, ipm, "
          "mimic, alie-opt, ipm-opt, label-flip, nan, inf, silent; got '" +
          c.byzantine.attack + "'");
    }
    if (c.byzantine.mimic_target < 0) {
      return InvalidArgument("byzantine.mimic_target must not be negative");
    }
    if (c.byzantine.line_search_evals < 1 || c.byzantine.line_search_evals > 1000) {
      return InvalidArgument("byzantine.line_search_evals must be in [1, 1000]");
    }
  }
  if (c.byzantine.count < 0 || c.byzantine.count >= c.cluster.workers) {
    return InvalidArgument("byzantine.count must be in [0, cluster.workers)");
  }
  for (int r : c.byzantine.ranks) {
    if (r >= c.cluster.workers) return InvalidArgument("byzantine.ranks names a rank >= workers");
  }
  if (c.aggregator.name.empty()) return InvalidArgument("aggregator.name must not be empty");
  return CheckRuleForCluster(c);
}

// One reader per section: each reads its keys, reports unknown ones, and checks
// what it can check on its own; Validate checks the whole job afterwards.

Status CheckSections(const toml::table& root) {
  static const std::set<std::string> kSections = {
      "cluster", "data",       "model",     "train",      "optimizer", "embedding_optimizer",
      "tables",  "aggregator", "byzantine", "checkpoint", "federated"};
  for (const auto& [k, node] : root) {
    std::string key(k.str());
    if (key == "faults") continue;  // [[faults]]: an array of tables, read by ReadFaults
    if (!kSections.count(key)) return InvalidArgument("unknown config section '" + key + "'");
    if (!node.is_table()) return InvalidArgument("config section '" + key + "' must be a table");
  }
  return Status::Ok();
}

Status ReadCluster(const toml::table& root, ClusterConfig* x, toml::table* echo) {
  TomlSection r(root["cluster"].as_table(), "cluster", EchoSection(echo, "cluster"));
  r.Read("servers", &x->servers);
  r.Read("workers", &x->workers);
  r.Read("mode", &x->mode);
  r.Read("host", &x->host);
  r.Read("num_slots", &x->num_slots);
  r.Read("heartbeat_ms", &x->heartbeat_ms);
  r.Read("heartbeat_timeout_ms", &x->heartbeat_timeout_ms);
  r.Read("register_timeout_ms", &x->register_timeout_ms);
  r.Read("formation_timeout_ms", &x->formation_timeout_ms);
  r.Read("round_timeout_ms", &x->round_timeout_ms);
  r.Read("exclude_after_missed_rounds", &x->exclude_after_missed_rounds);
  r.Read("request_timeout_ms", &x->request_timeout_ms);
  r.Read("tolerate_worker_failures", &x->tolerate_worker_failures);
  r.Read("max_restarts", &x->max_restarts);
  r.Read("http", &x->http);
  r.Read("checksum", &x->checksum);
  r.Read("max_part_bytes", &x->max_part_bytes);
  r.Read("skip_memory_check", &x->skip_memory_check);
  return r.Finish();
}

Status ReadData(const toml::table& root, DataConfig* x, toml::table* echo) {
  TomlSection r(root["data"].as_table(), "data", EchoSection(echo, "data"));
  r.Read("dataset", &x->dataset);
  r.Read("path", &x->path);
  r.Read("test_path", &x->test_path);
  r.Read("seed", &x->seed);
  r.Read("test_fraction", &x->test_fraction);
  r.Read("max_train", &x->max_train);
  r.Read("max_test", &x->max_test);
  r.Read("partition", &x->partition);
  r.Read("dirichlet_alpha", &x->dirichlet_alpha);
  return r.Finish();
}

Status ReadModel(const toml::table& root, ModelConfig* x, toml::table* echo) {
  TomlSection r(root["model"].as_table(), "model", EchoSection(echo, "model"));
  r.Read("kind", &x->kind);
  r.Read("hidden", &x->hidden);
  r.Read("embedding_dim", &x->embedding_dim);
  r.Read("l2", &x->l2);
  return r.Finish();
}

Status ReadTrain(const toml::table& root, TrainConfig* x, toml::table* echo) {
  TomlSection r(root["train"].as_table(), "train", EchoSection(echo, "train"));
  r.Read("rounds", &x->rounds);
  r.Read("batch_size", &x->batch_size);
  r.Read("eval_every", &x->eval_every);
  r.Read("log_every", &x->log_every);
  r.Read("seed", &x->seed);
  r.Read("momentum", &x->momentum);
  r.Read("step_delay_ms", &x->step_delay_ms);
  return r.Finish();
}

Status ReadTables(const toml::table& root, TablesConfig* x, toml::table* echo) {
  TomlSection r(root["tables"].as_table(), "tables", EchoSection(echo, "tables"));
  r.Read("dense_row_dim", &x->dense_row_dim);
  r.Read("dense_init_scale", &x->dense_init_scale);
  r.Read("embedding_init_scale", &x->embedding_init_scale);
  r.Read("seed", &x->seed);
  r.Read("parallel_min_update", &x->parallel_min_update);
  r.Read("parallel_min_lookup", &x->parallel_min_lookup);
  PHX_RETURN_IF_ERROR(r.Finish());
  if (x->parallel_min_update < 1 || x->parallel_min_lookup < 1) {
    return InvalidArgument(
        "tables.parallel_min_update and tables.parallel_min_lookup must be >= 1 (keys per call)");
  }
  return Status::Ok();
}

Status ReadAggregator(const toml::table& root, AggregatorConfig* x, toml::table* echo) {
  TomlSection r(root["aggregator"].as_table(), "aggregator", EchoSection(echo, "aggregator"));
  r.Read("name", &x->name);
  r.Read("f", &x->f);
  r.ReadRemainingNumbers(&x->params);
  return r.Finish();
}

Status ReadByzantine(const toml::table& root, ByzantineConfig* x, toml::table* echo) {
  const toml::table* bt = root["byzantine"].as_table();
  TomlSection r(bt, "byzantine", EchoSection(echo, "byzantine"));
  r.Read("count", &x->count);
  r.Read("attack", &x->attack);
  r.Read("from_round", &x->from_round);
  r.Read("scale", &x->scale);
  r.Read("sigma", &x->sigma);
  r.Read("tau", &x->tau);
  r.Read("estimate_batches", &x->estimate_batches);
  r.Read("omniscient", &x->omniscient);
  r.Read("mimic_target", &x->mimic_target);
  r.Read("line_search_evals", &x->line_search_evals);
  if (bt) {
    if (const toml::node* ranks = bt->get("ranks")) {
      const toml::array* arr = ranks->as_array();
      if (!arr) return InvalidArgument("byzantine.ranks must be an array of integers");
      for (const auto& e : *arr) {
        auto v = e.value<int64_t>();
        if (!v || *v < 0) return InvalidArgument("byzantine.ranks must hold ranks >= 0");
        x->ranks.push_back(static_cast<int>(*v));
      }
      r.MarkUsed("ranks");
    }
  }
  return r.Finish();
}

Result<FaultConfig> ReadFault(const toml::table* t, const std::string& name) {
  TomlSection r(t, name);
  FaultConfig f;
  auto opt = [&](const char* key, auto* out) {
    if (!t->get(key)) return;
    typename std::remove_reference_t<decltype(*out)>::value_type v{};
    r.Read(key, &v);
    *out = v;
  };
  r.Read("kind", &f.kind);
  r.Read("node", &f.node);
  r.Read("peer", &f.peer);
  opt("at_round", &f.at_round);
  opt("until_round", &f.until_round);
  opt("at_s", &f.at_s);
  opt("until_s", &f.until_s);
  r.Read("attack", &f.attack);
  opt("restart_after_s", &f.restart_after_s);
  opt("step_delay_ms", &f.step_delay_ms);
  opt("delay_ms", &f.delay_ms);
  opt("jitter_ms", &f.jitter_ms);
  opt("loss_pct", &f.loss_pct);
  opt("rate_kbit", &f.rate_kbit);
  r.Read("direction", &f.direction);
  r.Read("via", &f.via);
  PHX_RETURN_IF_ERROR(r.Finish());
  return f;
}

Status ReadFaults(const toml::table& root, std::vector<FaultConfig>* out) {
  const toml::node* faults = root.get("faults");
  if (!faults) return Status::Ok();
  const toml::array* arr = faults->as_array();
  if (!arr) return InvalidArgument("faults must be an array of tables: write [[faults]] entries");
  for (size_t i = 0; i < arr->size(); ++i) {
    const toml::table* t = arr->get(i)->as_table();
    std::string name = "faults[" + std::to_string(i) + "]";
    if (!t) return InvalidArgument(name + " must be a table");
    PHX_ASSIGN_OR_RETURN(FaultConfig f, ReadFault(t, name));
    out->push_back(f);
  }
  return Status::Ok();
}

Status ReadCheckpoint(const toml::table& root, CheckpointConfig* x, toml::table* echo) {
  TomlSection r(root["checkpoint"].as_table(), "checkpoint", EchoSection(echo, "checkpoint"));
  r.Read("dir", &x->dir);
  r.Read("every_rounds", &x->every_rounds);
  r.Read("every_seconds", &x->every_seconds);
  r.Read("keep", &x->keep);
  PHX_RETURN_IF_ERROR(r.Finish());
  if (x->every_rounds < 0) return InvalidArgument("checkpoint.every_rounds must not be negative");
  if (!(x->every_seconds >= 0) || !std::isfinite(x->every_seconds)) {
    return InvalidArgument("checkpoint.every_seconds must be a number >= 0");
  }
  if (x->keep < 1) return InvalidArgument("checkpoint.keep must be >= 1");
  if (!x->dir.empty() && x->every_rounds == 0 && x->every_seconds == 0) {
    return InvalidArgument(
        "checkpoint.dir is set but neither checkpoint.every_rounds nor "
        "checkpoint.every_seconds is");
  }
  return Status::Ok();
}

// Ranges only; algorithm names and combinations: launch/cli/federated_live.h.
Status CheckFederated(const FederatedConfig& x) {
  if (x.clients < 1) return InvalidArgument("federated.clients must be >= 1");
  if (x.local_steps < 1) return InvalidArgument("federated.local_steps must be >= 1");
  if (x.batch_size < 1) return InvalidArgument("federated.batch_size must be >= 1");
  if (!(x.learning_rate > 0) || !std::isfinite(x.learning_rate)) {
    return InvalidArgument("federated.learning_rate must be a positive number");
  }
  if (!(x.alpha > 0) || !std::isfinite(x.alpha)) {
    return InvalidArgument("federated.alpha (Dirichlet concentration) must be > 0");
  }
  if (x.samples_per_client < 0) return InvalidArgument("federated.samples_per_client >= 0");
  if (!(x.time_unit_ms > 0) || !std::isfinite(x.time_unit_ms)) {
    return InvalidArgument("federated.time_unit_ms must be > 0");
  }
  if (!(x.duration_s > 0) || !std::isfinite(x.duration_s)) {
    return InvalidArgument("federated.duration_s must be > 0");
  }
  if (!(x.eval_every_s > 0) || !std::isfinite(x.eval_every_s)) {
    return InvalidArgument("federated.eval_every_s must be > 0");
  }
  return Status::Ok();
}

Status ReadFederated(const toml::table& root, FederatedConfig* x, toml::table* echo) {
  TomlSection r(root["federated"].as_table(), "federated", EchoSection(echo, "federated"));
  r.Read("algorithm", &x->algorithm);
  r.Read("server_lr", &x->server_lr);
  r.Read("weights", &x->weights);
  r.Read("buffer_size", &x->buffer_size);
  r.Read("window", &x->window);
  r.Read("mix_alpha", &x->mix_alpha);
  r.Read("staleness", &x->staleness);
  r.Read("staleness_a", &x->staleness_a);
  r.Read("staleness_b", &x->staleness_b);
  r.Read("max_staleness", &x->max_staleness);
  r.Read("redispatch", &x->redispatch);
  r.Read("rule", &x->rule);
  r.Read("f", &x->f);
  r.Read("clients", &x->clients);
  r.Read("local_steps", &x->local_steps);
  r.Read("batch_size", &x->batch_size);
  r.Read("learning_rate", &x->learning_rate);
  r.Read("partition", &x->partition);
  r.Read("alpha", &x->alpha);
  r.Read("partition_seed", &x->partition_seed);
  r.Read("samples_per_client", &x->samples_per_client);
  r.Read("speed", &x->speed);
  r.Read("time_unit_ms", &x->time_unit_ms);
  r.Read("duration_s", &x->duration_s);
  r.Read("eval_every_s", &x->eval_every_s);
  PHX_RETURN_IF_ERROR(r.Finish());
  return CheckFederated(*x);
}

}  // namespace

Result<JobConfig> ParseConfig(const std::string& text, const std::vector<std::string>& overrides) {
  PHX_ASSIGN_OR_RETURN(toml::table root, ParseTomlText(text));
  for (const auto& o : overrides) PHX_RETURN_IF_ERROR(ApplyTomlOverride(root, o));
  PHX_RETURN_IF_ERROR(CheckSections(root));

  JobConfig c;
  toml::table resolved;
  toml::table* echo = &resolved;
  PHX_RETURN_IF_ERROR(ReadCluster(root, &c.cluster, echo));
  PHX_RETURN_IF_ERROR(ReadData(root, &c.data, echo));
  PHX_RETURN_IF_ERROR(ReadModel(root, &c.model, echo));
  PHX_RETURN_IF_ERROR(ReadTrain(root, &c.train, echo));
  PHX_RETURN_IF_ERROR(ReadOptimizer(root, "optimizer", &c.optimizer, echo));
  c.embedding_optimizer = c.optimizer;
  if (root["embedding_optimizer"].as_table()) {
    c.has_embedding_optimizer = true;
    PHX_RETURN_IF_ERROR(ReadOptimizer(root, "embedding_optimizer", &c.embedding_optimizer, echo));
  }
  PHX_RETURN_IF_ERROR(ReadTables(root, &c.tables, echo));
  PHX_RETURN_IF_ERROR(ReadAggregator(root, &c.aggregator, echo));
  PHX_RETURN_IF_ERROR(ReadByzantine(root, &c.byzantine, echo));
  PHX_RETURN_IF_ERROR(ReadFaults(root, &c.faults));
  // The schedule as written ([[faults]] entries keep only the keys they set).
  if (const toml::node* faults = root.get("faults")) {
    faults->visit([&](const auto& n) { resolved.insert_or_assign("faults", n); });
  }
  if (c.train.step_delay_ms < 0 || c.train.step_delay_ms > 600000) {
    return InvalidArgument("train.step_delay_ms must be in [0, 600000]");
  }
  PHX_RETURN_IF_ERROR(ReadCheckpoint(root, &c.checkpoint, echo));
  PHX_RETURN_IF_ERROR(ReadFederated(root, &c.federated, echo));
  if (c.data.path.empty()) {
    if (c.data.dataset == "fashion-mnist") c.data.path = "/usr/share/datasets/fashion-mnist";
    if (c.data.dataset == "spam-assassin") c.data.path = "data/spam-assassin/data";
  }
  PHX_RETURN_IF_ERROR(Validate(c));
  std::stringstream text_out;
  text_out << resolved;
  c.resolved_toml = text_out.str();
  return c;
}

std::vector<int> ByzantineRanks(const JobConfig& config) {
  const auto& bz = config.byzantine;
  if (!bz.ranks.empty()) return bz.ranks;
  std::vector<int> ranks;
  for (int r = std::max(0, config.cluster.workers - bz.count); r < config.cluster.workers; ++r) {
    ranks.push_back(r);
  }
  return ranks;
}

Result<JobConfig> LoadConfig(const std::string& path, const std::vector<std::string>& overrides) {
  PHX_ASSIGN_OR_RETURN(std::string text, ReadConfigFile(path, "config file"));
  auto r = ParseConfig(text, overrides);
  if (!r.ok()) return r.status().WithContext(path);
  r->source = path;
  return r;
}

}  // namespace phalanx
