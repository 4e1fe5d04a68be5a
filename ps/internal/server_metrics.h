#pragma once
// The server's metrics (common/metrics.h), grouped by the collaborator that
// moves them. Each struct looks its instruments up in the global registry, so
// two instances share the same counters.
//
// Threading: the instruments are thread-safe; the structs hold references only.

#include <chrono>

#include "common/metrics.h"

namespace phalanx::ps::internal {

using Clock = std::chrono::steady_clock;

inline double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct ServerMetrics {
  MetricsRegistry& r = MetricsRegistry::Global();
  Counter& pulls = r.GetCounter("phalanx_server_pulls_total", "Pull requests answered");
  Counter& pushes = r.GetCounter("phalanx_server_pushes_total", "Push requests accepted");
  Counter& rows_pulled = r.GetCounter("phalanx_server_rows_pulled_total", "Rows sent in pulls");
  Counter& rows_pushed = r.GetCounter("phalanx_server_rows_pushed_total", "Gradient rows received");
  Counter& rounds = r.GetCounter("phalanx_server_rounds_total", "Synchronous rounds closed");
  Counter& timeouts = r.GetCounter("phalanx_server_round_timeouts_total",
                                   "Rounds closed by timeout with workers missing");
  Counter& missing = r.GetCounter("phalanx_server_round_missing_workers_total",
                                  "Worker slots missing from closed rounds");
  Counter& rejected = r.GetCounter("phalanx_server_rejected_requests_total",
                                   "Requests rejected (malformed, unknown sender, bad shape)");
  Counter& nonfinite =
      r.GetCounter("phalanx_server_nonfinite_pushes_total", "Pushes dropped for NaN/Inf gradients");
  Counter& stale = r.GetCounter("phalanx_server_stale_pushes_total",
                                "Sync pushes for a round that already closed");
  Histogram& pull_latency = r.GetHistogram("phalanx_server_pull_seconds", "Pull handling time");
  Histogram& push_latency = r.GetHistogram("phalanx_server_push_seconds", "Push handling time");
  Histogram& round_seconds = r.GetHistogram("phalanx_server_round_seconds",
                                            "Synchronous round duration (first push to close)");
  Histogram& apply_seconds =
      r.GetHistogram("phalanx_server_apply_seconds", "Aggregate + optimizer time per table update");
  Histogram& staleness =
      r.GetHistogram("phalanx_server_push_staleness", "Async push staleness in versions",
                     {0, 1, 2, 4, 8, 16, 32, 64, 128});
  Counter& coordination_bytes =
      r.GetCounter("phalanx_server_coordination_bytes_total",
                   "Bytes of partial Gram matrices and plans exchanged with the round coordinator");
  Counter& coordinated_rounds = r.GetCounter("phalanx_server_coordinated_rounds_total",
                                             "Rounds this server combined as coordinator");
  // Every worker that pushed to this shard but is not in the round's plan:
  // non-finite here or on another shard, or missing from another shard.
  Counter& dropped_workers =
      r.GetCounter("phalanx_server_round_dropped_workers_total",
                   "Workers that pushed to this shard but were left out of the round's plan "
                   "(non-finite on some shard, or missing from another shard)");
  Counter& failed_rounds = r.GetCounter("phalanx_server_failed_rounds_total",
                                        "Rounds closed without an update (rule error)");
  Counter& local_fallbacks =
      r.GetCounter("phalanx_server_local_plan_fallbacks_total",
                   "Rounds closed with a shard-local plan because the coordinator did not answer");
  // Synchronous round quorum (ps/internal/quorum.h): changes are counted by
  // the server that coordinated the round, so the cluster's total is the sum
  // over servers; the gauges are this shard's view of table 0.
  Counter& quorum_exclusions =
      r.GetCounter("phalanx_server_quorum_exclusions_total",
                   "Workers this server (as round coordinator) took out of the round quorum after "
                   "cluster.exclude_after_missed_rounds consecutive missed rounds");
  Counter& quorum_rejoins =
      r.GetCounter("phalanx_server_quorum_rejoins_total",
                   "Excluded workers this server (as round coordinator) let back into the quorum");
  Gauge& quorum_size =
      r.GetGauge("phalanx_server_quorum_size", "Live workers table 0's rounds wait for");
  Gauge& quorum_below_rule = r.GetGauge(
      "phalanx_server_quorum_below_rule",
      "1 while table 0's quorum is smaller than the aggregation rule needs (CheckRuleCanRun)");
  Gauge& rows = r.GetGauge("phalanx_server_rows", "Rows held by this shard");
  Gauge& version = r.GetGauge("phalanx_server_version", "Version of table 0");
};

// Snapshots and recovery (ps/snapshot.h, ps/internal/recovery.h).
struct RecoveryMetrics {
  MetricsRegistry& r = MetricsRegistry::Global();
  Counter& snapshots = r.GetCounter("phalanx_server_snapshots_total", "Snapshots written");
  Counter& snapshot_failures =
      r.GetCounter("phalanx_server_snapshot_failures_total", "Snapshots that could not be written");
  Gauge& snapshot_round =
      r.GetGauge("phalanx_server_snapshot_round", "Round (table 0 version) of the newest snapshot");
  Gauge& snapshot_bytes =
      r.GetGauge("phalanx_server_snapshot_bytes", "Size of the newest snapshot");
  Histogram& capture_seconds = r.GetHistogram("phalanx_server_snapshot_capture_seconds",
                                              "Time the request loop spent copying a snapshot");
  Histogram& write_seconds = r.GetHistogram("phalanx_server_snapshot_write_seconds",
                                            "Background write + fsync + rename of a snapshot");
  Gauge& restored_round = r.GetGauge("phalanx_server_restored_round",
                                     "Round of the snapshot this server started from (-1 = none)");
  Gauge& restore_seconds =
      r.GetGauge("phalanx_server_restore_seconds", "Time to load the snapshot at startup");
  Gauge& updates_lost = r.GetGauge(
      "phalanx_server_updates_lost",
      "Rounds of table 0 lost by the restore (cluster round at rejoin - snapshot round)");
};

}  // namespace phalanx::ps::internal
