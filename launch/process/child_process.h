#pragma once
// The one way Phalanx starts a child process (the launcher's cluster nodes and
// experiment cells, the network sandbox's tools, the benches' and the
// multi-process tests' `phalanx` processes): fork + exec with argv, optional
// environment additions, stdout/stderr to a log file or a pipe, an optional
// network namespace, and the descriptor and process-group rules, which are
// easy to get subtly wrong, in one place.
//
// Three layers: StartChild (fork + exec, returns pid and pipe ends; the
// caller reaps), RunCommand (run a tool to completion, capturing its output),
// and ChildProcess (an owned child with its stdout read line by line, waited
// for with deadlines and killed when destroyed).
//
// Thread-safety: call from one thread (the launcher's, the bench's or the
// test's main thread). fork in a process with other threads is safe here only
// because the child execs at once and calls nothing but async-signal-safe
// functions before it does.

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace phalanx::launch {

struct ChildOptions {
  // stderr (and stdout unless capture_stdout) goes here, truncated;
  // "" = /dev/null.
  std::string log_path;
  bool capture_stdout = false;  // stdout to a pipe whose read end is returned
  bool capture_stderr = false;  // stderr to a second pipe instead of log_path
  bool null_stdin = false;      // stdin from /dev/null instead of inherited
  // Look args[0] up in PATH (execvp) instead of taking it as a path.
  bool search_path = false;
  // "NAME=value" entries added to (or replacing in) the inherited environment.
  std::vector<std::string> env;
  // Non-empty: run inside this network namespace (`ip netns exec <netns>`).
  std::string netns;
  // Own process group (so signalling -pid reaches the child's own children).
  bool new_process_group = false;
  // SIGKILL the child when its parent dies, so a crashed launcher or bench
  // leaves nothing running.
  bool die_with_parent = false;
};

struct StartedChild {
  pid_t pid = -1;
  int stdout_fd = -1;  // read end with capture_stdout, else -1 (close-on-exec)
  int stderr_fd = -1;  // read end with capture_stderr, else -1 (close-on-exec)
};

// Starts args[0] with args; the file descriptors it opens for the child are
// closed in the parent whatever happens. The caller reaps the pid and closes
// the returned read ends.
Result<StartedChild> StartChild(const std::vector<std::string>& args, const ChildOptions& options);

// Exit code of a waitpid status: the code, or 128 + signal when killed.
int ExitCode(int wait_status);

struct CommandOutput {
  int exit_code = 0;  // as ExitCode; 127 when the program was not found
  std::string out;
  std::string err;
};

// Runs argv (argv[0] looked up in PATH, stdin /dev/null) to completion,
// capturing stdout and stderr. DeadlineExceeded (after killing it) when it
// runs longer than timeout_ms.
Result<CommandOutput> RunCommand(const std::vector<std::string>& argv, int timeout_ms);

// A child with its stdout on a pipe, read line by line with deadlines; the
// destructor SIGKILLs it if it is still running and reaps it. Move-less and
// copy-less: the owner keeps it in place.
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  // Starts args with options (capture_stdout is forced on).
  Status Start(const std::vector<std::string>& args, ChildOptions options);

  // Next stdout line, or nullopt at EOF or after timeout_ms.
  std::optional<std::string> ReadLine(int timeout_ms);
  // Reads lines until one starts with `prefix`; returns the rest of it.
  std::optional<std::string> WaitFor(const std::string& prefix, int timeout_ms);
  // Drains stdout to EOF and waits for exit; returns the exit code (as
  // ExitCode) or -1 after timeout_ms.
  int Wait(int timeout_ms);
  // Sends sig if the child is still running.
  void Signal(int sig);
  // SIGTERM, up to grace_ms for a clean exit, then SIGKILL; reaps the child
  // and closes the pipe. Returns the exit code (as ExitCode), -1 if none ran.
  int Terminate(int grace_ms);

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !exited_; }
  // Every line ReadLine has returned so far, each with its '\n'.
  const std::string& output() const { return all_; }

 private:
  void ClosePipe();

  pid_t pid_ = -1;
  int fd_ = -1;
  std::string buf_;
  std::string all_;
  int status_ = 0;
  bool exited_ = false;
};

}  // namespace phalanx::launch
