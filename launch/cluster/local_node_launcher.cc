// LocalNodeLauncher: nodes as child processes of the launcher (child_process.h),
// their stdout read through pipes with poll(2), exits noticed with waitpid.

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "launch/cluster/node_launcher.h"
#include "launch/process/child_process.h"

namespace phalanx::launch {

std::string NodeExit::Describe() const {
  if (WIFEXITED(wait_status)) return "exit code " + std::to_string(WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) return std::string("signal ") + strsignal(WTERMSIG(wait_status));
  return "unknown status";
}

bool NodeExit::Succeeded() const {
  return exited && WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0;
}

namespace {

class LocalNodeLauncher final : public NodeLauncher {
 public:
  ~LocalNodeLauncher() override {
    for (auto& n : nodes_) {
      if (n.stdout_fd >= 0) close(n.stdout_fd);
    }
  }

  Result<NodeHandle> Start(const NodeSpec& spec) override {
    std::vector<std::string> argv = spec.argv;
    if (!spec.env.empty()) {
      // env(1) adds the variables without a second exec path of our own.
      argv.insert(argv.begin(), spec.env.begin(), spec.env.end());
      argv.insert(argv.begin(), "/usr/bin/env");
    }
    ChildOptions options;
    options.log_path = spec.log_path;
    options.capture_stdout = spec.capture_stdout;
    options.die_with_parent = true;
    PHX_ASSIGN_OR_RETURN(StartedChild started, StartChild(argv, options));
    Node n;
    n.pid = started.pid;
    n.stdout_fd = started.stdout_fd;
    nodes_.push_back(std::move(n));
    return NodeHandle{static_cast<int>(nodes_.size()) - 1};
  }

  void Poll(int timeout_ms, std::vector<NodeOutput>* lines) override {
    std::vector<pollfd> fds;
    std::vector<int> ids;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i].stdout_fd < 0) continue;
      fds.push_back({nodes_[i].stdout_fd, POLLIN, 0});
      ids.push_back(static_cast<int>(i));
    }
    if (!fds.empty()) {
      poll(fds.data(), fds.size(), timeout_ms);
    } else {
      usleep(static_cast<useconds_t>(timeout_ms) * 1000);
    }
    for (size_t k = 0; k < fds.size(); ++k) {
      if (!(fds[k].revents & (POLLIN | POLLHUP))) continue;
      if (!ReadLines(ids[k], lines)) {
        close(nodes_[ids[k]].stdout_fd);
        nodes_[ids[k]].stdout_fd = -1;
      }
    }
    ReapExited();
  }

  NodeExit Exit(NodeHandle node) const override {
    const Node& n = nodes_[node.id];
    return {n.exited, n.status};
  }

  void Stop(NodeHandle node) override { Signal(node, SIGTERM); }
  void Kill(NodeHandle node) override { Signal(node, SIGKILL); }

  void Reap(NodeHandle node, int grace_ms) override {
    Node& n = nodes_[node.id];
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
    while (!n.exited && std::chrono::steady_clock::now() < deadline) {
      ReapExited();
      if (!n.exited) usleep(20000);
    }
    if (n.exited) return;
    kill(n.pid, SIGKILL);
    waitpid(n.pid, &n.status, 0);
    n.exited = true;
  }

  std::string Describe(NodeHandle node) const override {
    return "pid " + std::to_string(nodes_[node.id].pid);
  }

 private:
  struct Node {
    pid_t pid = -1;
    int stdout_fd = -1;   // read end, or -1
    std::string partial;  // unfinished line
    bool exited = false;
    int status = 0;
  };

  void Signal(NodeHandle node, int sig) {
    const Node& n = nodes_[node.id];
    if (!n.exited) kill(n.pid, sig);
  }

  // Reads what is available; returns false at EOF.
  bool ReadLines(int id, std::vector<NodeOutput>* lines) {
    Node& n = nodes_[id];
    char buf[65536];
    ssize_t got = read(n.stdout_fd, buf, sizeof(buf));
    if (got <= 0) return got < 0 && errno == EAGAIN;
    n.partial.append(buf, static_cast<size_t>(got));
    size_t pos;
    while ((pos = n.partial.find('\n')) != std::string::npos) {
      lines->push_back({NodeHandle{id}, n.partial.substr(0, pos)});
      n.partial.erase(0, pos + 1);
    }
    return true;
  }

  void ReapExited() {
    for (auto& n : nodes_) {
      if (n.exited) continue;
      int st = 0;
      if (waitpid(n.pid, &st, WNOHANG) == n.pid) {
        n.exited = true;
        n.status = st;
      }
    }
  }

  std::vector<Node> nodes_;
};

}  // namespace

std::unique_ptr<NodeLauncher> MakeLocalNodeLauncher() {
  return std::make_unique<LocalNodeLauncher>();
}

}  // namespace phalanx::launch
