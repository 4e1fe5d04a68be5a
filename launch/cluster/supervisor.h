#pragma once
// Supervisor: the nodes of one job, started, watched and stopped through a
// NodeLauncher. It knows which nodes the fault schedule killed (not failures)
// and starts their replacements (the same command line; servers add
// --restore, the scheduler binds its old port), decides when a failed node
// ends the job, and stops the scheduler and servers once every worker is gone.
//
// Thread-safety: the launcher's thread only.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/node_lines.h"
#include "common/status.h"
#include "launch/cluster/node_launcher.h"

namespace phalanx::launch {

class Supervisor {
 public:
  explicit Supervisor(std::unique_ptr<NodeLauncher> launcher);
  // Stops whatever still runs.
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  Status Start(const NodeSpec& spec);
  // Output lines of every node that captures stdout, for up to timeout_ms.
  void Poll(int timeout_ms, std::vector<NodeOutput>* lines);
  int size() const { return static_cast<int>(nodes_.size()); }  // nodes started, by id
  const NodeSpec& spec(NodeHandle node) const { return nodes_[node.id].spec; }
  NodeExit Exit(NodeHandle node) const { return launcher_->Exit(nodes_[node.id].handle); }

  // A replacement scheduler binds `port` (the one the first one bound), so
  // nodes and proxy routes find it where it was.
  void PinSchedulerPort(int port);

  // SIGTERM to every node, SIGKILL to those still there after 5 s.
  void StopAll();

  // The fault schedule's side. Kills the running node `name` (not a failure);
  // returns its description, or nullopt when it does not run.
  std::optional<std::string> KillByFault(const std::string& name);
  // Starts the replacement of a node the schedule killed (once per kill);
  // false when there is none to replace.
  bool RestartKilled(const std::string& name);

  // The restart policy (--max-restarts): a node that died on its own (not
  // killed by the schedule, not stopped by us) is replaced by the same
  // command line, as RestartKilled does, while the job has used fewer than
  // max_restarts replacements in all; servers add --restore when
  // `can_restore` says a snapshot of theirs exists (otherwise a replacement
  // starts from initial values). A replacement starts `delay` after the death
  // was seen, once the scheduler has declared its predecessor dead (so that
  // it gets the same rank back). The scheduler and servers are not replaced
  // once every worker has exited. A node with a replacement due or started
  // is no longer a failure. Returns one line per replacement started, for
  // the progress line and faults.csv.
  struct PolicyRestart {
    std::string node;
    std::string detail;
  };
  std::vector<PolicyRestart> RestartFailed(int max_restarts,
                                           const std::function<bool(const NodeSpec&)>& can_restore,
                                           std::chrono::milliseconds delay);
  // Replacements granted so far (started or due).
  int policy_restarts() const { return policy_restarts_; }
  // A replacement is due but not started yet: the job is not over.
  bool restarts_due() const;

  // A failed node that ends the job (any node but workers when
  // tolerate_worker_failures), as Aborted with the end of its log.
  std::optional<Status> JobFailure(bool tolerate_worker_failures) const;
  bool AllExited() const;
  // Every worker exited but the scheduler or a server still runs: after a
  // 5 s grace period they are stopped (a scheduler restarted after the
  // workers finished never hears them leave). Returns true when it stopped
  // them, which ends the job.
  bool StopServicesLeftAlone();
  int FailedWorkers() const;
  // PHX_RESTORED lines of the replacement servers (in their logs).
  std::vector<RestoredLine> RestoredLines() const;
  // PHX_SNAPSHOTS lines of every server process that printed one (in their
  // logs), one per process.
  std::vector<SnapshotsLine> SnapshotsLines() const;

  // The last `max_lines` lines of a log, indented, for error messages.
  static std::string Tail(const std::string& path, size_t max_lines);

 private:
  struct Node {
    NodeSpec spec;
    NodeHandle handle;
    bool killed_by_fault = false;  // SIGKILLed by the schedule: not a failure
    bool stopped_by_us = false;    // stopped by the grace-period backstop: not a failure
    int restarts = 0;              // replacements started for this entry
    // The restart policy granted a replacement, to start at this time.
    std::chrono::steady_clock::time_point restart_due{};
  };
  bool Failed(const Node& n) const;
  // Starts the replacement of nodes_[i] (its own log, servers with
  // --restore when `restore`) and marks the entry replaced.
  Status StartReplacement(size_t i, bool restore);
  bool AnyWorkerRunning() const;

  std::unique_ptr<NodeLauncher> launcher_;
  std::vector<Node> nodes_;  // index = NodeHandle::id
  std::chrono::steady_clock::time_point services_alone_since_{};
  int policy_restarts_ = 0;  // replacements granted by RestartFailed
  int policy_started_ = 0;   // of which started
};

}  // namespace phalanx::launch
