#pragma once
// LocalLauncher: `phalanx launch local`. Starts 1 scheduler + S servers + W
// workers as separate processes on this machine (the same binary with role
// subcommands, through LocalNodeLauncher and the Supervisor), shows a progress
// line (ProgressStream), stops every child on Ctrl-C or when a child fails,
// and writes the run folder (training_report.h): metrics.csv, summary.json,
// training.png, faults.csv, config.toml and logs/. Applies the job's fault
// schedule (launch/faults/fault_schedule.h): process faults by signals,
// behavioural ones by per-process overrides, network faults in network
// namespaces (launch/faults/netns.h) and through the TCP fault proxy
// (launch/faults/fault_proxy.h). Runs on the caller's thread.

#include <atomic>
#include <string>
#include <vector>

#include "common/status.h"
#include "launch/config/config.h"

namespace phalanx::launch {

struct LaunchOptions {
  std::string config_path;
  std::vector<std::string> overrides;
  std::string out_dir;
  std::string self_exe;  // path of the phalanx binary
  bool quiet = false;    // no progress line
  // Network faults that cannot be applied here (no root, no netns) refuse the
  // whole run instead of only those entries.
  bool require_network_faults = false;
  // --max-restarts: nodes that die on their own are replaced up to this many
  // times in all; -1 = cluster.max_restarts from the config (default 0:
  // the first failure ends the job).
  int max_restarts = -1;
};

// One event of the fault schedule as the launcher applied it.
struct AppliedFault {
  double time_s = 0;  // since launch
  int round = 0;      // highest round the workers had reported
  int index = 0;      // position in [[faults]]
  std::string kind;
  std::string node;
  std::string event;  // start | end | restart | refused | skipped | error | traffic
  std::string detail;
  int64_t proxied_bytes = -1;  // "traffic" events: bytes the proxy carried on the fault's links
};

struct LaunchResult {
  double final_test_accuracy = -1;
  int rounds = 0;
  double wall_seconds = 0;
  std::vector<AppliedFault> faults;  // also in the run folder's faults.csv
  int64_t updates_lost = -1;         // from restored servers' PHX_RESTORED lines; -1 = unknown
  int restarts = 0;                  // nodes replaced by the restart policy
  int max_restarts = 0;
  // Jobs with checkpoint.dir: per server rank, over every process that held it.
  struct ServerSnapshots {
    int rank = -1;
    int64_t snapshots = 0;
    int64_t snapshot_failures = 0;
    int64_t last_snapshot_round = -1;  // -1 = none written
  };
  std::vector<ServerSnapshots> snapshots;
  int64_t snapshot_failures = 0;
};

Result<LaunchResult> LaunchLocal(const LaunchOptions& options, const std::atomic<bool>* stop);

}  // namespace phalanx::launch
