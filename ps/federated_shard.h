#pragma once
// FederatedShard: live federated mode on one server shard (cluster.mode =
// "federated"; docs/federated.md). Table 0 holds the dense model, and
// this shard runs its own aggregators::FederatedServer over its slice of it
// (the dense rows whose slots it owns). Clients hosted by the workers
// (worker/federated_client.h) pull the slice and its version, train, and push
// a delta Δ = θ⁺ − θ_base tagged with the client id and the version it started
// from (Header::client and Header::round; common/wire_format.md); FedAsync clients push θ⁺ itself
// (the spec's "sends x_new"), which the shard turns into the delta against its current slice, so no
// old model versions are kept.
//
// Why per-shard servers are exact: with the plain mean every rule is a
// coordinate-wise weighted sum (Σ w_i Δ_i, FedAsync's mix), and the weights
// depend only on the client, its staleness and the count of arrivals, never
// on other coordinates; so each shard's slice evolves exactly as that slice
// of one unsharded server given the same arrival order. Two shards may order
// two concurrent pushes differently (as in async mode); that shifts which
// buffer or staleness an update gets by one, nothing else. A robust inner
// rule that is not coordinate-wise (flag, krum, ...) would see only a slice of
// each delta, so the launcher refuses it unless there is one server; the
// coordinate-wise ones (median, trimmed-mean, ...) are exact per shard.
//
// One caveat to exactness: Fraboni weights (async and fedfix with weights =
// fraboni) use τ_i, which each shard estimates from the round trips it
// observes; the shards' estimates differ by network jitter, and FedFix's
// ⌈τ_i/Δt⌉ can then differ between shards for a client whose τ_i sits at a
// multiple of Δt. Identical weights, FedBuff and FedAsync have no such input.
//
// FedFix windows run on the wall clock in units of time_unit_s and are aligned
// to multiples of Δt·time_unit_s since the Unix epoch, so every shard closes
// the same windows at the same instants; the version it reports is then the
// window index (it starts at a large number, not 0). The client's τ_i for
// Fraboni weights is estimated from its observed round trips (pull tagged
// with the client id to the push), in the same time unit.
//
// Not yet: snapshots do not hold the federated state (FederatedServer can
// save it; ps/snapshot.h does not carry it), and synchronous FedAvg (client
// sampling per round) is not offered live.
//
// Threading: owned by the server's request-loop thread, like its tables.

#include <chrono>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "aggregators/federated.h"
#include "common/message.h"
#include "common/status.h"
#include "ps/table.h"

namespace phalanx::ps {

struct FederatedShardOptions {
  bool enabled = false;
  aggregators::FederatedOptions server;  // resolved (ResolveFederatedOptions)
  int64_t clients = 0;                   // registered clients M
  double time_unit_s = 0.2;              // wall seconds per unit of virtual time (τ, Δt)
  uint64_t seed = 1;
};

class FederatedShard {
 public:
  // `table` (table 0, dim floats per row) supplies the initial values of the
  // slice and must outlive the shard.
  static Result<std::unique_ptr<FederatedShard>> Create(const FederatedShardOptions& options,
                                                        EmbeddingTable* table);
  FederatedShard(const FederatedShard&) = delete;
  FederatedShard& operator=(const FederatedShard&) = delete;

  // Answers a Pull or Push of table 0 (keys already checked to be this
  // shard's); returns the reply: PullResponse / PushAck, or an Error.
  // The first request fixes the slice: its keys, in ascending order.
  // PushAck round = the version from which the update is part of the model
  // (the current one when it was applied, the next when it is buffered).
  Message Handle(const Message& request, int32_t self_id);
  // FedFix: closes the windows that ended. Cheap; call from the request loop.
  void Tick();
  // Reported version (FedFix: the window index); -1 before the first request.
  int64_t version() const;

 private:
  explicit FederatedShard(const FederatedShardOptions& options, EmbeddingTable* table);
  Status Init(std::span<const uint64_t> keys);
  Result<Message> Pull(const Message& m, int32_t self_id);
  Result<Message> Push(const Message& m, int32_t self_id);
  double VirtualNow() const;

  FederatedShardOptions options_;
  EmbeddingTable* table_;
  std::unique_ptr<aggregators::FederatedServer> server_;
  std::unordered_map<uint64_t, uint32_t> index_;  // key -> row of the slice
  int64_t offset_ = 0;                            // FedFix: window index at creation
  std::vector<std::chrono::steady_clock::time_point> pulled_at_;  // per client
  std::vector<float> delta_;                                      // scratch
};

}  // namespace phalanx::ps
