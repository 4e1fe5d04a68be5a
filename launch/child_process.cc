#include "launch/child_process.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>

namespace phalanx::launch {

Result<StartedChild> StartChild(const std::vector<std::string>& args, const ChildOptions& options) {
  if (args.empty()) return InvalidArgument("no program to start");
  int pipe_fds[2] = {-1, -1};
  if (options.capture_stdout && pipe2(pipe_fds, O_CLOEXEC) != 0) return Internal("pipe failed");
  auto close_pipe = [&] {
    for (int& fd : pipe_fds) {
      if (fd >= 0) close(fd);
      fd = -1;
    }
  };
  const int log = open(options.log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log < 0) {
    close_pipe();
    return Unavailable("cannot open log file " + options.log_path);
  }
  // argv is built before the fork: the child only calls async-signal-safe
  // functions between fork and exec.
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    close(log);
    close_pipe();
    return Internal("fork failed");
  }
  if (pid == 0) {
    if (options.new_process_group) setpgid(0, 0);
    if (options.die_with_parent) prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(options.capture_stdout ? pipe_fds[1] : log, 1);
    dup2(log, 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(log);
  StartedChild child;
  child.pid = pid;
  if (options.capture_stdout) {
    close(pipe_fds[1]);
    child.stdout_fd = pipe_fds[0];
  }
  return child;
}

}  // namespace phalanx::launch
