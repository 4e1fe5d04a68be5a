#pragma once
// Recovery: a shard's snapshots and its restart from them. At start-up it
// loads the newest valid snapshot of this rank (with --restore, or when this
// server replaces one in a formed cluster), then aligns each restored table
// with the cluster's round: the first request from ahead moves the table's
// version there, and the rounds in between are the updates lost. It also
// keeps the snapshot schedule (every checkpoint.every_rounds rounds of table
// 0 or every_seconds) and runs the writer thread.
//
// A table blocks snapshots only while it has seen traffic since the restore
// but not yet closed a round (its version may have jumped without an update
// applied). A table nobody uses (the embedding table of a softmax or MLP job)
// never blocks, so after any number of restores at most one snapshot
// interval of updates is lost.
//
// Threading: owned by the server's request-loop thread; the writer thread
// only writes the captured image and touches the metrics.

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "common/control.h"
#include "common/message.h"
#include "ps/internal/replies.h"
#include "ps/internal/server_metrics.h"
#include "ps/internal/sync_round.h"
#include "ps/snapshot.h"

namespace phalanx::ps::internal {

class Recovery {
 public:
  Recovery(CheckpointOptions checkpoint, bool restore);
  ~Recovery();  // waits for a write in flight
  Recovery(const Recovery&) = delete;
  Recovery& operator=(const Recovery&) = delete;

  // Before registering: --restore with nothing to restore fails early.
  static Status CheckRestorable(const CheckpointOptions& checkpoint, bool restore,
                                int requested_rank);

  // After the first view: loads the newest valid snapshot of `rank` into
  // `rounds` when asked to or when this server is a replacement (view epoch
  // > 1); a fresh start moves this rank's old snapshots aside.
  Status Restore(const ClusterView& view, int32_t rank, uint32_t num_servers,
                 const std::vector<TableOptions>& tables, std::vector<SyncRound>* rounds);

  // Whether table `t` was restored and has not closed a round since.
  bool align_pending(uint32_t t) const { return t < tables_.size() && tables_[t].align_pending; }
  // A request `h` for a restored table that has not closed a round yet: a
  // push for round r (the worker pulled version r) or a pull for version r
  // by a worker that has not pushed here at this version (so it is not
  // merely waiting for our next round) moves the version to r.
  void Align(const Header& h, int32_t rank, SyncRound* round, int32_t self, Outbox* out);
  // Table `t` closed a round: it is at the cluster's round.
  void OnRoundClosed(uint32_t t);

  // Copies the tables when a snapshot is due (the request loop pauses for a
  // memory copy) and writes the file on the writer thread. At most one
  // write in flight.
  void MaybeSnapshot(const std::vector<SyncRound>& rounds, int32_t rank, uint32_t num_slots,
                     uint32_t num_servers);
  // Waits for a write in flight.
  void Join();

  int64_t restored_round() const { return restored_round_; }
  int64_t updates_lost() const { return updates_lost_; }
  // This process's snapshot record, for /status (any thread): files written,
  // attempts that failed (capture or write), and the round of the newest
  // file written (-1 = none yet; a restore does not count).
  int64_t snapshots_written() const { return snapshots_written_.load(); }
  int64_t snapshot_failures() const { return snapshot_failures_.load(); }
  int64_t last_snapshot_round() const { return last_snapshot_round_.load(); }

 private:
  struct TableRecovery {
    bool align_pending = false;
    bool seen = false;  // a request arrived since the restore
    int64_t restored_version = -1;
  };
  void MoveStaleSnapshots(int32_t rank);
  void StartWriter(std::shared_ptr<const SnapshotImage> image, int32_t rank);

  const CheckpointOptions checkpoint_;
  const bool restore_;
  RecoveryMetrics metrics_;
  std::vector<TableRecovery> tables_;  // empty unless restored
  std::thread writer_;                 // background snapshot write
  std::atomic<bool> writer_busy_{false};
  int64_t last_snapshot_version_ = 0;
  Clock::time_point last_snapshot_time_;
  bool have_snapshot_ = false;  // one written (or restored from) at last_snapshot_version_
  int64_t restored_round_ = -1;
  int64_t updates_lost_ = 0;
  std::atomic<int64_t> snapshots_written_{0};
  std::atomic<int64_t> snapshot_failures_{0};
  std::atomic<int64_t> last_snapshot_round_{-1};
};

}  // namespace phalanx::ps::internal
