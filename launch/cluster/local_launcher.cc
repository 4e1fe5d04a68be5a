#include "launch/cluster/local_launcher.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "common/node_lines.h"
#include "launch/cli/federated_live.h"
#include "launch/cluster/internal/fault_runner.h"
#include "launch/cluster/internal/snapshot_watch.h"
#include "launch/cluster/log_follower.h"
#include "launch/cluster/memory_estimate.h"
#include "launch/cluster/node_launcher.h"
#include "launch/cluster/progress_stream.h"
#include "launch/cluster/supervisor.h"
#include "launch/cluster/training_report.h"
#include "launch/faults/fault_schedule.h"
#include "ps/snapshot.h"

namespace phalanx::launch {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using internal::FaultRunner;

// One `phalanx launch local` run: the nodes, the faults applied to them and
// what their output says.
class LocalRun {
 public:
  LocalRun(const LaunchOptions& options, JobConfig config, FaultSchedule schedule,
           const std::atomic<bool>* stop)
      : options_(options),
        config_(std::move(config)),
        stop_(stop),
        logs_((fs::path(options.out_dir) / "logs").string()),
        start_(Clock::now()),
        faults_(config_, std::move(schedule), start_),
        nodes_(MakeLocalNodeLauncher()),
        max_restarts_(options.max_restarts >= 0 ? options.max_restarts
                                                : config_.cluster.max_restarts) {
    common_ = {"--config", options.config_path};
    for (const auto& o : options.overrides) {
      common_.push_back("--set");
      common_.push_back(o);
    }
  }

  Result<LaunchResult> Run() {
    PHX_RETURN_IF_ERROR(faults_.Prepare(options_.require_network_faults));
    if (Status s = StartCluster(); !s.ok()) {
      nodes_.StopAll();
      return s;
    }
    if (!options_.quiet) {
      std::printf("phalanx: %s, %d servers, %d workers, %s, aggregator %s; logs in %s\n",
                  config_.model.kind.c_str(), config_.cluster.servers, config_.cluster.workers,
                  config_.cluster.mode.c_str(), config_.aggregator.name.c_str(), logs_.c_str());
      std::fflush(stdout);
    }
    PHX_RETURN_IF_ERROR(Watch());
    if (!options_.quiet) progress_.Finish(stdout);
    return Report();
  }

 private:
  // Every process: the binary, its role arguments, the shared config, then
  // its own overrides (address in its namespace, behavioural faults).
  NodeSpec Spec(const NodeRef& node, std::vector<std::string> head, bool capture) const {
    head.insert(head.begin(), options_.self_exe);
    head.insert(head.end(), common_.begin(), common_.end());
    NodeSpec spec;
    spec.role = node.role;
    spec.rank = node.rank;
    spec.name = node.name();
    spec.argv = faults_.Command(node, head);
    spec.log_path = logs_ + "/" + node.name() + ".log";
    spec.capture_stdout = capture;
    return spec;
  }

  Status Interrupted() const {
    return stop_ && stop_->load() ? Cancelled("interrupted") : Status::Ok();
  }

  // The first node that exited while the cluster was starting, if any.
  Status ExitedAtStart() const {
    for (int id = 0; id < nodes_.size(); ++id) {
      NodeExit e = nodes_.Exit({id});
      if (!e.exited) continue;
      const NodeSpec& s = nodes_.spec({id});
      return Internal(s.name + " exited at start (" + e.Describe() + "):\n" +
                      Supervisor::Tail(s.log_path, 10));
    }
    return Status::Ok();
  }

  // Scheduler first: it prints the endpoint it bound.
  Result<std::string> StartScheduler() {
    PHX_RETURN_IF_ERROR(
        nodes_.Start(Spec({Role::kScheduler, 0}, {"scheduler", "--port", "0"}, true)));
    std::optional<std::string> endpoint;
    int http_port = 0;
    while (!endpoint) {
      std::vector<NodeOutput> lines;
      nodes_.Poll(200, &lines);
      for (const auto& l : lines) {
        if (auto ep = ParseEndpointLine(l.line)) endpoint = ep;
        if (auto port = ParseHttpLine(l.line)) http_port = *port;
      }
      if (endpoint) break;
      PHX_RETURN_IF_ERROR(ExitedAtStart());
      if (Clock::now() - start_ > std::chrono::seconds(30)) {
        return DeadlineExceeded("scheduler did not report its endpoint");
      }
      PHX_RETURN_IF_ERROR(Interrupted());
    }
    // A restarted scheduler binds the same port, so nodes (and proxy routes)
    // find it where it was.
    nodes_.PinSchedulerPort(internal::SplitEndpoint(*endpoint).second);
    scheduler_host_ = internal::SplitEndpoint(*endpoint).first;
    snapshots_.SetScheduler(scheduler_host_, http_port);
    return *endpoint;
  }

  // Worker -> server links through the proxy: learn the servers' data ports
  // before any worker connects.
  Status RouteServerLinks() {
    std::map<int, std::pair<std::string, int>> servers;
    while (static_cast<int>(servers.size()) < config_.cluster.servers) {
      for (int r = 0; r < config_.cluster.servers; ++r) {
        if (servers.count(r)) continue;
        NodeRef node{Role::kServer, r};
        if (int port = faults_.FindDataPort(node); port > 0) {
          servers[r] = {faults_.host_of(node.name()), port};
        }
      }
      std::vector<NodeOutput> ignored;
      nodes_.Poll(100, &ignored);
      PHX_RETURN_IF_ERROR(ExitedAtStart());
      if (Clock::now() - start_ > std::chrono::seconds(60)) {
        return DeadlineExceeded("servers did not open their ports within 60 s");
      }
      PHX_RETURN_IF_ERROR(Interrupted());
    }
    return faults_.RouteServerLinks(servers);
  }

  Status StartCluster() {
    PHX_ASSIGN_OR_RETURN(std::string endpoint, StartScheduler());
    for (int s = 0; s < config_.cluster.servers; ++s) {
      NodeRef node{Role::kServer, s};
      PHX_ASSIGN_OR_RETURN(std::string ep, faults_.SchedulerEndpointFor(node, endpoint));
      PHX_RETURN_IF_ERROR(nodes_.Start(
          Spec(node, {"server", "--scheduler", ep, "--rank", std::to_string(s)}, false)));
    }
    if (faults_.needs_server_ports()) PHX_RETURN_IF_ERROR(RouteServerLinks());
    for (int w = 0; w < config_.cluster.workers; ++w) {
      NodeRef node{Role::kWorker, w};
      PHX_ASSIGN_OR_RETURN(std::string ep, faults_.SchedulerEndpointFor(node, endpoint));
      PHX_RETURN_IF_ERROR(nodes_.Start(
          Spec(node, {"worker", "--scheduler", ep, "--rank", std::to_string(w)}, true)));
    }
    return Status::Ok();
  }

  // Until every node is done: progress, faults, failures.
  Status Watch() {
    while (true) {
      if (stop_ && stop_->load()) {
        nodes_.StopAll();
        return Cancelled("interrupted; stopped every process");
      }
      std::vector<NodeOutput> lines;
      nodes_.Poll(100, &lines);
      for (const auto& l : lines) {
        progress_.Consume(l.line);
        // A restarted scheduler serves /status on a new port.
        auto port = ParseHttpLine(l.line);
        if (port && nodes_.spec(l.node).role == Role::kScheduler) {
          snapshots_.SetScheduler(scheduler_host_, *port);
        }
      }
      FollowServerLogs(/*now=*/false);
      faults_.Tick(progress_.last_round(), nodes_);
      ApplyRestartPolicy();
      // A failed node stops the job, except workers when failures are tolerated.
      if (auto failure = nodes_.JobFailure(config_.cluster.tolerate_worker_failures)) {
        nodes_.StopAll();
        if (max_restarts_ > 0) {
          return failure->WithContext(
              fmt::format("restarts exhausted ({}/{})", nodes_.policy_restarts(), max_restarts_));
        }
        return *failure;
      }
      if (!config_.checkpoint.dir.empty()) snapshots_.MaybeScrape();
      progress_.set_notes(Notes());
      const bool pending = faults_.restarts_pending() || nodes_.restarts_due();
      bool all_done = !pending && nodes_.AllExited();
      if (!all_done && !pending) all_done = nodes_.StopServicesLeftAlone();
      if (!options_.quiet) progress_.MaybePrint(stdout, config_.train.rounds, start_);
      if (all_done) return Status::Ok();
    }
  }

  // The servers' PHX_QUORUM lines, from their logs (their stdout is not
  // captured): twice a second while the job runs, and once more at the end.
  void FollowServerLogs(bool now) {
    if (!now && Clock::now() - last_follow_ < std::chrono::milliseconds(500)) return;
    last_follow_ = Clock::now();
    std::vector<std::string> lines;
    for (int i = 0; i < nodes_.size(); ++i) {
      const NodeSpec& spec = nodes_.spec(NodeHandle{i});
      if (spec.role == Role::kServer) server_logs_.Read(spec.log_path, &lines);
    }
    for (const auto& l : lines) progress_.Consume(l);
  }

  // Nodes that died on their own, replaced while restarts are left
  // (--max-restarts); each one is in faults.csv and summary.json.
  void ApplyRestartPolicy() {
    if (max_restarts_ <= 0) return;
    auto can_restore = [this](const NodeSpec& s) {
      return !config_.checkpoint.dir.empty() &&
             !ps::ListSnapshots(config_.checkpoint.dir, s.rank).empty();
    };
    // Late enough for the scheduler to have declared the dead node dead, so
    // that its replacement gets the same rank back.
    const auto delay = std::chrono::milliseconds(config_.cluster.heartbeat_timeout_ms + 500);
    for (const auto& r : nodes_.RestartFailed(max_restarts_, can_restore, delay)) {
      faults_.RecordPolicyRestart(r.node, r.detail);
    }
  }

  // What the progress line adds to the workers' figures.
  std::string Notes() const {
    std::string notes;
    if (nodes_.policy_restarts() > 0) {
      notes += fmt::format("  restarts {}/{}", nodes_.policy_restarts(), max_restarts_);
    }
    if (int64_t f = snapshots_.failures(); f > 0) notes += fmt::format("  snapshot failures {}", f);
    return notes;
  }

  // Per server rank, every rank listed; the final exit lines win over what
  // was read from /status during the run.
  void ReportSnapshots(LaunchResult* res) {
    snapshots_.AddFinal(nodes_.SnapshotsLines());
    std::map<int, internal::RankSnapshots> by_rank;
    for (const auto& r : snapshots_.ByRank()) by_rank[r.rank] = r;
    for (int rank = 0; rank < config_.cluster.servers; ++rank) {
      const internal::RankSnapshots& r = by_rank[rank];
      res->snapshots.push_back({rank, r.snapshots, r.snapshot_failures, r.last_snapshot_round});
      res->snapshot_failures += r.snapshot_failures;
    }
  }

  Result<LaunchResult> Report() {
    FollowServerLogs(/*now=*/true);
    LaunchResult res;
    res.final_test_accuracy = progress_.final_accuracy();
    res.rounds = progress_.last_round();
    res.wall_seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    faults_.Finish();
    res.faults = faults_.log();
    // Replacement servers say what their snapshot missed.
    for (const auto& r : nodes_.RestoredLines()) {
      if (r.restored_round < 0) continue;
      res.updates_lost = std::max<int64_t>(res.updates_lost, 0) + r.updates_lost;
    }
    res.restarts = nodes_.policy_restarts();
    res.max_restarts = max_restarts_;
    const bool checkpoints = !config_.checkpoint.dir.empty();
    if (checkpoints) ReportSnapshots(&res);
    WriteTrainingReport({&config_, &options_, &progress_, &res, nodes_.FailedWorkers()});
    if (res.final_test_accuracy < 0) {
      return Internal("training finished without a final accuracy; see " + logs_ + "/worker-0.log");
    }
    // A job configured with checkpoints that could not write one is not a
    // success: a server failure would have lost more than it promised.
    if (checkpoints && res.snapshot_failures > 0) {
      std::string which;
      for (const auto& r : res.snapshots) {
        if (r.snapshot_failures > 0) {
          which += fmt::format("{}server-{}: {} failed, last written round {}",
                               which.empty() ? "" : "; ", r.rank, r.snapshot_failures,
                               r.last_snapshot_round);
        }
      }
      return Unavailable(fmt::format(
          "{} snapshot(s) could not be written to checkpoint.dir '{}' ({}) although training "
          "finished (final test accuracy {:.4f}); see the servers' logs in {} and summary.json",
          res.snapshot_failures, config_.checkpoint.dir, which, res.final_test_accuracy, logs_));
    }
    return res;
  }

  const LaunchOptions& options_;
  const JobConfig config_;
  const std::atomic<bool>* stop_;
  const std::string logs_;
  std::vector<std::string> common_;  // --config and --set arguments of every node
  Clock::time_point start_;
  FaultRunner faults_;
  Supervisor nodes_;
  ProgressStream progress_;
  LogFollower server_logs_;
  Clock::time_point last_follow_{};
  const int max_restarts_;
  std::string scheduler_host_;
  internal::SnapshotWatch snapshots_;
};

// The run folder: logs/, the config as given (config.source.toml, its
// overrides as comments) and resolved (config.toml: every key with its
// effective value, so `--config RUN/config.toml` repeats the run).
Status PrepareRunFolder(const LaunchOptions& options, const JobConfig& config) {
  std::error_code ec;
  fs::create_directories(fs::path(options.out_dir) / "logs", ec);
  if (ec) {
    return Unavailable("cannot create output folder " + options.out_dir + ": " + ec.message());
  }
  std::ifstream in(options.config_path);
  std::ofstream source(fs::path(options.out_dir) / "config.source.toml");
  source << in.rdbuf();
  for (const auto& o : options.overrides) source << "# --set " << o << "\n";
  std::ofstream resolved(fs::path(options.out_dir) / "config.toml");
  resolved << "# Resolved from " << options.config_path;
  for (const auto& o : options.overrides) resolved << " --set " << o;
  resolved << "\n# (every key with its effective value; the file as given: config.source.toml)\n"
           << config.resolved_toml << "\n";
  if (!source || !resolved) {
    return Unavailable("cannot write the config into the output folder " + options.out_dir);
  }
  return Status::Ok();
}

// A job with checkpoints whose directory cannot be made or written would run
// to a normal-looking end with every snapshot failing: refuse it up front
// (issue 13, item 6) by creating the directory and writing a probe file.
Status CheckCheckpointDir(const JobConfig& config) {
  const std::string& dir = config.checkpoint.dir;
  if (dir.empty()) return Status::Ok();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    return FailedPrecondition("checkpoint.dir '" + dir + "' cannot be created (" +
                              (ec ? ec.message() : std::string("not a directory")) +
                              "): the servers could not write snapshots");
  }
  const fs::path probe = fs::path(dir) / ".phalanx-write-probe";
  {
    std::ofstream f(probe);
    f << "probe\n";
    f.flush();
    if (!f) {
      return FailedPrecondition("checkpoint.dir '" + dir +
                                "' is not writable: the servers could not write snapshots");
    }
  }
  fs::remove(probe, ec);
  return Status::Ok();
}

}  // namespace

Result<LaunchResult> LaunchLocal(const LaunchOptions& options, const std::atomic<bool>* stop) {
  PHX_ASSIGN_OR_RETURN(JobConfig config, LoadConfig(options.config_path, options.overrides));
  PHX_RETURN_IF_ERROR(ValidateFederatedJob(config));  // before any process starts
  PHX_ASSIGN_OR_RETURN(FaultSchedule schedule, BuildFaultSchedule(config));
  // Fail early, before any process starts, when the data is missing.
  if (config.data.dataset != "libsvm" && !fs::exists(config.data.path)) {
    return NotFound("data set folder '" + config.data.path + "' not found; run scripts/setup.sh");
  }
  // Before any process starts: a job that cannot fit is refused with the figure.
  if (!config.cluster.skip_memory_check) {
    auto available = AvailableMemoryBytes();
    if (available.ok()) {
      PHX_RETURN_IF_ERROR(CheckJobFits(config, EstimateJobMemory(config), *available));
    } else {
      spdlog::warn("memory check skipped: {}", available.status().ToString());
    }
  }
  PHX_RETURN_IF_ERROR(CheckCheckpointDir(config));
  PHX_RETURN_IF_ERROR(PrepareRunFolder(options, config));
  LocalRun run(options, std::move(config), std::move(schedule), stop);
  return run.Run();
}

}  // namespace phalanx::launch
