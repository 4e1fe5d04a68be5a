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
#include "launch/cli/command_words.h"
#include "launch/cli/roles.h"
#include "launch/cluster/local_launcher.h"
#include "launch/config/config.h"
#include "launch/experiment/experiment.h"
#include "launch/sim/simulator.h"
#include "ps/server.h"

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

// Every option of every subcommand; CLI11 writes into these.
struct Args {
  std::string config_path;
  std::vector<std::string> overrides;
  std::string scheduler;
  int rank = -1;  // -1: the scheduler assigns any free rank
  int port = 0;   // 0: any free port
  std::string log_level = "info";
  bool restore = false;
  std::string out_dir;
  bool quiet = false;
  bool require_network_faults = false;
  int max_restarts = -1;  // -1: cluster.max_restarts
  std::string case_path;
  bool gram_form = false;
  int slices = 3;
  std::string sim_out;
  int sim_threads = 0;
  std::string experiment_path;
  std::string experiment_out;
  int experiment_parallel = 0;
  std::vector<std::string> experiment_overrides;
  bool json = false;
};

// The subcommands, so main can ask which one was given.
struct Commands {
  CLI::App* sched;
  CLI::App* server;
  CLI::App* worker;
  CLI::App* local;
  CLI::App* aggregate;
  CLI::App* simulate;
  CLI::App* experiment;
  CLI::App* build_info;
};

// A TCP port: 0 (any free port) to 65535; CLI11 refuses anything else with
// the option's name, so --port 99999 never binds a random port.
const CLI::Range kPortRange(0, 65535, "PORT in [0, 65535]");

// A requested rank: -1 (the default, any free rank) or a rank >= 0.
CLI::Validator RankValidator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        int r = 0;
        if (!CLI::detail::lexical_cast(value, r)) return "rank must be an integer, got " + value;
        if (r < -1) return "rank must be >= 0 (or -1: any free rank), got " + value;
        return std::string();
      },
      "RANK >= 0");
}

void AddRoleCommands(CLI::App& app, Args& a, Commands& c) {
  auto add_config = [&](CLI::App* sub) {
    sub->add_option("--config", a.config_path, "job config (TOML)")->required();
    sub->add_option("--set", a.overrides, "override a config key: section.key=value");
  };
  c.sched = app.add_subcommand("scheduler", "run the membership service");
  add_config(c.sched);
  c.sched->add_option("--port", a.port, "port to bind (0 = any free port)")->check(kPortRange);

  // A node that joins the scheduler: server or worker.
  auto add_node = [&](const char* name, const char* help, const char* role) {
    CLI::App* sub = app.add_subcommand(name, help);
    add_config(sub);
    sub->add_option("--scheduler", a.scheduler, "scheduler endpoint tcp://host:port")->required();
    sub->add_option("--rank", a.rank, std::string("requested ") + role + " rank (-1 = any)")
        ->check(RankValidator());
    return sub;
  };
  c.server = add_node("server", "run one parameter-server shard", "server");
  c.server->add_flag("--restore", a.restore,
                     "load the newest valid snapshot of this rank from checkpoint.dir (or fail)");
  c.worker = add_node("worker", "run one training worker", "worker");

  auto* launch = app.add_subcommand("launch", "start a cluster");
  launch->require_subcommand(1);
  c.local = launch->add_subcommand("local", "scheduler, servers and workers on this machine");
  add_config(c.local);
  c.local->add_option("--out", a.out_dir, "output folder (metrics.csv, summary.json, plots, logs)")
      ->required();
  c.local->add_flag("--quiet", a.quiet, "no progress line");
  c.local->add_flag("--require-network-faults", a.require_network_faults,
                    "refuse the run when its network faults cannot be applied (no root/netns)");
  c.local
      ->add_option("--max-restarts", a.max_restarts,
                   "replace nodes that die on their own up to N times in all (servers restore "
                   "their newest snapshot); default cluster.max_restarts = 0: fail fast")
      ->check(CLI::Range(0, 10000));

  c.simulate = app.add_subcommand(
      "simulate",
      "federated clients on a virtual clock (FedAvg, async, FedAsync, FedBuff, FedFix)");
  add_config(c.simulate);
  c.simulate->add_option("--out", a.sim_out, "output folder (metrics.csv, summary.json, PNG plots)")
      ->required();
  c.simulate->add_option("--threads", a.sim_threads, "client-training threads (0 = all cores)");
}

void AddToolCommands(CLI::App& app, Args& a, Commands& c) {
  c.aggregate = app.add_subcommand(
      "aggregate", "run a reference case file (aggregator, pipeline, Flag, attack, MoNNA round)");
  c.aggregate->add_option("--input", a.case_path, "case file (JSON, as in shared/vectors)")
      ->required();
  c.aggregate->add_flag("--gram", a.gram_form, "compute through the two-phase Gram form");
  c.aggregate->add_option("--slices", a.slices, "row slices for --gram")->capture_default_str();

  c.experiment = app.add_subcommand(
      "experiment", "sweep a grid of local runs (rules x attacks x f x fault schedules x seeds)");
  c.experiment->add_option("--config", a.experiment_path, "experiment file (TOML)")->required();
  c.experiment->add_option("--out", a.experiment_out, "output folder (resumable)")->required();
  c.experiment->add_option("--parallel", a.experiment_parallel,
                           "runs at once (default: the file's)");
  c.experiment->add_option("--set", a.experiment_overrides,
                           "override an experiment key: key=value");
  c.experiment->add_flag("--quiet", a.quiet, "no per-run lines");

  c.build_info = app.add_subcommand(
      "build-info", "version, compiler, x86-64 level, this CPU and the kernel variants it runs");
  c.build_info->add_flag("--json", a.json, "one JSON object (as /status's \"build\")");
}

// Exits 1 when a kernel has no variant (PHX_KERNEL names one this CPU or
// build cannot run), so that a script checking a host learns it.
int RunBuildInfo(const Args& a) {
  const phalanx::BuildInfo& info = phalanx::ps::ProcessBuildInfo();
  if (a.json) {
    std::cout << phalanx::BuildInfoJson(info) << std::endl;
  } else {
    std::cout << phalanx::BuildInfoText(info);
  }
  for (const auto& k : info.kernels) {
    if (k.variant.rfind("none", 0) == 0) return 1;
  }
  return 0;
}

int RunRole(const Args& a, const Commands& c) {
  auto config = phalanx::LoadConfig(a.config_path, a.overrides);
  const char* what = *c.sched ? "scheduler" : *c.server ? "server" : "worker";
  if (!config.ok()) return Fail(config.status(), what);
  phalanx::Status s;
  if (*c.sched) {
    s = phalanx::launch::RunScheduler(*config, a.port, std::cout, &g_stop);
  } else if (*c.server) {
    s = phalanx::launch::RunServer(*config, a.scheduler, a.rank, std::cout, &g_stop, a.restore);
  } else {
    s = phalanx::launch::RunWorker(*config, a.scheduler, a.rank, std::cout, &g_stop);
  }
  return s.ok() ? 0 : Fail(s, what);
}

int RunSimulate(const Args& a) {
  auto sc = phalanx::launch::LoadSimConfig(a.config_path, a.overrides);
  if (!sc.ok()) return Fail(sc.status(), "simulate");
  auto sim = phalanx::launch::Simulator::Create(*sc);
  if (!sim.ok()) return Fail(sim.status(), "simulate");
  phalanx::launch::SimulateOptions so;
  so.out_dir = a.sim_out;
  so.threads = a.sim_threads;
  so.progress = &std::cout;
  auto r = (*sim)->RunAll(so);
  if (!r.ok()) return Fail(r.status(), "simulate");
  std::printf("results in %s (metrics.csv, summary.json, accuracy.png, staleness.png)\n",
              a.sim_out.c_str());
  return 0;
}

int RunAggregate(const Args& a) {
  phalanx::launch::AggregateCaseOptions ao;
  ao.gram_form = a.gram_form;
  ao.slices = a.slices;
  auto r = phalanx::launch::RunAggregateCase(a.case_path, ao);
  if (!r.ok()) return Fail(r.status(), "aggregate");
  std::cout << phalanx::launch::FormatCaseOutput(*r) << std::endl;
  return 0;
}

int RunExperiment(const Args& a, const char* argv0) {
  auto spec = phalanx::launch::LoadExperiment(a.experiment_path, a.experiment_overrides);
  if (!spec.ok()) return Fail(spec.status(), "experiment");
  phalanx::launch::ExperimentOptions eo;
  eo.out_dir = a.experiment_out;
  eo.self_exe = SelfExe(argv0);
  eo.quiet = a.quiet;
  eo.parallel = a.experiment_parallel;
  auto r = phalanx::launch::RunExperiment(*spec, eo, &g_stop);
  if (!r.ok()) return Fail(r.status(), "experiment");
  std::printf("%d cells: %d ran, %d finished earlier, %d failed; report in %s/summary.md\n",
              r->cells, r->ran, r->skipped, r->failed, a.experiment_out.c_str());
  return r->failed > 0 ? 1 : 0;
}

int RunLaunchLocal(const Args& a, const char* argv0) {
  phalanx::launch::LaunchOptions o;
  o.config_path = a.config_path;
  o.overrides = a.overrides;
  o.out_dir = a.out_dir;
  o.self_exe = SelfExe(argv0);
  o.quiet = a.quiet;
  o.require_network_faults = a.require_network_faults;
  o.max_restarts = a.max_restarts;
  auto r = phalanx::launch::LaunchLocal(o, &g_stop);
  if (!r.ok()) return Fail(r.status(), "launch");
  std::printf("final test accuracy: %.4f after %d rounds in %.1f s (results in %s)\n",
              r->final_test_accuracy, r->rounds, r->wall_seconds, a.out_dir.c_str());
  return 0;
}

// A mistyped command named, with the nearest real one (CLI11 alone says
// only "The following argument was not expected").
std::string UnknownCommand(CLI::App& app, int argc, char** argv) {
  auto names = [](CLI::App* parent) {
    std::vector<std::string> out;
    for (CLI::App* s : parent->get_subcommands([](CLI::App*) { return true; })) {
      out.push_back(s->get_name());
    }
    return out;
  };
  std::vector<std::pair<std::string, std::vector<std::string>>> subs;
  for (CLI::App* s : app.get_subcommands([](CLI::App*) { return true; })) {
    if (auto under = names(s); !under.empty()) subs.emplace_back(s->get_name(), under);
  }
  return phalanx::launch::UnknownCommandMessage(std::vector<std::string>(argv + 1, argv + argc),
                                                names(&app), subs, {"--log-level"});
}

}  // namespace

int main(int argc, char** argv) {
  InstallSignals();
  auto logger = spdlog::stderr_color_mt("phalanx");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%H:%M:%S.%e] [%l] %v");

  CLI::App app{"Phalanx: a parameter server with robust aggregation"};
  app.require_subcommand(1);
  Args a;
  Commands c{};
  // spdlog reads an unknown level as "off": refuse it rather than go silent.
  app.add_option("--log-level", a.log_level, "trace|debug|info|warn|error|critical|off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  AddRoleCommands(app, a, c);
  AddToolCommands(app, a, c);
  if (std::string typo = UnknownCommand(app, argc, argv); !typo.empty()) {
    std::cerr << "phalanx: " << typo << "\nRun 'phalanx --help' for usage.\n";
    return static_cast<int>(CLI::ExitCodes::ExtrasError);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  spdlog::set_level(spdlog::level::from_str(a.log_level));

  if (*c.sched || *c.server || *c.worker) return RunRole(a, c);
  if (*c.simulate) return RunSimulate(a);
  if (*c.aggregate) return RunAggregate(a);
  if (*c.experiment) return RunExperiment(a, argv[0]);
  if (*c.local) return RunLaunchLocal(a, argv[0]);
  if (*c.build_info) return RunBuildInfo(a);
  return 0;
}
