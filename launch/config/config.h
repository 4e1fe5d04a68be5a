#pragma once
// The job configuration shared by every role: one TOML file plus
// `--set section.key=value` overrides. Parsing rejects unknown sections and
// keys, wrong types and impossible values with a message naming the key.
// Plain value type; each field's default is the value written here.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace phalanx {

struct ClusterConfig {
  int servers = 2;
  int workers = 4;
  std::string mode = "sync";       // sync | async | federated ([federated])
  std::string host = "127.0.0.1";  // address every node binds and advertises
  uint32_t num_slots = 1024;       // key slots; slot -> server table in the view
  int heartbeat_ms = 300;
  int heartbeat_timeout_ms = 3000;    // a node silent this long is dead
  int register_timeout_ms = 30000;    // give up reaching the scheduler after this
  int formation_timeout_ms = 300000;  // wait this long for every node to register
  int round_timeout_ms = 30000;       // sync: close a round without missing workers
  // Sync: a worker that missed this many consecutive rounds (each closed by
  // round_timeout_ms without its push) leaves the round quorum, so later
  // rounds stop waiting for it, until it pushes again. 0 = never exclude.
  int exclude_after_missed_rounds = 3;
  int request_timeout_ms = 120000;        // worker pull/push deadline
  bool tolerate_worker_failures = false;  // launcher keeps going when a worker dies
  // `phalanx launch local` replaces a node that dies on its own (not by the
  // fault schedule) up to this many times in all (--max-restarts); 0 = the
  // first failure ends the job.
  int max_restarts = 0;
  bool http = true;  // serve /metrics and /status on every process
  // Payload checksums on worker requests (and the servers' replies to them):
  // auto (off on loopback, on across hosts) | always | never.
  std::string checksum = "auto";
  // Largest payload of one pull/push message; larger requests go out as
  // pipelined parts (worker::ClientOptions::max_part_bytes). 0 = never split.
  int64_t max_part_bytes = int64_t{1} << 20;
  // `phalanx launch local` estimates the job's memory (launch/cluster/
  // memory_estimate.h) and refuses a job that cannot fit in MemAvailable;
  // true skips that check.
  bool skip_memory_check = false;
};

struct DataConfig {
  std::string dataset = "fashion-mnist";  // fashion-mnist | spam-assassin | libsvm
  std::string path;                       // default per dataset
  std::string test_path;                  // libsvm only
  uint64_t seed = 1;
  double test_fraction = 0.2;  // spam-assassin
  int64_t max_train = 0;       // 0 = all examples
  int64_t max_test = 0;
  // How the training set is split over the cluster's workers: iid (equal
  // random shards) or dirichlet (label shares ~ Dir(alpha), as in MoNNA).
  std::string partition = "iid";
  double dirichlet_alpha = 1.0;
};

struct ModelConfig {
  std::string kind = "mlp";  // softmax | mlp | embedding-bag
  int hidden = 128;
  int embedding_dim = 16;
  double l2 = 0.0;
};

struct TrainConfig {
  int rounds = 1000;  // per worker
  int batch_size = 64;
  int eval_every = 100;  // rounds between test evaluations (worker 0)
  int log_every = 10;
  uint64_t seed = 1;
  double momentum = 0.0;  // worker-side Polyak momentum beta (MoNNA); 0 = off
  int step_delay_ms =
      0;  // sleep this long per step (a straggler; set per worker by fault schedules)
};

struct OptimizerConfig {
  std::string kind = "sgd";  // sgd | adagrad | adam
  double learning_rate = 0.1;
  double momentum = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double epsilon = 1e-8;
  double weight_decay = 0.0;
};

struct TablesConfig {
  int dense_row_dim = 256;         // dense parameters are rows of this many floats
  double dense_init_scale = 0.05;  // uniform [-s, s]
  double embedding_init_scale = 0.01;
  uint64_t seed = 7;
  // Table updates / lookups with at least this many keys fan out over the
  // partitions on TBB (ps::TableOptions; bench/README.md has the trade-off).
  int64_t parallel_min_update = 4096;
  int64_t parallel_min_lookup = int64_t{1} << 18;
};

struct AggregatorConfig {
  std::string name = "mean";
  int f = 0;
  std::map<std::string, double> params;
};

// Byzantine workers: the last `count` ranks (or the listed `ranks`) push the
// named attack instead of their gradient from round `from_round` on.
struct ByzantineConfig {
  int count = 0;
  std::vector<int> ranks;
  std::string attack = "random";
  int from_round = 0;
  double scale = 1.0;
  double sigma = 200.0;
  double tau = -1.0;  // attack default when negative
  int estimate_batches = 5;
  // Omniscient attackers: servers forward the round's honest gradients to the
  // Byzantine workers (alie, foe/ipm, mimic, alie-opt, ipm-opt).
  bool omniscient = false;
  int mimic_target = 0;        // mimic: which honest worker is copied
  int line_search_evals = 20;  // alie-opt / ipm-opt
};

// One `[[faults]]` entry, typed but not yet checked against the cluster:
// launch/faults/fault_schedule.h validates kinds, nodes and times and documents
// each field. Absent numbers are nullopt.
struct FaultConfig {
  std::string kind;  // byzantine|kill|straggler|delay|loss|bandwidth|partition|reset
  std::string node;  // "scheduler", "server-N", "worker-N"
  std::string peer;  // network faults: the other end of the link ("" = all of node's links)
  std::optional<int> at_round;
  std::optional<int> until_round;
  std::optional<double> at_s;
  std::optional<double> until_s;
  std::string attack;                     // byzantine
  std::optional<double> restart_after_s;  // kill
  std::optional<double> step_delay_ms;    // straggler
  std::optional<double> delay_ms;         // delay (fault proxy)
  std::optional<double> jitter_ms;        // delay
  std::optional<double> loss_pct;         // loss
  std::optional<double> rate_kbit;        // bandwidth
  std::string direction = "both";         // network faults: in | out | both (seen from node)
  std::string via;                        // bandwidth: "" (tbf) or "proxy"
};

// Server snapshots for recovery (ps/snapshot.h): every `every_rounds` rounds
// of table 0 and/or every `every_seconds`, into `dir`, keeping the `keep`
// newest per server rank. An empty dir disables snapshots.
struct CheckpointConfig {
  std::string dir;
  int every_rounds = 0;
  double every_seconds = 0;
  int keep = 2;
};

// Live federated mode (cluster.mode = "federated"; ps/federated_shard.h,
// worker/federated_client.h): `clients` clients hosted round-robin by the
// workers train `local_steps` SGD steps from the pulled model and push their
// delta; the servers apply `algorithm`. Server keys mean what they mean in
// `phalanx simulate`'s [server] section (aggregators/federated.h); times
// (τ_i of the speed profile, FedFix's window) are in units of time_unit_ms.
// Algorithm-specific checks happen in launch/cli/federated_live.h.
struct FederatedConfig {
  std::string algorithm = "fedbuff";  // async | fedasync | fedbuff | fedfix
  double server_lr = 1.0;
  std::string weights;  // "" = the algorithm's default
  int buffer_size = 10;
  double window = 0.5;
  double mix_alpha = 0.6;
  std::string staleness;  // "" = default (sqrt for fedbuff, else constant)
  double staleness_a = 0.5;
  double staleness_b = 4.0;
  int64_t max_staleness = -1;
  std::string redispatch;     // "" = default; immediately | at-trigger
  std::string rule = "mean";  // inner rule over a buffer/window (aggregators)
  int f = 0;
  int64_t clients = 20;
  int local_steps = 10;
  int batch_size = 64;
  double learning_rate = 0.02;
  std::string partition = "dirichlet-equal";  // dirichlet-equal | dirichlet | iid
  double alpha = 0.1;
  uint64_t partition_seed = 42;
  int64_t samples_per_client = 0;  // 0 = floor(N / clients)
  std::string speed = "F-80";      // F-<X> (τ_i from 1 down to 1 - X%) or none
  double time_unit_ms = 200;       // wall time of one virtual time unit (τ = 1)
  double duration_s = 20;          // wall time the clients train
  double eval_every_s = 1.0;       // worker 0's test evaluations
};

struct JobConfig;
// Worker ranks that lie: byzantine.ranks, or else the last byzantine.count ranks.
std::vector<int> ByzantineRanks(const JobConfig& config);

struct JobConfig {
  ClusterConfig cluster;
  DataConfig data;
  ModelConfig model;
  TrainConfig train;
  OptimizerConfig optimizer;            // dense table (and embeddings unless overridden)
  OptimizerConfig embedding_optimizer;  // sparse tables
  bool has_embedding_optimizer = false;
  TablesConfig tables;
  AggregatorConfig aggregator;
  ByzantineConfig byzantine;
  CheckpointConfig checkpoint;      // [checkpoint]
  FederatedConfig federated;        // [federated]
  std::vector<FaultConfig> faults;  // [[faults]], in file order
  std::string source;               // the file it came from
  // Every key with its effective value (defaults, file and --set applied),
  // as TOML that ParseConfig reads back to the same config: the run
  // folder's config.toml, so that a run can be repeated from it.
  std::string resolved_toml;
};

// Parses TOML text / a file, applying `overrides` ("section.key=value", the
// value in TOML syntax or a bare string) before validation.
Result<JobConfig> ParseConfig(const std::string& toml_text,
                              const std::vector<std::string>& overrides = {});
Result<JobConfig> LoadConfig(const std::string& path,
                             const std::vector<std::string>& overrides = {});

}  // namespace phalanx
