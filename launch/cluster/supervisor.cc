#include "launch/cluster/supervisor.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace phalanx::launch {
namespace {

using Clock = std::chrono::steady_clock;

bool IsWorker(const NodeSpec& s) { return s.role == Role::kWorker; }

}  // namespace

Supervisor::Supervisor(std::unique_ptr<NodeLauncher> launcher) : launcher_(std::move(launcher)) {}

Supervisor::~Supervisor() { StopAll(); }

Status Supervisor::Start(const NodeSpec& spec) {
  PHX_ASSIGN_OR_RETURN(NodeHandle h, launcher_->Start(spec));
  if (h.id != static_cast<int>(nodes_.size()))
    return Internal("node launcher numbered out of order");
  // Operators (and tests) find a node's process here.
  spdlog::info("started {} ({}), log {}", spec.name, launcher_->Describe(h), spec.log_path);
  nodes_.push_back({spec, h});
  return Status::Ok();
}

void Supervisor::Poll(int timeout_ms, std::vector<NodeOutput>* lines) {
  launcher_->Poll(timeout_ms, lines);
}

void Supervisor::PinSchedulerPort(int port) {
  for (auto& n : nodes_) {
    if (n.spec.role != Role::kScheduler) continue;
    auto& argv = n.spec.argv;
    for (size_t i = 0; i + 1 < argv.size(); ++i) {
      if (argv[i] == "--port") argv[i + 1] = std::to_string(port);
    }
  }
}

void Supervisor::StopAll() {
  for (const auto& n : nodes_) launcher_->Stop(n.handle);
  auto deadline = Clock::now() + std::chrono::seconds(5);
  for (const auto& n : nodes_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    launcher_->Reap(n.handle, static_cast<int>(std::max<int64_t>(0, left.count())));
  }
}

std::optional<std::string> Supervisor::KillByFault(const std::string& name) {
  for (auto& n : nodes_) {
    if (n.spec.name != name || n.killed_by_fault || launcher_->Exit(n.handle).exited) continue;
    launcher_->Kill(n.handle);
    n.killed_by_fault = true;
    return launcher_->Describe(n.handle);
  }
  return std::nullopt;
}

bool Supervisor::RestartKilled(const std::string& name) {
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& old = nodes_[i];
    if (old.spec.name != name || !old.killed_by_fault || old.restarts != 0) continue;
    if (Status s = StartReplacement(i, /*restore=*/true); !s.ok()) {
      spdlog::error("cannot restart {}: {}", name, s.ToString());
    }
    return true;
  }
  return false;
}

Status Supervisor::StartReplacement(size_t i, bool restore) {
  nodes_[i].restarts = 1;  // the old entry stays for the record
  NodeSpec spec = nodes_[i].spec;
  const std::string name = spec.name;
  auto& argv = spec.argv;
  if (spec.role == Role::kServer && restore &&
      std::find(argv.begin(), argv.end(), "--restore") == argv.end()) {
    argv.push_back("--restore");
  }
  int n = 0;  // replacements of this node so far, this one included
  for (const auto& o : nodes_) n += o.spec.name == name && o.restarts > 0 ? 1 : 0;
  namespace fs = std::filesystem;
  spec.log_path = (fs::path(nodes_[i].spec.log_path).parent_path() /
                   (name + ".restart" + std::to_string(n) + ".log"))
                      .string();
  spec.capture_stdout = spec.role != Role::kServer;
  return Start(spec);
}

bool Supervisor::AnyWorkerRunning() const {
  for (const auto& n : nodes_) {
    if (IsWorker(n.spec) && !launcher_->Exit(n.handle).exited) return true;
  }
  return false;
}

bool Supervisor::restarts_due() const {
  for (const auto& n : nodes_) {
    if (n.restart_due != Clock::time_point{} && n.restarts == 0) return true;
  }
  return false;
}

std::vector<Supervisor::PolicyRestart> Supervisor::RestartFailed(
    int max_restarts, const std::function<bool(const NodeSpec&)>& can_restore,
    std::chrono::milliseconds delay) {
  const auto now = Clock::now();
  for (auto& n : nodes_) {
    if (policy_restarts_ >= max_restarts) break;
    if (!Failed(n)) continue;
    if (!IsWorker(n.spec) && !AnyWorkerRunning()) continue;  // the job is over
    n.restart_due = now + delay;
    ++policy_restarts_;
    spdlog::warn("{} died ({}); replacement {}/{} in {} ms", n.spec.name,
                 launcher_->Exit(n.handle).Describe(), policy_restarts_, max_restarts,
                 delay.count());
  }
  std::vector<PolicyRestart> out;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& n = nodes_[i];
    if (n.restart_due == Clock::time_point{} || n.restarts != 0 || now < n.restart_due) continue;
    const NodeSpec spec = n.spec;  // StartReplacement grows nodes_
    const std::string why = launcher_->Exit(n.handle).Describe();
    const bool restore = spec.role == Role::kServer && can_restore(spec);
    Status s = StartReplacement(i, restore);
    std::string detail =
        fmt::format("{} died ({}); restart {}/{}", spec.name, why, ++policy_started_, max_restarts);
    if (spec.role == Role::kServer) {
      detail += restore ? ", restoring its newest snapshot" : ", no snapshot: initial values";
    }
    if (s.ok()) {
      detail += " (" + launcher_->Describe(nodes_.back().handle) + ")";
    } else {
      detail += ": cannot start: " + s.ToString();
    }
    spdlog::warn("{}", detail);
    out.push_back({spec.name, detail});
  }
  return out;
}

bool Supervisor::Failed(const Node& n) const {
  NodeExit e = launcher_->Exit(n.handle);
  return e.exited && !n.killed_by_fault && !n.stopped_by_us && n.restarts == 0 &&
         n.restart_due == Clock::time_point{} && !e.Succeeded();
}

std::optional<Status> Supervisor::JobFailure(bool tolerate_worker_failures) const {
  for (const auto& n : nodes_) {
    if (!Failed(n)) continue;
    if (IsWorker(n.spec) && tolerate_worker_failures) continue;
    namespace fs = std::filesystem;
    std::string log = (fs::path(n.spec.log_path).parent_path() / (n.spec.name + ".log")).string();
    return Aborted(n.spec.name + " failed (" + launcher_->Exit(n.handle).Describe() +
                   "); last lines of " + log + ":\n" + Tail(log, 12));
  }
  return std::nullopt;
}

bool Supervisor::AllExited() const {
  for (const auto& n : nodes_) {
    if (!launcher_->Exit(n.handle).exited) return false;
  }
  return true;
}

bool Supervisor::StopServicesLeftAlone() {
  if (AllExited() || restarts_due()) return false;
  for (const auto& n : nodes_) {
    if (IsWorker(n.spec) && !launcher_->Exit(n.handle).exited) return false;
  }
  if (services_alone_since_ == Clock::time_point{}) services_alone_since_ = Clock::now();
  if (Clock::now() - services_alone_since_ <= std::chrono::seconds(5)) return false;
  spdlog::warn("scheduler/servers still running after every worker exited; stopping them");
  StopAll();
  for (auto& n : nodes_) n.stopped_by_us |= !IsWorker(n.spec);
  return true;
}

int Supervisor::FailedWorkers() const {
  int failed = 0;
  for (const auto& n : nodes_) failed += IsWorker(n.spec) && Failed(n);
  return failed;
}

namespace {

// The last line starting with `prefix` in the log at `path`; "" when none.
std::string LastLogLine(const std::string& path, std::string_view prefix) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) last = line;
  }
  return last;
}

}  // namespace

std::vector<RestoredLine> Supervisor::RestoredLines() const {
  std::vector<RestoredLine> out;
  for (const auto& n : nodes_) {
    if (n.spec.role != Role::kServer || n.spec.log_path.find(".restart") == std::string::npos) {
      continue;
    }
    if (auto r = ParseRestoredLine(LastLogLine(n.spec.log_path, kRestoredLinePrefix))) {
      out.push_back(*r);
    }
  }
  return out;
}

std::vector<SnapshotsLine> Supervisor::SnapshotsLines() const {
  std::vector<SnapshotsLine> out;
  for (const auto& n : nodes_) {
    if (n.spec.role != Role::kServer) continue;
    if (auto r = ParseSnapshotsLine(LastLogLine(n.spec.log_path, kSnapshotsLinePrefix))) {
      out.push_back(*r);
    }
  }
  return out;
}

std::string Supervisor::Tail(const std::string& path, size_t max_lines) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string l;
  while (std::getline(in, l)) lines.push_back(l);
  std::string out;
  size_t from = lines.size() > max_lines ? lines.size() - max_lines : 0;
  for (size_t i = from; i < lines.size(); ++i) out += "    " + lines[i] + "\n";
  return out;
}

}  // namespace phalanx::launch
