#pragma once
// HonestPeeks: the omniscient attack's view of the honest gradients
// (worker/honest_peek.h). A Byzantine worker's peek for round t of a table is
// queued until every live honest worker has pushed round t to this shard,
// then answered with their pushes for the peek's keys (one block of rows per
// honest worker, ascending id, zeros where a worker did not touch a key).
// Refused unless the experiment enabled peeks and the sender is one of the
// configured Byzantine ranks. The queue is looked at only when something that
// can make a peek ready happens (a push joined a round, a round closed, the
// view changed, a peek arrived), not on every turn of the request loop.
//
// Threading: owned by the server's request-loop thread; not thread-safe.

#include <string>
#include <vector>

#include "common/control.h"
#include "common/message.h"
#include "ps/internal/replies.h"
#include "ps/internal/sync_round.h"

namespace phalanx::ps::internal {

class HonestPeeks {
 public:
  // enabled: byzantine.omniscient in a synchronous job.
  HonestPeeks(bool enabled, std::vector<int> byzantine_ranks);

  bool empty() const { return queue_.empty(); }
  // Queues a peek, or returns why it is refused.
  Status Queue(const std::string& peer, Message msg, const ClusterView& view);
  // Answers the peeks that are ready and refuses those whose round already
  // closed; the rest stay queued.
  void Answer(const ClusterView& view, const std::vector<SyncRound>& rounds, int32_t self,
              Outbox* out);

 private:
  struct Peek {
    std::string peer;
    Message msg;
  };
  bool IsByzantine(const ClusterView& view, int32_t id) const;
  // The honest workers whose pushes answer `peek`, or false when one of them
  // has not pushed yet.
  bool HonestPushers(const ClusterView& view, const SyncRound& round,
                     std::vector<int32_t>* honest) const;

  const bool enabled_;
  const std::vector<int> byzantine_ranks_;
  std::vector<Peek> queue_;
};

}  // namespace phalanx::ps::internal
