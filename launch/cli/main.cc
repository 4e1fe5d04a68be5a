// The `phalanx` binary: one executable, one subcommand per role or tool.
// Exceptions stop here: CLI parsing may throw, library code returns Status.

#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <filesystem>
#include <iostream>

#include "launch/cases/aggregate_case.h"
#include "launch/cli/roles.h"
#include "launch/cluster/local_launcher.h"
#include "launch/config/config.h"
#include "launch/experiment/experiment.h"
#include "launch/sim/simulator.h"

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop = true; }

void InstallSignals() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

std::string SelfExe(const char* argv0) {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(argv0) : p.string();
}

int Fail(const phalanx::Status& s, const char* what) {
  std::cerr << "phalanx " << what << ": " << s.ToString() << std::endl;
  return s.code() == phalanx::StatusCode::kCancelled ? 130 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  InstallSignals();
  auto logger = spdlog::stderr_color_mt("phalanx");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%H:%M:%S.%e] [%l] %v");

  CLI::App app{"Phalanx: a parameter server with robust aggregation"};
  app.require_subcommand(1);
  std::string config_path;
  std::vector<std::string> overrides;
  std::string scheduler;
  int rank = -1;
  int port = 0;
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();

  auto add_config = [&](CLI::App* sub) {
    sub->add_option("--config", config_path, "job config (TOML)")->required();
    sub->add_option("--set", overrides, "override a config key: section.key=value");
  };

  auto* sched = app.add_subcommand("scheduler", "run the membership service");
  add_config(sched);
  sched->add_option("--port", port, "port to bind (0 = any free port)");

  auto* server = app.add_subcommand("server", "run one parameter-server shard");
  add_config(server);
  server->add_option("--scheduler", scheduler, "scheduler endpoint tcp://host:port")->required();
  server->add_option("--rank", rank, "requested server rank");
  bool restore = false;
  server->add_flag("--restore", restore,
                   "load the newest valid snapshot of this rank from checkpoint.dir (or fail)");

  auto* worker = app.add_subcommand("worker", "run one training worker");
  add_config(worker);
  worker->add_option("--scheduler", scheduler, "scheduler endpoint tcp://host:port")->required();
  worker->add_option("--rank", rank, "requested worker rank");

  auto* launch = app.add_subcommand("launch", "start a cluster");
  launch->require_subcommand(1);
  auto* local = launch->add_subcommand("local", "scheduler, servers and workers on this machine");
  add_config(local);
  std::string out_dir;
  bool quiet = false;
  local->add_option("--out", out_dir, "output folder (metrics.csv, summary.json, plots, logs)")
      ->required();
  local->add_flag("--quiet", quiet, "no progress line");
  bool require_network_faults = false;
  local->add_flag("--require-network-faults", require_network_faults,
                  "refuse the run when its network faults cannot be applied (no root/netns)");

  auto* aggregate = app.add_subcommand(
      "aggregate", "run a reference case file (aggregator, pipeline, Flag, attack, MoNNA round)");
  std::string case_path;
  bool gram_form = false;
  int slices = 3;
  aggregate->add_option("--input", case_path, "case file (JSON, as in shared/vectors)")->required();
  aggregate->add_flag("--gram", gram_form, "compute through the two-phase Gram form");
  aggregate->add_option("--slices", slices, "row slices for --gram")->capture_default_str();

  auto* simulate = app.add_subcommand(
      "simulate",
      "federated clients on a virtual clock (FedAvg, async, FedAsync, FedBuff, FedFix)");
  std::string sim_out;
  int sim_threads = 0;
  add_config(simulate);
  simulate->add_option("--out", sim_out, "output folder (metrics.csv, summary.json, PNG plots)")
      ->required();
  simulate->add_option("--threads", sim_threads, "client-training threads (0 = all cores)");

  auto* experiment = app.add_subcommand(
      "experiment", "sweep a grid of local runs (rules x attacks x f x fault schedules x seeds)");
  std::string experiment_path;
  std::string experiment_out;
  int experiment_parallel = 0;
  std::vector<std::string> experiment_overrides;
  experiment->add_option("--config", experiment_path, "experiment file (TOML)")->required();
  experiment->add_option("--out", experiment_out, "output folder (resumable)")->required();
  experiment->add_option("--parallel", experiment_parallel, "runs at once (default: the file's)");
  experiment->add_option("--set", experiment_overrides, "override an experiment key: key=value");
  experiment->add_flag("--quiet", quiet, "no per-run lines");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  spdlog::set_level(spdlog::level::from_str(log_level));

  auto load = [&]() -> phalanx::Result<phalanx::JobConfig> {
    return phalanx::LoadConfig(config_path, overrides);
  };

  if (*sched) {
    auto c = load();
    if (!c.ok()) return Fail(c.status(), "scheduler");
    auto s = phalanx::launch::RunScheduler(*c, port, std::cout, &g_stop);
    return s.ok() ? 0 : Fail(s, "scheduler");
  }
  if (*server) {
    auto c = load();
    if (!c.ok()) return Fail(c.status(), "server");
    auto s = phalanx::launch::RunServer(*c, scheduler, rank, std::cout, &g_stop, restore);
    return s.ok() ? 0 : Fail(s, "server");
  }
  if (*worker) {
    auto c = load();
    if (!c.ok()) return Fail(c.status(), "worker");
    auto s = phalanx::launch::RunWorker(*c, scheduler, rank, std::cout, &g_stop);
    return s.ok() ? 0 : Fail(s, "worker");
  }
  if (*simulate) {
    auto sc = phalanx::launch::LoadSimConfig(config_path, overrides);
    if (!sc.ok()) return Fail(sc.status(), "simulate");
    auto sim = phalanx::launch::Simulator::Create(*sc);
    if (!sim.ok()) return Fail(sim.status(), "simulate");
    phalanx::launch::SimulateOptions so;
    so.out_dir = sim_out;
    so.threads = sim_threads;
    so.progress = &std::cout;
    auto r = (*sim)->RunAll(so);
    if (!r.ok()) return Fail(r.status(), "simulate");
    std::printf("results in %s (metrics.csv, summary.json, accuracy.png, staleness.png)\n",
                sim_out.c_str());
    return 0;
  }
  if (*aggregate) {
    phalanx::launch::AggregateCaseOptions ao;
    ao.gram_form = gram_form;
    ao.slices = slices;
    auto r = phalanx::launch::RunAggregateCase(case_path, ao);
    if (!r.ok()) return Fail(r.status(), "aggregate");
    std::cout << phalanx::launch::FormatCaseOutput(*r) << std::endl;
    return 0;
  }
  if (*experiment) {
    auto spec = phalanx::launch::LoadExperiment(experiment_path, experiment_overrides);
    if (!spec.ok()) return Fail(spec.status(), "experiment");
    phalanx::launch::ExperimentOptions eo;
    eo.out_dir = experiment_out;
    eo.self_exe = SelfExe(argv[0]);
    eo.quiet = quiet;
    eo.parallel = experiment_parallel;
    auto r = phalanx::launch::RunExperiment(*spec, eo, &g_stop);
    if (!r.ok()) return Fail(r.status(), "experiment");
    std::printf("%d cells: %d ran, %d finished earlier, %d failed; report in %s/summary.md\n",
                r->cells, r->ran, r->skipped, r->failed, experiment_out.c_str());
    return r->failed > 0 ? 1 : 0;
  }
  if (*local) {
    phalanx::launch::LaunchOptions o;
    o.config_path = config_path;
    o.overrides = overrides;
    o.out_dir = out_dir;
    o.self_exe = SelfExe(argv[0]);
    o.quiet = quiet;
    o.require_network_faults = require_network_faults;
    auto r = phalanx::launch::LaunchLocal(o, &g_stop);
    if (!r.ok()) return Fail(r.status(), "launch");
    std::printf("final test accuracy: %.4f after %d rounds in %.1f s (results in %s)\n",
                r->final_test_accuracy, r->rounds, r->wall_seconds, out_dir.c_str());
    return 0;
  }
  return 0;
}
