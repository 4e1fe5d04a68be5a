#pragma once
// SyncRound: one table of a shard and its synchronous (BSP) round. It accepts
// each live worker's push for round t, closes the round in two phases
// (StartClose builds this shard's slice [G | E] and its partial Gram for the
// round coordinator, FinishClose applies the coordinator's plan to the slice
// and steps the optimizer), advances the version and answers the pulls that
// waited for it. It owns no socket: every reply it makes goes into an Outbox
// that the caller sends, so rounds can be tested without a cluster.
//
// Asynchronous servers use only the table, the version (Advance) and Pull.
//
// Threading: owned by the server's request-loop thread; not thread-safe
// (table updates fan out over TBB inside EmbeddingTable).

#include <Eigen/Dense>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "aggregators/aggregator.h"
#include "common/control.h"
#include "common/message.h"
#include "ps/internal/coordination.h"
#include "ps/internal/replies.h"
#include "ps/internal/server_metrics.h"
#include "ps/table.h"

namespace phalanx::ps::internal {

struct WorkerPush {
  Buffer keys;
  Buffer values;
  bool excluded = false;  // arrived but not usable (non-finite)
};

// This shard's part of a closing round: keys, the gradients [G] with one
// column per worker (ascending id) and the rule's extra columns [E].
struct Slice {
  std::vector<uint64_t> keys;
  std::vector<int32_t> workers;
  Eigen::MatrixXf grads;   // keys.size()*dim x workers.size()
  Eigen::MatrixXd extras;  // keys.size()*dim x k
};

// True when no value is NaN or Inf.
bool AllFinite(std::span<const float> v);

class SyncRound {
 public:
  // `rule` and `metrics` must outlive this.
  // A worker that missed `exclude_after` consecutive rounds leaves the round
  // quorum (ps/internal/quorum.h; 0 = never).
  SyncRound(uint32_t table_id, std::unique_ptr<EmbeddingTable> table, aggregators::Aggregator* rule,
            ServerMetrics* metrics, int round_timeout_ms, int exclude_after = 0);

  uint32_t table_id() const { return table_id_; }
  EmbeddingTable& table() { return *table_; }
  const EmbeddingTable& table() const { return *table_; }
  int64_t version() const { return version_; }
  bool closing() const { return closing_; }
  // This round's pushes by worker id.
  const std::map<int32_t, WorkerPush>& pushes() const { return pushes_; }
  const GramPartial& partial() const { return partial_; }
  // The quorum state of the last plan applied, and what it means for `workers`.
  const QuorumState& quorum() const { return quorum_; }
  int exclude_after() const { return exclude_after_; }
  int QuorumSize(const std::vector<NodeInfo>& workers) const {
    return internal::QuorumSize(quorum_, workers, exclude_after_);
  }

  // Replaces the table and version with a restored snapshot's.
  void Restore(std::unique_ptr<EmbeddingTable> table, int64_t version);
  // Async mode: one more update applied; returns the new version.
  int64_t Advance();

  // A synchronous push of `req.header.round` (dim already checked). Refusals
  // and the acknowledgement go to `out`. Returns true when the push joined
  // the current round (so it may now be complete).
  bool Push(const std::string& peer, const Message& req, bool finite, int32_t self, Outbox* out);
  // A pull for version `req.header.round`: held while that version is ahead
  // (synchronous), answered into `out` otherwise.
  void Pull(const std::string& peer, Message req, bool synchronous, int32_t self, Outbox* out);

  // Whether the open round should start closing: every live worker of the
  // quorum pushed, or round_timeout_ms passed since the first push (the
  // missing quorum members are counted).
  bool ReadyToClose(const std::vector<NodeInfo>& workers, Clock::time_point now);
  // Phase 2 overdue: the plan did not come within round_timeout_ms.
  bool PlanOverdue(Clock::time_point now) const;

  // Phase 1: builds the slice and this shard's partial (returned) for the
  // coordinator.
  const GramPartial& StartClose();
  // Phase 2: applies `plan` (for `round`; a stale or duplicate plan is
  // ignored and false returned), advances the version, opens the next round
  // with the pushes that came early and answers the waiting pulls. The plan's
  // quorum state becomes this table's.
  bool FinishClose(int64_t round, const RoundPlan& plan, int32_t self, Outbox* out);

  // Closed rounds that updated the table / that closed without an update
  // (the rule refused its inputs, e.g. too few live workers for f), and the
  // last refusal. A job whose rounds never updated its model must not look
  // like a normal run (the server exits non-zero).
  int64_t rounds_updated() const { return rounds_updated_; }
  int64_t rounds_failed() const { return rounds_failed_; }
  const std::string& last_failure() const { return last_failure_; }
  // A restored table meets the cluster at `round`: drops this round's pushes,
  // moves the version there and answers the pulls that waited for it.
  void JumpTo(int64_t round, int32_t self, Outbox* out);

 private:
  Message AnswerPull(const Message& req, int32_t self);
  void AnswerReadyPulls(int32_t self, Outbox* out);
  void BuildSlice();
  Status BuildExtrasAndGram(int n);
  Status ApplyPlan(const RoundPlan& plan);
  void SetVersion(int64_t v);

  struct PendingPull {
    std::string peer;
    Message msg;
  };

  const uint32_t table_id_;
  std::unique_ptr<EmbeddingTable> table_;
  aggregators::Aggregator* rule_;
  ServerMetrics* metrics_;
  const int round_timeout_ms_;
  const int exclude_after_;
  QuorumState quorum_;  // adopted from each plan; sent with each partial
  int64_t version_ = 0;
  std::map<int32_t, WorkerPush> pushes_;  // this round's pushes by worker id
  std::map<int32_t, WorkerPush> early_;   // next round's pushes that came while closing
  Clock::time_point round_started_;
  std::vector<PendingPull> pending_;  // pulls waiting for a newer version
  bool closing_ = false;              // phase 1 sent, waiting for the plan
  Clock::time_point close_started_;
  Slice slice_;
  GramPartial partial_;
  // Previous aggregate per key, for rules whose extra column is their last
  // output (centered clipping).
  std::unordered_map<uint64_t, Eigen::VectorXd> previous_;
  int64_t rounds_updated_ = 0;
  int64_t rounds_failed_ = 0;
  std::string last_failure_;
  bool failing_ = false;  // the last round closed without update (log once per streak)
};

}  // namespace phalanx::ps::internal
