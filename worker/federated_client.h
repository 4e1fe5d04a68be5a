#pragma once
// FederatedWorker: one worker process hosting a share of a live federated
// client population (cluster.mode = "federated"; docs/federated.md;
// the servers' side is ps/federated_shard.h). Worker rank r of W hosts
// clients r, r+W, r+2W, ... All of them are in flight at once on this one
// thread: a client pulls the dense model and its version (the pull tagged
// with its id, so the servers time its round trip), trains `local_steps` SGD
// steps of batch `batch_size` on its Dirichlet shard (worker/partition.h, the
// same split and the same local SGD as `phalanx simulate`), and pushes its
// delta tagged with its id and the version it started from (Header::client
// and Header::round; common/wire_format.md, "Federated mode")
// when its emulated duration τ_i·time_unit_s has passed since it started (F-X
// profile; the compute time counts within it). With redispatch "at-trigger"
// (FedFix, FedBuff-c) a client that pushed waits until the servers' version
// includes its update before it starts again; otherwise it restarts at once.
//
// Worker 0 also evaluates test accuracy every eval_every_s and prints
// PHX_PROGRESS lines (common/node_lines.h): round (server version minus the first one it
// saw), version, wall seconds, mean local training loss, test_accuracy,
// updates pushed. The launcher turns them into metrics.csv and its plot.
//
// Threading: Run() runs on the caller's thread, which must own the Client.

#include <cstdint>
#include <ostream>
#include <vector>

#include "common/status.h"
#include "worker/client.h"
#include "worker/dataset.h"
#include "worker/model.h"
#include "worker/partition.h"

namespace phalanx::worker {

struct FederatedClientOptions {
  int64_t clients = 20;  // registered clients M (all workers together)
  int workers = 1;       // W: this worker hosts ids rank, rank+W, ...
  int rank = 0;
  int local_steps = 10;
  int batch_size = 64;
  double learning_rate = 0.02;
  double fastest_percent = -1;  // F-X speed profile; < 0 = no emulated duration
  double time_unit_s = 0.2;     // wall seconds of τ = 1
  double duration_s = 20;       // then the worker stops
  double eval_every_s = 1.0;
  bool evaluate = false;          // worker 0
  bool send_model = false;        // fedasync: push θ⁺ instead of Δ
  bool wait_for_trigger = false;  // redispatch = at-trigger
  uint32_t dense_row_dim = 256;
  uint64_t seed = 1;
};

class FederatedWorker {
 public:
  // `partition` splits `train` over all M clients. Everything must outlive Run.
  FederatedWorker(const FederatedClientOptions& options, Client* client, const Model* model,
                  const Dataset* train, const Partition* partition, const Dataset* test,
                  std::ostream* progress);
  // Runs for duration_s. *final_accuracy gets worker 0's last evaluation.
  // Fails on a lost cluster or a server error other than a refused update.
  Status Run(double* final_accuracy = nullptr);

 private:
  struct Hosted;
  Status Start(Hosted& h);
  Result<int64_t> PullModel(int64_t client, float* out);
  Result<double> Evaluate(int64_t* version);

  FederatedClientOptions options_;
  Client* client_;
  const Model* model_;
  const Dataset* train_;
  const Partition* partition_;
  const Dataset* test_;
  std::ostream* progress_;
  std::vector<uint64_t> keys_;
  std::vector<float> theta_, grad_, eval_;
  double loss_sum_ = 0;
  int64_t loss_count_ = 0;
};

}  // namespace phalanx::worker
