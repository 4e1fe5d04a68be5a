#include "launch/cli/roles.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>

#include "common/http_server.h"
#include "common/metrics.h"
#include "common/node_lines.h"
#include "launch/cli/federated_live.h"
#include "launch/config/fingerprint.h"
#include "ps/server.h"
#include "scheduler/scheduler.h"
#include "worker/client.h"
#include "worker/dataset.h"
#include "worker/model.h"
#include "worker/partition.h"
#include "worker/trainer.h"

namespace phalanx::launch {
namespace {

// Starts /metrics and /status; the status text comes from `status_fn`.
Result<std::unique_ptr<HttpServer>> StartHttp(const JobConfig& config,
                                              std::function<std::string()> status_fn) {
  if (!config.cluster.http) return std::unique_ptr<HttpServer>();
  ExportBuildInfo(ps::ProcessBuildInfo(), MetricsRegistry::Global());
  std::map<std::string, HttpHandler> handlers;
  handlers["/metrics"] = [] {
    return HttpResponse{200, "text/plain; version=0.0.4",
                        MetricsRegistry::Global().RenderPrometheus()};
  };
  handlers["/status"] = [status_fn] { return HttpResponse{200, "application/json", status_fn()}; };
  return HttpServer::Start(config.cluster.host, 0, std::move(handlers));
}

ps::OptimizerOptions ToOptimizer(const OptimizerConfig& c) {
  ps::OptimizerOptions o;
  o.kind = c.kind == "adam"      ? ps::OptimizerKind::kAdam
           : c.kind == "adagrad" ? ps::OptimizerKind::kAdagrad
                                 : ps::OptimizerKind::kSgd;
  o.learning_rate = static_cast<float>(c.learning_rate);
  o.momentum = static_cast<float>(c.momentum);
  o.beta1 = static_cast<float>(c.beta1);
  o.beta2 = static_cast<float>(c.beta2);
  o.epsilon = static_cast<float>(c.epsilon);
  o.weight_decay = static_cast<float>(c.weight_decay);
  return o;
}

worker::ModelOptions ToModel(const JobConfig& c, const worker::Dataset& train) {
  worker::ModelOptions m;
  m.kind = c.model.kind;
  m.input_dim = train.dense() ? train.feature_dim : 0;
  m.num_classes = train.num_classes;
  m.hidden = static_cast<size_t>(c.model.hidden);
  m.embedding_dim = static_cast<size_t>(c.model.embedding_dim);
  m.l2 = static_cast<float>(c.model.l2);
  return m;
}

// Reads the job's data set. Fashion-MNIST without `pixels` comes without its
// images (LoadFashionMnistLabels): a worker reads those of its own shard once
// it knows it (KeepWorkerData), so it never holds the whole set.
Result<worker::TrainTest> LoadData(const JobConfig& c, bool pixels) {
  worker::TrainTest tt;
  if (c.data.dataset == "fashion-mnist") {
    PHX_ASSIGN_OR_RETURN(tt, pixels ? worker::LoadFashionMnist(c.data.path)
                                    : worker::LoadFashionMnistLabels(c.data.path));
  } else if (c.data.dataset == "spam-assassin") {
    worker::SpamOptions so;
    so.seed = c.data.seed;
    so.test_fraction = c.data.test_fraction;
    PHX_ASSIGN_OR_RETURN(tt, worker::LoadSpamAssassin(c.data.path, so));
  } else {
    PHX_ASSIGN_OR_RETURN(tt.train, worker::LoadLibsvm(c.data.path));
    if (c.data.test_path.empty()) return InvalidArgument("data.test_path is required for libsvm");
    PHX_ASSIGN_OR_RETURN(tt.test, worker::LoadLibsvm(c.data.test_path));
    size_t classes = std::max(tt.train.num_classes, tt.test.num_classes);
    tt.train.num_classes = tt.test.num_classes = classes;
  }
  worker::TruncateDataset(&tt.train, static_cast<size_t>(c.data.max_train));
  worker::TruncateDataset(&tt.test, static_cast<size_t>(c.data.max_test));
  return tt;
}

bool HasPixels(const worker::Dataset& d) { return d.features.size() == d.size() * d.feature_dim; }

// Keeps of `data` what a worker needs: the examples *shard names (renumbered
// 0..k-1, the same examples in the same order) and the test split only when
// it `evaluates`. A set read without pixels gets those of the kept examples.
Status KeepWorkerData(const JobConfig& c, bool evaluates, worker::TrainTest* data,
                      std::vector<size_t>* shard) {
  if (HasPixels(data->train)) {
    worker::KeepShard(&data->train, shard);
  } else {
    PHX_ASSIGN_OR_RETURN(data->train,
                         worker::LoadFashionMnistRows(c.data.path, "train", data->train, *shard));
    std::iota(shard->begin(), shard->end(), size_t{0});
  }
  if (!evaluates) {
    worker::ReleaseExamples(&data->test);
  } else if (!HasPixels(data->test)) {
    std::vector<size_t> all(data->test.size());
    std::iota(all.begin(), all.end(), size_t{0});
    PHX_ASSIGN_OR_RETURN(data->test,
                         worker::LoadFashionMnistRows(c.data.path, "t10k", data->test, all));
  }
  return Status::Ok();
}

// The example indices (into `train`) worker `rank` of `world` trains on.
Result<std::vector<size_t>> WorkerShard(const JobConfig& config, const worker::Dataset& train,
                                        int rank, int world) {
  if (config.data.partition != "dirichlet") {
    return worker::ShardIndices(train.size(), rank, std::max(world, rank + 1), config.data.seed);
  }
  // Non-IID: label shares per worker ~ Dir(alpha) (MoNNA's heterogeneity).
  worker::PartitionOptions po;
  po.method = "dirichlet";
  po.alpha = config.data.dirichlet_alpha;
  po.num_clients = config.cluster.workers;
  po.seed = config.data.seed;
  PHX_ASSIGN_OR_RETURN(auto partition, worker::Partition::Create(train, po));
  std::vector<uint32_t> idx;
  partition.ClientIndices(rank, &idx);
  return std::vector<size_t>(idx.begin(), idx.end());
}

worker::TrainerOptions TrainerOptionsFor(const JobConfig& config) {
  worker::TrainerOptions to;
  to.synchronous = config.cluster.mode == "sync";
  to.rounds = config.train.rounds;
  to.batch_size = config.train.batch_size;
  to.eval_every = config.train.eval_every;
  to.log_every = config.train.log_every;
  to.seed = config.train.seed;
  to.dense_row_dim = static_cast<uint32_t>(config.tables.dense_row_dim);
  to.momentum = config.train.momentum;
  to.step_delay_ms = config.train.step_delay_ms;
  return to;
}

// Test accuracy of the model at `min_version`: the dense rows and, for sparse
// models, the rows of the test set's keys, pulled once.
Result<double> EvaluateOnce(const JobConfig& config, worker::Client* client,
                            const worker::Model& model, const worker::Dataset& test,
                            int64_t min_version) {
  const auto row_dim = static_cast<uint32_t>(config.tables.dense_row_dim);
  std::vector<uint64_t> keys(worker::DenseRows(model.dense_size(), row_dim));
  std::iota(keys.begin(), keys.end(), uint64_t{0});
  std::vector<float> dense(keys.size() * row_dim);
  worker::PullResult r;
  PHX_RETURN_IF_ERROR(client->Pull(worker::kDenseTable, keys, row_dim, min_version, dense.data(),
                                   &r, /*keys_unique=*/true));
  worker::SparseRows rows;
  if (const auto dim = static_cast<uint32_t>(model.embedding_dim()); dim > 0) {
    std::vector<size_t> all(test.size());
    std::iota(all.begin(), all.end(), size_t{0});
    rows.keys = model.SparseKeys(test, all);
    rows.values.resize(rows.keys.size() * dim);
    PHX_RETURN_IF_ERROR(client->Pull(worker::kEmbeddingTable, rows.keys, dim, min_version,
                                     rows.values.data(), &r, /*keys_unique=*/true));
  }
  return worker::Accuracy(model, test, dense.data(), rows);
}

// The evaluator (rank 0) died and is not back: the lowest live rank loads the
// test split and reports the final model instead, so a run that lost its
// evaluator still ends with a result (what TrainerOptions::
// evaluate_if_evaluator_lost does for a trainer that holds the test split).
Status EvaluateIfEvaluatorLost(const JobConfig& config, worker::Client* client,
                               const worker::Model& model, double* accuracy) {
  ClusterView v = client->view();
  int lowest_live = -1;
  for (const auto& w : v.workers) {
    if (!w.alive) continue;
    if (w.rank == 0) return Status::Ok();
    if (lowest_live < 0 || w.rank < lowest_live) lowest_live = w.rank;
  }
  if (lowest_live != client->rank()) return Status::Ok();
  spdlog::warn("worker {}: the evaluator (rank 0) is gone; evaluating the final model",
               client->rank());
  PHX_ASSIGN_OR_RETURN(worker::TrainTest data, LoadData(config, /*pixels=*/false));
  std::vector<size_t> no_training;
  PHX_RETURN_IF_ERROR(KeepWorkerData(config, /*evaluates=*/true, &data, &no_training));
  // Synchronous: the model after the last round; asynchronous: the current one.
  const int64_t want = config.cluster.mode == "sync" ? config.train.rounds : 0;
  auto acc = EvaluateOnce(config, client, model, data.test, want);
  if (!acc.ok()) return acc.status().WithContext("evaluating");
  *accuracy = *acc;
  return Status::Ok();
}

}  // namespace

Status RunScheduler(const JobConfig& config, int port, std::ostream& out,
                    const std::atomic<bool>* stop) {
  scheduler::SchedulerOptions o;
  o.host = config.cluster.host;
  o.port = port;
  o.expected_servers = config.cluster.servers;
  o.expected_workers = config.cluster.workers;
  o.num_slots = config.cluster.num_slots;
  o.heartbeat_timeout_ms = config.cluster.heartbeat_timeout_ms;
  o.formation_timeout_ms = config.cluster.formation_timeout_ms;
  o.fingerprint = FingerprintOf(config);
  PHX_ASSIGN_OR_RETURN(auto sched, scheduler::Scheduler::Create(o));
  PHX_ASSIGN_OR_RETURN(auto http, StartHttp(config, [&] { return sched->StatusJson(); }));
  if (http) out << FormatHttpLine(http->port()) << std::endl;
  out << FormatEndpointLine(sched->endpoint()) << std::endl;
  if (http) spdlog::info("scheduler: http on port {}", http->port());
  return sched->Run(stop);
}

Status RunServer(const JobConfig& config, const std::string& scheduler, int rank, std::ostream& out,
                 const std::atomic<bool>* stop, bool restore) {
  // The model's shape decides the dense table size; servers do not need the
  // data, only the dimensions, which the tables take from the config.
  std::unique_ptr<ps::Server> server;
  PHX_ASSIGN_OR_RETURN(auto http, StartHttp(config, [&] {
                         return server ? server->StatusJson()
                                       : std::string(R"({"role":"server","state":"starting"})");
                       }));
  ps::ServerOptions o;
  o.host = config.cluster.host;
  o.http_port = http ? http->port() : 0;
  o.scheduler_endpoint = scheduler;
  o.requested_rank = rank;
  o.synchronous = config.cluster.mode == "sync";
  o.round_timeout_ms = config.cluster.round_timeout_ms;
  o.exclude_after_missed_rounds = config.cluster.exclude_after_missed_rounds;
  // Quorum changes for the launcher (progress line, summary.json), on the
  // request-loop thread while Run() below blocks this one.
  o.on_quorum_event = [&out, &server](const ps::QuorumEvent& e) {
    QuorumLine line;
    line.server_rank = server ? server->rank() : -1;
    line.table = e.table;
    line.round = e.round;
    line.worker = e.worker;
    line.worker_rank = e.worker_rank;
    line.excluded = e.excluded;
    line.missed = e.missed;
    line.quorum = e.quorum;
    out << FormatQuorumLine(line) << std::endl;
  };
  // The loss as soon as it is known (the same line again at exit): a
  // replacement that is itself killed still has it in its log.
  auto print_restored = [&out, &server](int64_t restored_round, int64_t updates_lost) {
    RestoredLine line;
    line.rank = server ? server->rank() : -1;
    line.restored_round = restored_round;
    line.updates_lost = updates_lost;
    out << FormatRestoredLine(line) << std::endl;
  };
  o.on_updates_lost = print_restored;
  o.heartbeat_ms = config.cluster.heartbeat_ms;
  o.register_timeout_ms = config.cluster.register_timeout_ms;
  o.formation_timeout_ms = config.cluster.formation_timeout_ms;
  o.config_fingerprint = FingerprintOf(config);
  ps::TableOptions dense;
  dense.table_id = worker::kDenseTable;
  dense.dim = static_cast<uint32_t>(config.tables.dense_row_dim);
  dense.seed = config.tables.seed;
  dense.init = ps::InitKind::kUniform;
  dense.init_scale = static_cast<float>(config.tables.dense_init_scale);
  dense.optimizer = ToOptimizer(config.optimizer);
  dense.initial_capacity = 1024;
  dense.parallel_min_update = static_cast<size_t>(config.tables.parallel_min_update);
  dense.parallel_min_lookup = static_cast<size_t>(config.tables.parallel_min_lookup);
  o.tables.push_back(dense);
  ps::TableOptions emb;
  emb.table_id = worker::kEmbeddingTable;
  emb.dim = static_cast<uint32_t>(config.model.embedding_dim);
  emb.seed = config.tables.seed;
  emb.init = ps::InitKind::kUniform;
  emb.init_scale = static_cast<float>(config.tables.embedding_init_scale);
  emb.optimizer = ToOptimizer(config.embedding_optimizer);
  emb.initial_capacity = config.model.kind == "embedding-bag" ? (1 << 18) : 1024;
  emb.parallel_min_update = static_cast<size_t>(config.tables.parallel_min_update);
  emb.parallel_min_lookup = static_cast<size_t>(config.tables.parallel_min_lookup);
  o.tables.push_back(emb);
  o.aggregator.name = config.aggregator.name;
  o.aggregator.f = config.aggregator.f;
  o.aggregator.params = config.aggregator.params;
  o.honest_peeks = config.byzantine.omniscient &&
                   config.byzantine.count + static_cast<int>(config.byzantine.ranks.size()) > 0;
  o.byzantine_ranks = ByzantineRanks(config);
  o.checkpoint.dir = config.checkpoint.dir;
  o.checkpoint.every_rounds = config.checkpoint.every_rounds;
  o.checkpoint.every_seconds = config.checkpoint.every_seconds;
  o.checkpoint.keep = config.checkpoint.keep;
  o.restore = restore;
  o.num_servers = static_cast<uint32_t>(config.cluster.servers);
  o.num_workers = config.cluster.workers;  // the server refuses a rule that cannot run on them
  if (config.cluster.mode == "federated") {
    PHX_ASSIGN_OR_RETURN(o.federated, FederatedShardOptionsFor(config));
  }
  PHX_ASSIGN_OR_RETURN(server, ps::Server::Create(o));
  Status s = server->Run(stop);
  if (restore) {
    // What the snapshot missed, from /status's view of the recovery; the
    // launcher adds it up into summary.json's updates_lost.
    auto j = nlohmann::json::parse(server->StatusJson(), nullptr, false);
    if (!j.is_object()) j = nlohmann::json::object();
    print_restored(j.value("restored_round", int64_t{-1}), j.value("updates_lost", int64_t{0}));
  }
  if (!config.checkpoint.dir.empty()) {
    // This process's snapshot record; the launcher puts it in summary.json
    // and fails the job when a snapshot could not be written.
    if (auto snaps = SnapshotsFromStatus(server->StatusJson())) {
      out << FormatSnapshotsLine(*snaps) << std::endl;
    }
  }
  return s;
}

Status RunWorker(const JobConfig& config, const std::string& scheduler, int rank, std::ostream& out,
                 const std::atomic<bool>* stop) {
  (void)stop;
  auto t0 = std::chrono::steady_clock::now();
  // The live federated mode's clients sample the whole training set; the
  // other modes read only the labels here and their shard's pixels below.
  const bool federated = config.cluster.mode == "federated";
  PHX_ASSIGN_OR_RETURN(worker::TrainTest data, LoadData(config, /*pixels=*/federated));
  spdlog::info("worker: read {} train / {} test labels in {:.2f}s", data.train.size(),
               data.test.size(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  PHX_ASSIGN_OR_RETURN(auto model, worker::CreateModel(ToModel(config, data.train)));
  std::string status = R"({"role":"worker","state":"starting"})";
  std::mutex status_mu;
  PHX_ASSIGN_OR_RETURN(auto http, StartHttp(config, [&] {
                         std::lock_guard<std::mutex> lock(status_mu);
                         return status;
                       }));
  worker::ClientOptions co;
  co.host = config.cluster.host;
  co.http_port = http ? http->port() : 0;
  co.scheduler_endpoint = scheduler;
  co.requested_rank = rank;
  co.heartbeat_ms = config.cluster.heartbeat_ms;
  co.register_timeout_ms = config.cluster.register_timeout_ms;
  co.formation_timeout_ms = config.cluster.formation_timeout_ms;
  co.config_fingerprint = FingerprintOf(config);
  co.request_timeout_ms = config.cluster.request_timeout_ms;
  // Asynchronous servers apply a large push part by part while the rest is
  // still on the wire (kFlagMoreParts); a synchronous round takes it whole.
  co.split_pushes = config.cluster.mode == "async";
  co.max_part_bytes = static_cast<size_t>(config.cluster.max_part_bytes);
  co.checksum = config.cluster.checksum == "always"  ? ChecksumMode::kAlways
                : config.cluster.checksum == "never" ? ChecksumMode::kNever
                                                     : ChecksumMode::kAuto;
  PHX_ASSIGN_OR_RETURN(auto client, worker::Client::Create(co));
  {
    nlohmann::json j{{"role", "worker"},
                     {"id", client->id()},
                     {"rank", client->rank()},
                     {"epoch", client->view().epoch},
                     {"model", model->name()},
                     {"build", nlohmann::json::parse(BuildInfoJson(ps::ProcessBuildInfo()))}};
    std::lock_guard<std::mutex> lock(status_mu);
    status = j.dump();
  }
  int world = client->view().live_workers();
  int my_rank = client->rank();
  // Only the evaluator, rank 0 (in the federated mode too), keeps the test
  // split; another rank loads it if it must stand in for a lost rank 0.
  if (federated) {
    if (my_rank != 0) worker::ReleaseExamples(&data.test);
    return RunFederatedClients(config, data, *model, client.get(), my_rank, out);
  }
  PHX_ASSIGN_OR_RETURN(std::vector<size_t> shard, WorkerShard(config, data.train, my_rank, world));
  // From here on the worker holds only its own examples.
  t0 = std::chrono::steady_clock::now();
  PHX_RETURN_IF_ERROR(KeepWorkerData(config, my_rank == 0, &data, &shard));
  spdlog::info("worker: keeps {} training examples (its shard) and {} test examples ({:.2f}s)",
               data.train.size(), data.test.size(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  worker::TrainerOptions to = TrainerOptionsFor(config);
  to.evaluate = my_rank == 0;
  // Trainer's own stand-in evaluation needs the test split, which this rank
  // dropped; EvaluateIfEvaluatorLost below loads it when it is needed.
  to.evaluate_if_evaluator_lost = false;
  const auto& bz = config.byzantine;
  const std::vector<int> liars = ByzantineRanks(config);
  bool lies = std::find(liars.begin(), liars.end(), my_rank) != liars.end();
  if (lies) {
    to.byzantine.attack = bz.attack;
    to.byzantine.from_round = bz.from_round;
    to.byzantine.scale = bz.scale;
    to.byzantine.sigma = bz.sigma;
    to.byzantine.tau = bz.tau;
    to.byzantine.estimate_batches = bz.estimate_batches;
    to.byzantine.total_workers = config.cluster.workers;
    to.byzantine.byzantine_workers =
        bz.ranks.empty() ? bz.count : static_cast<int>(bz.ranks.size());
    to.byzantine.seed = config.train.seed * 1000 + static_cast<uint64_t>(my_rank);
    to.byzantine.omniscient = bz.omniscient;
    to.honest_timeout_ms = config.cluster.round_timeout_ms;
    to.byzantine.mimic_target = bz.mimic_target;
    to.byzantine.line_search_evals = bz.line_search_evals;
    to.byzantine.rule = config.aggregator.name;
    to.byzantine.rule_params = config.aggregator.params;
    PHX_RETURN_IF_ERROR(worker::ValidateByzantine(to.byzantine));
    if (bz.attack == "label-flip") {
      // This worker trains on flipped labels: y -> (classes - 1 - y).
      for (auto& y : data.train.labels) y = static_cast<int32_t>(data.train.num_classes) - 1 - y;
    }
    spdlog::warn("worker rank {} is Byzantine: {} from round {}", my_rank, bz.attack,
                 bz.from_round);
  }
  worker::Trainer trainer(to, client.get(), model.get(), &data.train, std::move(shard), &data.test,
                          &out);
  double acc = -1;
  Status s = trainer.Run(&acc);
  if (s.ok() && !to.evaluate) s = EvaluateIfEvaluatorLost(config, client.get(), *model, &acc);
  if (s.ok() && (to.evaluate || acc >= 0)) {
    out << FormatResultLine({my_rank, acc}) << std::endl;
  }
  client->Leave();
  return s;
}

}  // namespace phalanx::launch
