#pragma once
// NodeLauncher: how a job's nodes are started, watched and stopped. The local
// launcher forks them on this machine (LocalNodeLauncher); launchers that
// start them over ssh, through Slurm, MPI or Kubernetes implement the same
// calls, so the supervisor (supervisor.h), the progress stream and the fault
// schedule work unchanged on top of any of them.
//
// Thread-safety: a NodeLauncher is used by one thread (the launcher's).

#include <memory>
#include <string>
#include <vector>

#include "common/control.h"
#include "common/status.h"

namespace phalanx::launch {

// One node as a launcher starts it.
struct NodeSpec {
  Role role = Role::kWorker;
  int rank = 0;                   // 0 for the scheduler
  std::string name;               // "scheduler", "server-1", "worker-3": logs, messages
  std::vector<std::string> argv;  // argv[0] is the binary (a path on the node's machine)
  std::vector<std::string> env;   // extra KEY=VALUE entries of the node's environment
  std::string log_path;           // stderr, and stdout unless capture_stdout
  bool capture_stdout = false;    // stdout lines come back through Poll
  // Where the node runs: empty = wherever the launcher puts it (here, for the
  // local launcher, whose network namespaces are already in argv); a host
  // name, Slurm node or pod for the remote launchers.
  std::string host;
};

// A started node, as the launcher sees it.
struct NodeHandle {
  int id = -1;  // the launcher's own number, in start order
};

// A line a node printed on stdout (capture_stdout), without its newline.
struct NodeOutput {
  NodeHandle node;
  std::string line;
};

// How a node ended: a wait status as waitpid() reports it (remote launchers
// map their job states onto exit codes and signals).
struct NodeExit {
  bool exited = false;
  int wait_status = 0;
  std::string Describe() const;  // "exit code 1", "signal Killed"
  bool Succeeded() const;        // exited with code 0
};

class NodeLauncher {
 public:
  virtual ~NodeLauncher() = default;
  // Starts `spec`; the node runs until it exits or is stopped.
  virtual Result<NodeHandle> Start(const NodeSpec& spec) = 0;
  // Waits up to timeout_ms for output, appends every complete stdout line
  // that arrived to `lines`, and notices nodes that exited.
  virtual void Poll(int timeout_ms, std::vector<NodeOutput>* lines) = 0;
  virtual NodeExit Exit(NodeHandle node) const = 0;
  // Asks a node to stop (SIGTERM; it exits cleanly and reports).
  virtual void Stop(NodeHandle node) = 0;
  // Ends a node at once (SIGKILL: a crash, as the fault schedule wants).
  virtual void Kill(NodeHandle node) = 0;
  // Blocks until `node` has exited, killing it after grace_ms.
  virtual void Reap(NodeHandle node, int grace_ms) = 0;
  // Process id or job id, for messages ("pid 1234").
  virtual std::string Describe(NodeHandle node) const = 0;
};

// Starts nodes as child processes of this one, in its process group, killed
// when it dies.
std::unique_ptr<NodeLauncher> MakeLocalNodeLauncher();

}  // namespace phalanx::launch
