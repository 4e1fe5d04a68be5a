#include "launch/local_launcher.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/plot.h"

namespace phalanx::launch {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Child {
  std::string name;  // "scheduler", "server-0", "worker-3"
  pid_t pid = -1;
  int stdout_fd = -1;   // read end, or -1
  std::string partial;  // unfinished line
  bool exited = false;
  int status = 0;
};

// Starts `args` with stdout to a pipe (when capture) and stderr to log_path.
Result<Child> Spawn(const std::string& name, const std::vector<std::string>& args,
                    const std::string& log_path, bool capture) {
  int fds[2] = {-1, -1};
  if (capture && pipe2(fds, O_CLOEXEC) != 0) return Internal("pipe failed");
  int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log < 0) return Unavailable("cannot open log file " + log_path);
  pid_t pid = fork();
  if (pid < 0) return Internal("fork failed");
  if (pid == 0) {
    // Child: own process group member of ours, so Ctrl-C reaches it too; the
    // launcher still sends SIGTERM explicitly.
    if (capture)
      dup2(fds[1], 1);
    else
      dup2(log, 1);
    dup2(log, 2);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(log);
  Child c;
  c.name = name;
  c.pid = pid;
  if (capture) {
    close(fds[1]);
    c.stdout_fd = fds[0];
  }
  return c;
}

void KillAll(std::vector<Child>& children, int sig) {
  for (auto& c : children) {
    if (!c.exited) kill(c.pid, sig);
  }
}

// Reaps exited children without blocking.
void Reap(std::vector<Child>& children) {
  for (auto& c : children) {
    if (c.exited) continue;
    int st = 0;
    if (waitpid(c.pid, &st, WNOHANG) == c.pid) {
      c.exited = true;
      c.status = st;
    }
  }
}

void StopAll(std::vector<Child>& children) {
  KillAll(children, SIGTERM);
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < deadline) {
    Reap(children);
    bool all = true;
    for (auto& c : children) all &= c.exited;
    if (all) return;
    usleep(20000);
  }
  KillAll(children, SIGKILL);
  for (auto& c : children) {
    if (!c.exited) {
      waitpid(c.pid, &c.status, 0);
      c.exited = true;
    }
  }
}

std::string DescribeExit(int st) {
  if (WIFEXITED(st)) return "exit code " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return std::string("signal ") + strsignal(WTERMSIG(st));
  return "unknown status";
}

bool Failed(const Child& c) { return !WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0; }

// Reads complete lines available on fd; returns false at EOF.
bool ReadLines(Child& c, std::vector<std::string>* lines) {
  char buf[65536];
  ssize_t n = read(c.stdout_fd, buf, sizeof(buf));
  if (n <= 0) return n < 0 && errno == EAGAIN;
  c.partial.append(buf, static_cast<size_t>(n));
  size_t pos;
  while ((pos = c.partial.find('\n')) != std::string::npos) {
    lines->push_back(c.partial.substr(0, pos));
    c.partial.erase(0, pos + 1);
  }
  return true;
}

std::string Tail(const std::string& path, size_t max_lines) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string l;
  while (std::getline(in, l)) lines.push_back(l);
  std::string out;
  size_t from = lines.size() > max_lines ? lines.size() - max_lines : 0;
  for (size_t i = from; i < lines.size(); ++i) out += "    " + lines[i] + "\n";
  return out;
}

struct Row {
  int round = 0;
  double wall = 0;
  double loss_sum = 0;
  int loss_n = 0;
  double accuracy = -1;
  double rows_per_s = 0;
};

}  // namespace

Result<LaunchResult> LaunchLocal(const LaunchOptions& options, const std::atomic<bool>* stop) {
  PHX_ASSIGN_OR_RETURN(JobConfig config, LoadConfig(options.config_path, options.overrides));
  // Fail early, before any process starts, when the data is missing.
  if (config.data.dataset != "libsvm" && !fs::exists(config.data.path)) {
    return NotFound("data set folder '" + config.data.path + "' not found; run scripts/setup.sh");
  }
  std::error_code ec;
  fs::create_directories(fs::path(options.out_dir) / "logs", ec);
  if (ec)
    return Unavailable("cannot create output folder " + options.out_dir + ": " + ec.message());
  {
    std::ifstream in(options.config_path);
    std::ofstream out(fs::path(options.out_dir) / "config.toml");
    out << in.rdbuf();
    for (const auto& o : options.overrides) out << "# --set " << o << "\n";
  }
  const std::string logs = (fs::path(options.out_dir) / "logs").string();
  std::vector<std::string> common = {"--config", options.config_path};
  for (const auto& o : options.overrides) {
    common.push_back("--set");
    common.push_back(o);
  }
  auto args_for = [&](std::vector<std::string> head) {
    head.insert(head.begin(), options.self_exe);
    head.insert(head.end(), common.begin(), common.end());
    return head;
  };

  std::vector<Child> children;
  auto fail = [&](Status s) -> Result<LaunchResult> {
    StopAll(children);
    return s;
  };
  auto start = Clock::now();

  // Scheduler first: it prints the endpoint it bound.
  PHX_ASSIGN_OR_RETURN(Child sched, Spawn("scheduler", args_for({"scheduler", "--port", "0"}),
                                          logs + "/scheduler.log", true));
  children.push_back(sched);
  std::string endpoint;
  while (endpoint.empty()) {
    pollfd p{children[0].stdout_fd, POLLIN, 0};
    if (poll(&p, 1, 200) > 0) {
      std::vector<std::string> lines;
      if (!ReadLines(children[0], &lines)) {
        return fail(Internal("scheduler exited at start:\n" + Tail(logs + "/scheduler.log", 10)));
      }
      for (const auto& l : lines) {
        if (l.rfind("PHX_ENDPOINT ", 0) == 0) endpoint = l.substr(13);
      }
    }
    Reap(children);
    if (children[0].exited) {
      return fail(Internal("scheduler exited at start (" + DescribeExit(children[0].status) +
                           "):\n" + Tail(logs + "/scheduler.log", 10)));
    }
    if (Clock::now() - start > std::chrono::seconds(30)) {
      return fail(DeadlineExceeded("scheduler did not report its endpoint"));
    }
    if (stop && stop->load()) return fail(Cancelled("interrupted"));
  }
  for (int s = 0; s < config.cluster.servers; ++s) {
    auto c = Spawn("server-" + std::to_string(s),
                   args_for({"server", "--scheduler", endpoint, "--rank", std::to_string(s)}),
                   logs + "/server-" + std::to_string(s) + ".log", false);
    if (!c.ok()) return fail(c.status());
    children.push_back(*c);
  }
  for (int w = 0; w < config.cluster.workers; ++w) {
    auto c = Spawn("worker-" + std::to_string(w),
                   args_for({"worker", "--scheduler", endpoint, "--rank", std::to_string(w)}),
                   logs + "/worker-" + std::to_string(w) + ".log", true);
    if (!c.ok()) return fail(c.status());
    children.push_back(*c);
  }
  if (!options.quiet) {
    std::printf("phalanx: %s, %d servers, %d workers, %s, aggregator %s; logs in %s\n",
                config.model.kind.c_str(), config.cluster.servers, config.cluster.workers,
                config.cluster.mode.c_str(), config.aggregator.name.c_str(), logs.c_str());
    std::fflush(stdout);
  }

  std::map<int, Row> rows;  // by round
  double final_acc = -1;
  int last_round = 0;
  double last_loss = 0;
  bool tty = isatty(1);
  Clock::time_point servers_alone_since{};
  auto last_print = Clock::now() - std::chrono::seconds(10);

  while (true) {
    if (stop && stop->load()) {
      StopAll(children);
      return Cancelled("interrupted; stopped every process");
    }
    std::vector<pollfd> fds;
    std::vector<size_t> idx;
    for (size_t i = 0; i < children.size(); ++i) {
      if (children[i].stdout_fd >= 0) {
        fds.push_back({children[i].stdout_fd, POLLIN, 0});
        idx.push_back(i);
      }
    }
    if (!fds.empty())
      poll(fds.data(), fds.size(), 100);
    else
      usleep(100000);
    for (size_t k = 0; k < fds.size(); ++k) {
      if (!(fds[k].revents & (POLLIN | POLLHUP))) continue;
      Child& c = children[idx[k]];
      std::vector<std::string> lines;
      if (!ReadLines(c, &lines)) {
        close(c.stdout_fd);
        c.stdout_fd = -1;
      }
      for (const auto& l : lines) {
        bool progress = l.rfind("PHX_PROGRESS ", 0) == 0;
        bool result = l.rfind("PHX_RESULT ", 0) == 0;
        if (!progress && !result) continue;
        auto j = nlohmann::json::parse(l.substr(progress ? 13 : 11), nullptr, false);
        if (j.is_discarded()) continue;
        if (result) {
          final_acc = j.value("final_test_accuracy", -1.0);
          continue;
        }
        int round = j.value("round", 0);
        Row& r = rows[round];
        r.round = round;
        r.loss_sum += j.value("loss", 0.0);
        r.loss_n++;
        if (j.value("rank", -1) == 0) {
          r.wall = j.value("wall", 0.0);
          r.rows_per_s = j.value("rows_per_s", 0.0);
          if (j.contains("test_accuracy")) r.accuracy = j["test_accuracy"].get<double>();
        }
        if (round >= last_round) {
          last_round = round;
          last_loss = r.loss_sum / r.loss_n;
        }
      }
    }
    Reap(children);
    // A failed child stops the job, except workers when failures are tolerated.
    for (auto& c : children) {
      if (!c.exited || !Failed(c)) continue;
      bool is_worker = c.name.rfind("worker", 0) == 0;
      if (is_worker && config.cluster.tolerate_worker_failures) continue;
      std::string log = logs + "/" + c.name + ".log";
      return fail(Aborted(c.name + " failed (" + DescribeExit(c.status) + "); last lines of " +
                          log + ":\n" + Tail(log, 12)));
    }
    bool all_done = true;
    for (auto& c : children) all_done &= c.exited;
    // Backstop: once the scheduler and every worker are gone, servers get a
    // grace period to exit on their own, then are stopped.
    bool only_servers_left = !all_done;
    for (auto& c : children) {
      if (c.name.rfind("server", 0) != 0) only_servers_left &= c.exited;
    }
    if (only_servers_left) {
      if (servers_alone_since == Clock::time_point{}) servers_alone_since = Clock::now();
      if (Clock::now() - servers_alone_since > std::chrono::seconds(5)) {
        spdlog::warn("servers still running after the scheduler and workers exited; stopping them");
        StopAll(children);
        for (auto& c : children) {
          if (c.name.rfind("server", 0) == 0) c.status = 0;  // stopped by us, not failed
        }
        all_done = true;
      }
    }
    if (!options.quiet &&
        (Clock::now() - last_print > std::chrono::milliseconds(tty ? 250 : 5000))) {
      double acc = -1;
      for (auto it = rows.rbegin(); it != rows.rend(); ++it) {
        if (it->second.accuracy >= 0) {
          acc = it->second.accuracy;
          break;
        }
      }
      double el = std::chrono::duration<double>(Clock::now() - start).count();
      double rps = rows.empty() ? 0 : rows.rbegin()->second.rows_per_s;
      std::printf("%sround %5d/%d  loss %.4f  test acc %s  rows/s %.3g  %.1fs%s", tty ? "\r" : "",
                  last_round, config.train.rounds, last_loss,
                  acc >= 0 ? fmt::format("{:.4f}", acc).c_str() : "  -   ", rps, el,
                  tty ? "   " : "\n");
      std::fflush(stdout);
      last_print = Clock::now();
    }
    if (all_done) break;
  }
  if (!options.quiet && tty) std::printf("\n");
  double wall = std::chrono::duration<double>(Clock::now() - start).count();

  // metrics.csv, summary.json, training.png
  fs::path out(options.out_dir);
  {
    std::ofstream csv(out / "metrics.csv");
    csv << "round,wall_seconds,train_loss,test_accuracy,rows_per_second\n";
    for (auto& [round, r] : rows) {
      csv << round << "," << r.wall << "," << (r.loss_n ? r.loss_sum / r.loss_n : 0) << ",";
      if (r.accuracy >= 0) csv << r.accuracy;
      csv << "," << r.rows_per_s << "\n";
    }
  }
  LaunchResult res;
  res.final_test_accuracy = final_acc;
  res.rounds = last_round;
  res.wall_seconds = wall;
  int failed_workers = 0;
  for (auto& c : children) failed_workers += c.name.rfind("worker", 0) == 0 && Failed(c);
  nlohmann::json summary{{"final_test_accuracy", final_acc},
                         {"rounds", last_round},
                         {"wall_seconds", wall},
                         {"final_train_loss", last_loss},
                         {"servers", config.cluster.servers},
                         {"workers", config.cluster.workers},
                         {"failed_workers", failed_workers},
                         {"mode", config.cluster.mode},
                         {"model", config.model.kind},
                         {"dataset", config.data.dataset},
                         {"aggregator", config.aggregator.name},
                         {"config", options.config_path},
                         {"overrides", options.overrides}};
  std::ofstream(out / "summary.json") << summary.dump(2) << "\n";
  PlotSpec plot;
  plot.csv_path = (out / "metrics.csv").string();
  plot.output_path = (out / "training.png").string();
  plot.title =
      config.model.kind + " on " + config.data.dataset + " (" + config.aggregator.name + ")";
  plot.x_column = "round";
  plot.series = {{"train_loss", "train loss", PlotAxis::kLeft, ""},
                 {"test_accuracy", "test accuracy", PlotAxis::kRight, ""}};
  plot.y_label = "loss";
  plot.y2_label = "accuracy";
  Status ps = PlotLines(plot);
  if (!ps.ok()) spdlog::warn("plot not written: {}", ps.ToString());
  if (final_acc < 0) {
    return Internal("training finished without a final accuracy; see " + logs + "/worker-0.log");
  }
  return res;
}

}  // namespace phalanx::launch
