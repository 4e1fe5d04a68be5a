#pragma once
// Starting the launcher's child processes (cluster nodes, experiment cells):
// fork + exec of an absolute path with stderr (and stdout unless captured)
// appended to a log file. One place for the descriptor and process-group
// rules, which are easy to get subtly wrong.
//
// Thread-safety: call from the launcher's main thread (fork in a process with
// other threads is safe here only because the child execs at once).

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/status.h"

namespace phalanx::launch {

struct ChildOptions {
  std::string log_path;         // stderr (and stdout unless capture_stdout); truncated
  bool capture_stdout = false;  // stdout to a pipe whose read end is returned
  // Own process group (so signalling -pid reaches the child's own children).
  bool new_process_group = false;
  // SIGKILL the child when the launcher dies, so a crashed launcher leaves
  // no cluster running.
  bool die_with_parent = false;
};

struct StartedChild {
  pid_t pid = -1;
  int stdout_fd = -1;  // read end with capture_stdout, else -1 (close-on-exec)
};

// Starts args[0] (a path) with args; the file descriptors it opens for the
// child are closed in the parent whatever happens.
Result<StartedChild> StartChild(const std::vector<std::string>& args, const ChildOptions& options);

}  // namespace phalanx::launch
