#include "launch/cli/federated_live.h"

#include <cmath>

#include "common/message.h"
#include "common/node_lines.h"

namespace phalanx::launch {
namespace {

// "F-80" -> 80, "none" -> -1; false for anything else.
bool ParseSpeed(const std::string& s, double* percent) {
  if (s == "none") {
    *percent = -1;
    return true;
  }
  if (s.size() < 3 || s.compare(0, 2, "F-") != 0) return false;
  try {
    size_t used = 0;
    *percent = std::stod(s.substr(2), &used);
    return used == s.size() - 2 && *percent >= 0 && *percent < 100;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

Result<aggregators::FederatedOptions> FederatedServerOptions(const JobConfig& c) {
  const FederatedConfig& f = c.federated;
  aggregators::FederatedOptions o;
  o.algorithm = f.algorithm;
  o.server_lr = f.server_lr;
  o.weights = f.weights;
  o.buffer_size = f.buffer_size;
  o.window = f.window;
  o.mix_alpha = f.mix_alpha;
  o.staleness.fn = f.staleness;
  o.staleness.a = f.staleness_a;
  o.staleness.b = f.staleness_b;
  o.max_staleness = f.max_staleness;
  o.redispatch = f.redispatch;
  o.robust.name = f.rule;
  o.robust.f = f.f;
  o.robust.seed = c.train.seed;
  Status s = aggregators::ResolveFederatedOptions(&o);
  if (!s.ok()) return s.WithContext("[federated]");
  if (o.algorithm == "fedavg") {
    return InvalidArgument(
        "[federated]: algorithm fedavg (synchronous rounds with client sampling) is not available "
        "in live mode; use phalanx simulate, or fedfix with a window >= the slowest client");
  }
  if (o.robust.name != "mean") {
    auto rule = aggregators::CreateAggregator(o.robust);
    if (!rule.ok()) return rule.status().WithContext("[federated] rule");
    if (!(*rule)->coordinate_wise() && c.cluster.servers > 1) {
      return InvalidArgument(
          "[federated]: rule '" + o.robust.name +
          "' is not coordinate-wise, and each server applies it to its own slice of the "
          "deltas only; use cluster.servers = 1 or a coordinate-wise rule (median, "
          "trimmed-mean, ...)");
    }
  }
  return o;
}

Status ValidateFederatedJob(const JobConfig& c) {
  if (c.cluster.mode != "federated") return Status::Ok();
  PHX_RETURN_IF_ERROR(FederatedServerOptions(c).status());
  const FederatedConfig& f = c.federated;
  if (f.clients > kMaxFederatedClients) {
    return InvalidArgument("federated.clients must be <= " + std::to_string(kMaxFederatedClients));
  }
  if (c.cluster.workers > f.clients) {
    return InvalidArgument("cluster.workers (" + std::to_string(c.cluster.workers) +
                           ") exceeds federated.clients (" + std::to_string(f.clients) +
                           "): a worker would host no client");
  }
  if (c.model.kind == "embedding-bag") {
    return InvalidArgument("federated mode trains dense models (softmax, mlp), not embedding-bag");
  }
  if (f.partition != "dirichlet-equal" && f.partition != "dirichlet" && f.partition != "iid") {
    return InvalidArgument("federated.partition must be dirichlet-equal, dirichlet or iid, got '" +
                           f.partition + "'");
  }
  double x = 0;
  if (!ParseSpeed(f.speed, &x)) {
    return InvalidArgument("federated.speed must be F-<X> with X in [0, 100) or none, got '" +
                           f.speed + "'");
  }
  if (c.federated.algorithm == "fedbuff" && f.redispatch == "at-trigger" &&
      f.buffer_size > f.clients) {
    return InvalidArgument(
        "federated.buffer_size exceeds the clients: with redispatch = "
        "at-trigger the buffer could never fill");
  }
  return Status::Ok();
}

Result<ps::FederatedShardOptions> FederatedShardOptionsFor(const JobConfig& c) {
  PHX_RETURN_IF_ERROR(ValidateFederatedJob(c));
  ps::FederatedShardOptions o;
  o.enabled = true;
  PHX_ASSIGN_OR_RETURN(o.server, FederatedServerOptions(c));
  o.clients = c.federated.clients;
  o.time_unit_s = c.federated.time_unit_ms / 1000.0;
  o.seed = c.train.seed;
  return o;
}

worker::PartitionOptions FederatedPartitionFor(const JobConfig& c) {
  worker::PartitionOptions p;
  p.method = c.federated.partition;
  p.alpha = c.federated.alpha;
  p.num_clients = c.federated.clients;
  p.samples_per_client = c.federated.samples_per_client;
  p.seed = c.federated.partition_seed;
  return p;
}

Result<worker::FederatedClientOptions> FederatedClientOptionsFor(const JobConfig& c, int rank) {
  PHX_RETURN_IF_ERROR(ValidateFederatedJob(c));
  PHX_ASSIGN_OR_RETURN(aggregators::FederatedOptions server, FederatedServerOptions(c));
  const FederatedConfig& f = c.federated;
  worker::FederatedClientOptions o;
  o.clients = f.clients;
  o.workers = c.cluster.workers;
  o.rank = rank;
  o.local_steps = f.local_steps;
  o.batch_size = f.batch_size;
  o.learning_rate = f.learning_rate;
  ParseSpeed(f.speed, &o.fastest_percent);
  o.time_unit_s = f.time_unit_ms / 1000.0;
  o.duration_s = f.duration_s;
  o.eval_every_s = f.eval_every_s;
  o.evaluate = rank == 0;
  o.send_model = server.algorithm == "fedasync";
  o.wait_for_trigger = server.redispatch == "at-trigger";
  o.dense_row_dim = static_cast<uint32_t>(c.tables.dense_row_dim);
  o.seed = c.train.seed;
  return o;
}

Status RunFederatedClients(const JobConfig& config, const worker::TrainTest& data,
                           const worker::Model& model, worker::Client* client, int rank,
                           std::ostream& out) {
  PHX_ASSIGN_OR_RETURN(worker::FederatedClientOptions o, FederatedClientOptionsFor(config, rank));
  PHX_ASSIGN_OR_RETURN(worker::Partition partition,
                       worker::Partition::Create(data.train, FederatedPartitionFor(config)));
  worker::FederatedWorker fw(o, client, &model, &data.train, &partition, &data.test, &out);
  double acc = -1;
  Status s = fw.Run(&acc);
  if (s.ok() && o.evaluate) {
    out << FormatResultLine({rank, acc}) << std::endl;
  }
  client->Leave();
  return s;
}

}  // namespace phalanx::launch
