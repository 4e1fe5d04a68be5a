#pragma once
// Live federated mode (cluster.mode = "federated"): turns the job config's
// [federated] section into the servers' and the workers' options, and checks
// it as a whole before anything starts (ps/federated_shard.h,
// worker/federated_client.h). Pure functions; any thread.

#include "aggregators/federated.h"
#include "launch/config/config.h"
#include "common/status.h"
#include "ps/federated_shard.h"
#include "worker/federated_client.h"
#include "worker/partition.h"

namespace phalanx::launch {

// The server rule of [federated], resolved and checked against the cluster:
// InvalidArgument naming the key for an unknown algorithm or weights, K_b < 1,
// Δt <= 0, fedavg (not live), a robust rule that is not coordinate-wise with
// more than one server, more workers than clients, a non-dense model, or a
// speed profile other than F-<X> / none.
Result<aggregators::FederatedOptions> FederatedServerOptions(const JobConfig& config);
// Checks a federated job; Ok for other modes.
Status ValidateFederatedJob(const JobConfig& config);

Result<ps::FederatedShardOptions> FederatedShardOptionsFor(const JobConfig& config);
Result<worker::FederatedClientOptions> FederatedClientOptionsFor(const JobConfig& config, int rank);
worker::PartitionOptions FederatedPartitionFor(const JobConfig& config);

// The worker role in federated mode: hosts its clients until
// federated.duration_s has passed, prints PHX_RESULT (worker 0), leaves.
Status RunFederatedClients(const JobConfig& config, const worker::TrainTest& data,
                           const worker::Model& model, worker::Client* client, int rank,
                           std::ostream& out);

}  // namespace phalanx::launch
