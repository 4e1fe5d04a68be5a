#pragma once
// Server: one parameter-server shard process. It owns the embedding tables for
// the key slots the scheduler assigned it and answers workers' pulls and
// pushes over a ZeroMQ ROUTER socket.
//
// Synchronous mode (BSP): pushes for round t are collected per table from every
// live worker, combined by the configured aggregator, applied by the table's
// optimizer, and then pulls waiting for version t+1 are answered. A round also
// closes when round_timeout_ms passes; the workers missing from it are
// recorded. Asynchronous mode: each push is applied on arrival and its
// staleness (server version minus the version the worker pulled) recorded.
//
// Threading: Run() owns the socket, the tables and all round state on the
// calling thread (table updates fan out over TBB). StatusJson() is safe from
// any thread.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "aggregators/aggregator.h"
#include "common/build_info.h"
#include "common/control.h"
#include "common/message.h"
#include "common/status.h"
#include "ps/federated_shard.h"
#include "ps/snapshot.h"
#include "ps/table.h"

namespace phalanx::ps {

// A worker left or rejoined the round quorum of a synchronous table: decided
// by the server that coordinated the round, so each change is reported once
// in the cluster (by that server).
struct QuorumEvent {
  uint32_t table = 0;
  int64_t round = 0;    // the round whose close decided it
  int32_t worker = -1;  // node id
  int32_t worker_rank = -1;
  bool excluded = false;  // true: left the quorum; false: rejoined
  int32_t missed = 0;     // consecutive rounds it had missed
  int quorum = 0;         // live workers in the quorum afterwards
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;       // 0 = any free port
  int http_port = 0;  // advertised to the scheduler (the caller serves it)
  std::string scheduler_endpoint;
  int requested_rank = -1;
  bool synchronous = true;
  int round_timeout_ms = 30000;
  // Sync: a worker that missed this many consecutive rounds (closed by
  // timeout without its push) leaves the round quorum until it pushes again;
  // 0 = never (every round waits for every live worker).
  int exclude_after_missed_rounds = 3;
  // Called on the request-loop thread for each quorum change this server
  // decided (after it is logged and counted); may be empty.
  std::function<void(const QuorumEvent&)> on_quorum_event;
  // Called on the request-loop thread once a restored server knows how many
  // updates its snapshot missed (restored round, updates lost), so that the
  // figure is out even if this process is killed before it exits.
  std::function<void(int64_t, int64_t)> on_updates_lost;
  int heartbeat_ms = 300;
  int register_timeout_ms = 30000;
  int formation_timeout_ms = 300000;  // for every node to register
  // The job's settings, sent when registering (the scheduler refuses another job's).
  ConfigFingerprint config_fingerprint;
  std::vector<TableOptions> tables;  // table_id must equal the index
  aggregators::AggregatorOptions aggregator;
  // Omniscient-attack experiments: answer honest-gradient peeks
  // (kHonestPeek messages) from the workers of these ranks, and only them.
  bool honest_peeks = false;
  std::vector<int> byzantine_ranks;
  WireLimits limits;
  // Snapshots of this shard (ps/snapshot.h) and recovery from them. With
  // restore, startup loads the newest valid snapshot of this rank or fails;
  // without it, a server joining an already formed cluster (a replacement)
  // loads one when checkpoint.dir holds one for its rank.
  CheckpointOptions checkpoint;
  // Live federated mode: table 0 is the dense model under a FederatedServer
  // (ps/federated_shard.h); the server runs asynchronously otherwise.
  FederatedShardOptions federated;
  bool restore = false;
  uint32_t num_servers = 0;  // cluster shape recorded in snapshots (0 = from the view)
  // Workers the job is configured with (0 = unknown): a synchronous server
  // refuses at start-up a rule that cannot combine that many inputs.
  int num_workers = 0;
};

class Server {
 public:
  // Binds the socket and registers with the scheduler (Unavailable /
  // DeadlineExceeded when it cannot).
  static Result<std::unique_ptr<Server>> Create(const ServerOptions& options);
  virtual ~Server() = default;
  virtual int port() const = 0;
  virtual int rank() const = 0;
  // Serves until the scheduler says shut down or *stop becomes true.
  virtual Status Run(const std::atomic<bool>* stop) = 0;
  virtual std::string StatusJson() const = 0;
};

// This process's BuildInfo (common/build_info.h) with the variant of each hot
// kernel a server runs: "gram" (aggregators::GramKernelName) and
// "optimizer" (OptimizerKernelName, the table's row updates). ps/ is the
// lowest library that sees every such kernel, hence here. Made once.
const BuildInfo& ProcessBuildInfo();

}  // namespace phalanx::ps
