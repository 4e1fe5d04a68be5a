#pragma once
// SnapshotWatch: what the servers of a job with checkpoints say about their
// snapshots. While the job runs it reads each live server's /status (found
// through the scheduler's /status, whose HTTP port the scheduler prints as
// PHX_HTTP) every 2 s; at the end it takes the PHX_SNAPSHOTS line each server
// process printed when it stopped, which is final. Records are kept per
// process (pid), so a replacement's count adds to its predecessor's.
// Launcher thread only; the HTTP reads block for at most 300 ms each.

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "common/node_lines.h"

namespace phalanx::launch::internal {

// One server rank over the whole job (every process that held it).
struct RankSnapshots {
  int rank = -1;
  int64_t snapshots = 0;
  int64_t snapshot_failures = 0;
  int64_t last_snapshot_round = -1;
};

class SnapshotWatch {
 public:
  // The scheduler's address and HTTP port (a restarted scheduler has a new one).
  void SetScheduler(const std::string& host, int http_port) {
    scheduler_host_ = host;
    scheduler_http_ = http_port;
  }
  // Reads the servers' /status when 2 s have passed since the last read.
  void MaybeScrape();
  // Final records of processes that exited (their PHX_SNAPSHOTS lines).
  void AddFinal(const std::vector<SnapshotsLine>& lines);

  int64_t failures() const;
  std::vector<RankSnapshots> ByRank() const;

 private:
  std::string scheduler_host_;
  int scheduler_http_ = 0;
  std::chrono::steady_clock::time_point last_{};
  std::map<int64_t, SnapshotsLine> by_pid_;
};

}  // namespace phalanx::launch::internal
