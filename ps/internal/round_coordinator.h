#pragma once
// RoundCoordinator: this server's part in the two-phase round protocol
// (ps/internal/coordination.h). As a shard it sends each closing round's
// partial Gram matrix to the coordinator (the lowest-ranked live server) and
// drains the plans that come back on its DEALER socket; as the coordinator it
// collects the partials of every live shard, combines them with the rule and
// hands back one plan per shard: to other shards as messages for the
// server's ROUTER socket, to this shard as a LocalPlan.
//
// Threading: owned by the server's request-loop thread (it owns the DEALER
// socket to the coordinator); not thread-safe.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "aggregators/aggregator.h"
#include "common/control.h"
#include "common/transport.h"
#include "ps/internal/coordination.h"
#include "ps/internal/replies.h"
#include "ps/internal/server_metrics.h"

namespace phalanx::ps::internal {

// A quorum change decided while combining (table, round) (ps/internal/quorum.h).
struct RoundQuorumChange {
  uint32_t table = 0;
  int64_t round = 0;
  QuorumChange change;
  int quorum = 0;  // quorum size after the change
};

// A plan for one of this shard's own tables.
struct LocalPlan {
  uint32_t table = 0;
  int64_t round = 0;
  RoundPlan plan;
};

class RoundCoordinator {
 public:
  // `rule`, `metrics` and `view` (the server's current view) must outlive this.
  // `exclude_after`: consecutive missed rounds that take a worker out of the
  // round quorum (0 = never; ps/internal/quorum.h).
  RoundCoordinator(aggregators::Aggregator* rule, ServerMetrics* metrics, const ClusterView* view,
                   WireLimits limits, int32_t rank, int32_t self, int exclude_after = 0);

  // The lowest-ranked live server (this one when none is alive).
  int CoordinatorRank() const;
  bool IsCoordinator() const { return CoordinatorRank() == rank_; }
  // The DEALER socket to the coordinator, for polling (null until needed).
  Socket* socket() const { return socket_.get(); }

  // Shard, phase 1: hands this shard's partial of (table, round) to the
  // coordinator (itself, or over the DEALER socket).
  void SendPartial(uint32_t table, int64_t round, const GramPartial& partial, Outbox* out,
                   std::vector<LocalPlan>* mine);
  // Coordinator: a shard's partial arrived on the ROUTER socket from `peer`.
  // A refusal (not a live server, unknown table, bad body) is returned.
  Status OnPartial(const std::string& peer, const Message& msg, size_t num_tables, Outbox* out,
                   std::vector<LocalPlan>* mine);
  // Shard: the plans that arrived from the coordinator.
  void Drain(size_t num_tables, std::vector<LocalPlan>* mine);
  // The view changed: a dead shard no longer holds up the rounds it was in.
  void Recombine(Outbox* out, std::vector<LocalPlan>* mine);
  // The plan of (table, round) from `partials` (the lowest rank's first):
  // the rule's plan and the next quorum state, started from the first
  // partial's. Used for every combined round and for a shard's local
  // fallback; quorum changes are kept for TakeQuorumChanges.
  RoundPlan Plan(uint32_t table, int64_t round, std::vector<GramPartial> partials);
  // The quorum changes decided since the last call, in order.
  std::vector<RoundQuorumChange> TakeQuorumChanges() { return std::move(changes_); }

 private:
  struct Collect {
    std::map<int, GramPartial> partials;  // by server rank
    std::map<int, std::string> peers;     // routing ids ("" = this server)
  };

  void AddPartial(uint32_t table, int64_t round, int rank, const std::string& peer,
                  GramPartial partial, Outbox* out, std::vector<LocalPlan>* mine);
  void TryCombine(uint32_t table, int64_t round, Outbox* out, std::vector<LocalPlan>* mine);
  Status EnsureSocket();

  aggregators::Aggregator* rule_;
  ServerMetrics* metrics_;
  const ClusterView* view_;
  const WireLimits limits_;
  const int32_t rank_;
  const int32_t self_;
  const int exclude_after_;
  std::vector<RoundQuorumChange> changes_;                      // since the last TakeQuorumChanges
  std::map<std::pair<uint32_t, int64_t>, Collect> collecting_;  // by (table, round)
  std::unique_ptr<Socket> socket_;                              // to the coordinator
  std::string endpoint_;
};

}  // namespace phalanx::ps::internal
