#include "launch/process/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <thread>

extern char** environ;

namespace phalanx::launch {
namespace {

using Clock = std::chrono::steady_clock;

int MsLeft(Clock::time_point deadline) {
  auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::max<int64_t>(0, left));
}

// The inherited environment with `additions` ("NAME=value") replacing or
// extending it.
std::vector<std::string> MergedEnvironment(const std::vector<std::string>& additions) {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) env.emplace_back(*e);
  for (const auto& add : additions) {
    const std::string name = add.substr(0, add.find('=') + 1);
    auto same = [&](const std::string& e) { return e.rfind(name, 0) == 0; };
    env.erase(std::remove_if(env.begin(), env.end(), same), env.end());
    env.push_back(add);
  }
  return env;
}

std::vector<char*> Pointers(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

struct Fds {
  int out[2] = {-1, -1};
  int err[2] = {-1, -1};
  int log = -1;
  void CloseAll() {
    for (int* fd : {&out[0], &out[1], &err[0], &err[1], &log}) {
      if (*fd >= 0) close(*fd);
      *fd = -1;
    }
  }
};

}  // namespace

Result<StartedChild> StartChild(const std::vector<std::string>& args, const ChildOptions& options) {
  if (args.empty()) return InvalidArgument("no program to start");
  Fds fds;
  if (options.capture_stdout && pipe2(fds.out, O_CLOEXEC) != 0) return Internal("pipe failed");
  if (options.capture_stderr && pipe2(fds.err, O_CLOEXEC) != 0) {
    fds.CloseAll();
    return Internal("pipe failed");
  }
  const std::string log_path = options.log_path.empty() ? "/dev/null" : options.log_path;
  fds.log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fds.log < 0) {
    fds.CloseAll();
    return Unavailable("cannot open log file " + log_path);
  }
  const int null_in = options.null_stdin ? open("/dev/null", O_RDONLY | O_CLOEXEC) : -1;
  // argv and envp are built before the fork: the child only calls
  // async-signal-safe functions between fork and exec.
  std::vector<std::string> full;
  if (!options.netns.empty()) full = {"/usr/sbin/ip", "netns", "exec", options.netns};
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> argv = Pointers(full);
  const bool search = options.search_path && options.netns.empty();
  std::vector<std::string> env_strings;
  if (!options.env.empty()) env_strings = MergedEnvironment(options.env);
  std::vector<char*> envp = Pointers(env_strings);
  char** child_env = options.env.empty() ? environ : envp.data();
  const pid_t pid = fork();
  if (pid < 0) {
    if (null_in >= 0) close(null_in);
    fds.CloseAll();
    return Internal("fork failed");
  }
  if (pid == 0) {
    if (options.new_process_group) setpgid(0, 0);
    if (options.die_with_parent) prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (null_in >= 0) dup2(null_in, 0);
    dup2(options.capture_stdout ? fds.out[1] : fds.log, 1);
    dup2(options.capture_stderr ? fds.err[1] : fds.log, 2);
    if (search) {
      execvpe(argv[0], argv.data(), child_env);
    } else {
      execve(argv[0], argv.data(), child_env);
    }
    _exit(127);
  }
  if (null_in >= 0) close(null_in);
  StartedChild child;
  child.pid = pid;
  std::swap(child.stdout_fd, fds.out[0]);
  std::swap(child.stderr_fd, fds.err[0]);
  fds.CloseAll();
  return child;
}

int ExitCode(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  return 128 + WTERMSIG(wait_status);
}

Result<CommandOutput> RunCommand(const std::vector<std::string>& argv, int timeout_ms) {
  ChildOptions options;
  options.capture_stdout = true;
  options.capture_stderr = true;
  options.null_stdin = true;
  options.search_path = true;
  PHX_ASSIGN_OR_RETURN(StartedChild child, StartChild(argv, options));
  CommandOutput result;
  pollfd fds[2] = {{child.stdout_fd, POLLIN, 0}, {child.stderr_fd, POLLIN, 0}};
  int open_fds = 2;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (open_fds > 0 && Clock::now() < deadline) {
    if (poll(fds, 2, 200) <= 0) continue;
    for (auto& p : fds) {
      if (p.fd < 0 || !(p.revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      ssize_t n = read(p.fd, buf, sizeof(buf));
      if (n <= 0) {
        close(p.fd);
        p.fd = -1;
        --open_fds;
      } else {
        (&p == &fds[0] ? result.out : result.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  for (auto& p : fds) {
    if (p.fd >= 0) close(p.fd);
  }
  if (open_fds > 0) kill(child.pid, SIGKILL);
  int st = 0;
  waitpid(child.pid, &st, 0);
  if (open_fds > 0) return DeadlineExceeded("did not finish in time");
  result.exit_code = ExitCode(st);
  return result;
}

ChildProcess::~ChildProcess() {
  if (running()) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
  }
  ClosePipe();
}

Status ChildProcess::Start(const std::vector<std::string>& args, ChildOptions options) {
  options.capture_stdout = true;
  PHX_ASSIGN_OR_RETURN(StartedChild child, StartChild(args, options));
  pid_ = child.pid;
  fd_ = child.stdout_fd;
  return Status::Ok();
}

void ChildProcess::ClosePipe() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

std::optional<std::string> ChildProcess::ReadLine(int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    auto pos = buf_.find('\n');
    if (pos != std::string::npos) {
      std::string line = buf_.substr(0, pos);
      buf_.erase(0, pos + 1);
      all_ += line + "\n";
      return line;
    }
    const int left = MsLeft(deadline);
    if (left <= 0 || fd_ < 0) return std::nullopt;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, left) <= 0) continue;
    char tmp[4096];
    ssize_t n = read(fd_, tmp, sizeof(tmp));
    if (n <= 0) {
      ClosePipe();
      if (buf_.empty()) return std::nullopt;
      buf_ += "\n";  // the last line had no newline
      continue;
    }
    buf_.append(tmp, static_cast<size_t>(n));
  }
}

std::optional<std::string> ChildProcess::WaitFor(const std::string& prefix, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Clock::now() < deadline) {
    auto line = ReadLine(std::max(1, MsLeft(deadline)));
    if (!line) {
      if (fd_ < 0) return std::nullopt;
      continue;
    }
    if (line->rfind(prefix, 0) == 0) return line->substr(prefix.size());
  }
  return std::nullopt;
}

int ChildProcess::Wait(int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (pid_ > 0 && Clock::now() < deadline) {
    if (fd_ >= 0) ReadLine(50);
    if (!exited_ && waitpid(pid_, &status_, WNOHANG) == pid_) exited_ = true;
    if (exited_) {
      while (ReadLine(10)) {
      }
      break;
    }
  }
  return exited_ ? ExitCode(status_) : -1;
}

void ChildProcess::Signal(int sig) {
  if (running()) kill(pid_, sig);
}

int ChildProcess::Terminate(int grace_ms) {
  if (pid_ <= 0) return -1;
  if (!exited_) {
    kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + std::chrono::milliseconds(grace_ms);
    while (!exited_ && Clock::now() < deadline) {
      if (waitpid(pid_, &status_, WNOHANG) == pid_) {
        exited_ = true;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    if (!exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status_, 0);
      exited_ = true;
    }
  }
  ClosePipe();
  return ExitCode(status_);
}

}  // namespace phalanx::launch
