#include "launch/experiment/experiment.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "launch/process/child_process.h"
#include "launch/report/plot.h"
#include "launch/report/run_report.h"

namespace phalanx::launch {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

Result<std::vector<std::string>> ReadStrings(const toml::table& t, const std::string& key) {
  std::vector<std::string> out;
  const toml::node* n = t.get(key);
  if (!n) return out;
  const toml::array* arr = n->as_array();
  if (!arr) return InvalidArgument("experiment." + key + " must be an array of strings");
  for (const auto& e : *arr) {
    auto v = e.value<std::string>();
    if (!v) return InvalidArgument("experiment." + key + " must be an array of strings");
    out.push_back(*v);
  }
  return out;
}

Result<std::vector<int64_t>> ReadInts(const toml::table& t, const std::string& key) {
  std::vector<int64_t> out;
  const toml::node* n = t.get(key);
  if (!n) return out;
  const toml::array* arr = n->as_array();
  if (!arr) return InvalidArgument("experiment." + key + " must be an array of integers");
  for (const auto& e : *arr) {
    auto v = e.value<int64_t>();
    if (!v) return InvalidArgument("experiment." + key + " must be an array of integers");
    out.push_back(*v);
  }
  return out;
}

// Applies `key=value` overrides to the [experiment] table.
Status ApplyExperimentOverride(toml::table& exp, const std::string& item) {
  auto eq = item.find('=');
  if (eq == std::string::npos || eq == 0) {
    return InvalidArgument("--set expects experiment.key=value, got '" + item + "'");
  }
  std::string key = item.substr(0, eq);
  if (key.rfind("experiment.", 0) == 0) key = key.substr(11);
  try {
    toml::table parsed = toml::parse("v = " + item.substr(eq + 1));
    exp.insert_or_assign(key, *parsed.get("v"));
  } catch (const toml::parse_error&) {
    exp.insert_or_assign(key, item.substr(eq + 1));
  }
  return Status::Ok();
}

bool ValidName(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '+';
  });
}

// A finished cell has a summary.json with a final accuracy and a "done" marker.
bool CellFinished(const fs::path& dir) {
  return fs::exists(dir / "done") && fs::exists(dir / "summary.json");
}

struct RunningCell {
  ExperimentCell cell;
  pid_t pid = -1;
  Clock::time_point start;
};

// Starts `args` with stdout and stderr to log_path; returns the pid.
struct Row {
  ExperimentCell cell;
  bool ok = false;
  double accuracy = NAN;
  int rounds = 0;
  double wall = NAN;
  int64_t updates_lost = 0;
  int faults = 0;
  std::string dir;
};

std::string Fmt(double v, int digits = 4) {
  if (!std::isfinite(v)) return "nan";
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

Row ReadRow(const ExperimentCell& cell, const fs::path& dir) {
  Row r;
  r.cell = cell;
  r.dir = dir.string();
  std::ifstream in(dir / "summary.json");
  if (!in) return r;
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return r;
  // Fields written by other tools may be null or missing: read each leniently.
  auto number = [&](const char* key, double fallback) {
    return j.contains(key) && j[key].is_number() ? j[key].get<double>() : fallback;
  };
  r.accuracy = number("final_test_accuracy", NAN);
  r.rounds = static_cast<int>(number("rounds", 0));
  r.wall = number("wall_seconds", NAN);
  r.updates_lost = static_cast<int64_t>(number("updates_lost", 0));
  for (const char* key : {"faults_applied", "faults"}) {
    if (!j.contains(key)) continue;
    const auto& fa = j[key];
    r.faults = fa.is_array() ? static_cast<int>(fa.size()) : static_cast<int>(number(key, 0));
    break;
  }
  r.ok = CellFinished(dir) && r.accuracy >= 0;
  return r;
}

// True when the base config or the grid's overrides schedule snapshots.
bool TakesSnapshots(const ExperimentSpec& spec) {
  auto mentions = [](const std::string& text) {
    return text.find("every_rounds") != std::string::npos ||
           text.find("every_seconds") != std::string::npos;
  };
  for (const auto& o : spec.overrides) {
    if (o.rfind("checkpoint.", 0) == 0 && mentions(o)) return true;
  }
  for (const auto& [rule, items] : spec.rule_overrides) {
    for (const auto& o : items) {
      if (o.rfind("checkpoint.", 0) == 0 && mentions(o)) return true;
    }
  }
  std::ifstream base(spec.base_config);
  std::stringstream text;
  text << base.rdbuf();
  return mentions(text.str());
}

}  // namespace

std::string ExperimentCell::Id() const {
  return rule + "__" + attack + "__f" + std::to_string(f) + "__" + schedule + "__s" +
         std::to_string(seed);
}

Result<ExperimentSpec> LoadExperiment(const std::string& path,
                                      const std::vector<std::string>& overrides) {
  if (!fs::exists(path)) return NotFound("experiment file not found: " + path);
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << "experiment file " << path << ": " << e.description() << " at line "
       << e.source().begin.line;
    return InvalidArgument(os.str());
  }
  for (auto& [k, v] : root) {
    std::string key(k.str());
    if (key != "experiment" && key != "rule_set" && key != "schedule_files") {
      return InvalidArgument("experiment file " + path + ": unknown section [" + key +
                             "] (expected [experiment], [rule_set], [schedule_files])");
    }
  }
  toml::table* exp = root["experiment"].as_table();
  if (!exp) return InvalidArgument("experiment file " + path + " has no [experiment] section");
  for (const auto& o : overrides) PHX_RETURN_IF_ERROR(ApplyExperimentOverride(*exp, o));

  static const std::set<std::string> kKeys = {"name", "base",  "parallel",  "rules", "attacks",
                                              "f",    "seeds", "schedules", "set"};
  for (auto& [k, v] : *exp) {
    if (!kKeys.count(std::string(k.str()))) {
      return InvalidArgument("experiment." + std::string(k.str()) + " is not a known key");
    }
  }
  ExperimentSpec s;
  s.source = fs::absolute(path).string();
  fs::path dir = fs::absolute(path).parent_path();
  s.name =
      exp->get("name") ? exp->get("name")->value_or(std::string()) : fs::path(path).stem().string();
  auto base = exp->get("base") ? exp->get("base")->value<std::string>() : std::nullopt;
  if (!base) return InvalidArgument("experiment.base (the job config) is required");
  s.base_config = fs::path(*base).is_absolute() ? *base : (dir / *base).lexically_normal().string();
  if (!fs::exists(s.base_config)) return NotFound("experiment.base not found: " + s.base_config);
  if (const toml::node* p = exp->get("parallel")) {
    auto v = p->value<int64_t>();
    if (!v || *v < 1 || *v > 64) return InvalidArgument("experiment.parallel must be in [1, 64]");
    s.parallel = static_cast<int>(*v);
  }
  PHX_ASSIGN_OR_RETURN(auto rules, ReadStrings(*exp, "rules"));
  PHX_ASSIGN_OR_RETURN(auto attacks, ReadStrings(*exp, "attacks"));
  PHX_ASSIGN_OR_RETURN(auto schedules, ReadStrings(*exp, "schedules"));
  PHX_ASSIGN_OR_RETURN(auto f, ReadInts(*exp, "f"));
  PHX_ASSIGN_OR_RETURN(auto seeds, ReadInts(*exp, "seeds"));
  PHX_ASSIGN_OR_RETURN(s.overrides, ReadStrings(*exp, "set"));
  if (!rules.empty()) s.rules = rules;
  if (!attacks.empty()) s.attacks = attacks;
  if (!schedules.empty()) s.schedules = schedules;
  if (!f.empty()) s.f.assign(f.begin(), f.end());
  if (!seeds.empty()) {
    s.seeds.clear();
    for (int64_t v : seeds) {
      if (v < 0) return InvalidArgument("experiment.seeds must not be negative");
      s.seeds.push_back(static_cast<uint64_t>(v));
    }
  }
  for (int v : s.f) {
    if (v < 0) return InvalidArgument("experiment.f must not be negative");
  }
  auto check_names = [](const std::vector<std::string>& v, const char* what) -> Status {
    std::set<std::string> seen;
    for (const auto& x : v) {
      if (!ValidName(x)) {
        return InvalidArgument(std::string("experiment.") + what + ": '" + x +
                               "' is not a valid name (letters, digits, - _ +)");
      }
      if (!seen.insert(x).second) {
        return InvalidArgument(std::string("experiment.") + what + " lists '" + x + "' twice");
      }
    }
    return Status::Ok();
  };
  PHX_RETURN_IF_ERROR(check_names(s.rules, "rules"));
  PHX_RETURN_IF_ERROR(check_names(s.attacks, "attacks"));
  PHX_RETURN_IF_ERROR(check_names(s.schedules, "schedules"));
  for (const auto& o : s.overrides) {
    if (o.find('=') == std::string::npos) {
      return InvalidArgument("experiment.set item '" + o + "' is not section.key=value");
    }
  }
  if (toml::table* rs = root["rule_set"].as_table()) {
    for (auto& [k, v] : *rs) {
      std::string rule(k.str());
      const toml::array* arr = v.as_array();
      if (const toml::table* variant = v.as_table()) {
        auto base_rule =
            variant->get("rule") ? variant->get("rule")->value<std::string>() : std::nullopt;
        if (!base_rule)
          return InvalidArgument("rule_set." + rule + ".rule (a rule name) is required");
        s.rule_alias[rule] = *base_rule;
        arr = variant->get("set") ? variant->get("set")->as_array() : nullptr;
        for (auto& [vk, vv] : *variant) {
          if (vk.str() != "rule" && vk.str() != "set") {
            return InvalidArgument("rule_set." + rule + "." + std::string(vk.str()) +
                                   " is not a known key (rule, set)");
          }
        }
        if (!arr) continue;
      }
      if (!arr) return InvalidArgument("rule_set." + rule + " must be an array of strings");
      for (const auto& e : *arr) {
        auto item = e.value<std::string>();
        if (!item || item->find('=') == std::string::npos) {
          return InvalidArgument("rule_set." + rule + " must hold section.key=value strings");
        }
        s.rule_overrides[rule].push_back(*item);
      }
    }
  }
  if (toml::table* sf = root["schedule_files"].as_table()) {
    for (auto& [k, v] : *sf) {
      std::string name(k.str());
      auto file = v.value<std::string>();
      if (!file) return InvalidArgument("schedule_files." + name + " must be a path");
      fs::path p = fs::path(*file).is_absolute() ? fs::path(*file) : dir / *file;
      if (!fs::exists(p)) return NotFound("schedule_files." + name + " not found: " + p.string());
      s.schedule_files[name] = p.lexically_normal().string();
    }
  }
  for (const auto& sch : s.schedules) {
    if (sch != "none" && !s.schedule_files.count(sch)) {
      return InvalidArgument("experiment.schedules names '" + sch +
                             "' but [schedule_files] has no file for it");
    }
  }
  return s;
}

std::vector<ExperimentCell> ExpandGrid(const ExperimentSpec& spec) {
  std::vector<ExperimentCell> cells;
  // Seeds outermost: a partial sweep covers the whole grid once before repeating.
  for (uint64_t seed : spec.seeds)
    for (const auto& schedule : spec.schedules)
      for (int f : spec.f)
        for (const auto& attack : spec.attacks)
          for (const auto& rule : spec.rules) cells.push_back({rule, attack, f, schedule, seed});
  return cells;
}

std::vector<std::string> CellOverrides(const ExperimentSpec& spec, const ExperimentCell& cell) {
  std::vector<std::string> o = spec.overrides;
  auto alias = spec.rule_alias.find(cell.rule);
  o.push_back("aggregator.name=" + (alias == spec.rule_alias.end() ? cell.rule : alias->second));
  o.push_back("aggregator.f=" + std::to_string(cell.f));
  bool attacked = cell.attack != "none" && cell.f > 0;
  o.push_back("byzantine.count=" + std::to_string(attacked ? cell.f : 0));
  if (attacked) o.push_back("byzantine.attack=" + cell.attack);
  o.push_back("train.seed=" + std::to_string(cell.seed));
  o.push_back("data.seed=" + std::to_string(cell.seed));
  auto it = spec.rule_overrides.find(cell.rule);
  if (it != spec.rule_overrides.end()) o.insert(o.end(), it->second.begin(), it->second.end());
  return o;
}

Result<ExperimentSummary> RunExperiment(const ExperimentSpec& spec,
                                        const ExperimentOptions& options,
                                        const std::atomic<bool>* stop) {
  fs::path out(options.out_dir);
  std::error_code ec;
  fs::create_directories(out / "runs", ec);
  if (ec) return Unavailable("cannot create " + (out / "runs").string() + ": " + ec.message());
  fs::copy_file(spec.source, out / "experiment.toml", fs::copy_options::overwrite_existing, ec);

  auto cells = ExpandGrid(spec);
  ExperimentSummary sum;
  sum.cells = static_cast<int>(cells.size());
  std::deque<ExperimentCell> todo;
  for (const auto& c : cells) {
    if (CellFinished(out / "runs" / c.Id())) {
      ++sum.skipped;
    } else {
      todo.push_back(c);
    }
  }
  int parallel = options.parallel > 0 ? options.parallel : spec.parallel;
  if (!options.quiet) {
    std::printf("experiment %s: %d cells (%d finished earlier), %d at a time -> %s\n",
                spec.name.c_str(), sum.cells, sum.skipped, parallel, out.string().c_str());
    std::fflush(stdout);
  }
  std::vector<RunningCell> running;
  int done = sum.skipped;
  auto start = Clock::now();
  while ((!todo.empty() || !running.empty())) {
    bool stopping = stop && stop->load();
    while (!stopping && !todo.empty() && static_cast<int>(running.size()) < parallel) {
      ExperimentCell c = todo.front();
      todo.pop_front();
      fs::path dir = out / "runs" / c.Id();
      fs::remove_all(dir, ec);  // an unfinished earlier attempt
      fs::create_directories(dir, ec);
      std::string config = spec.base_config;
      if (c.schedule != "none") {
        // The run's config = base config + the schedule's [[faults]] tables.
        std::ifstream base(spec.base_config), faults(spec.schedule_files.at(c.schedule));
        std::ofstream merged(dir / "input.toml");
        merged << base.rdbuf() << "\n\n# fault schedule '" << c.schedule << "'\n"
               << faults.rdbuf() << "\n";
        config = (dir / "input.toml").string();
      }
      std::vector<std::string> args = {options.self_exe, "launch", "local", "--quiet",
                                       "--config",       config,   "--out", dir.string()};
      // Snapshots (when the run takes any) stay inside the cell's folder, so
      // parallel cells never read each other's; `set` may override it.
      if (TakesSnapshots(spec)) {
        args.push_back("--set");
        args.push_back("checkpoint.dir=\"" + (dir / "checkpoints").string() + "\"");
      }
      for (const auto& o : CellOverrides(spec, c)) {
        args.push_back("--set");
        args.push_back(o);
      }
      // Own process group, so stopping a cell reaches its whole cluster.
      ChildOptions co;
      co.log_path = (dir / "launch.log").string();
      co.new_process_group = true;
      PHX_ASSIGN_OR_RETURN(StartedChild child, StartChild(args, co));
      running.push_back({c, child.pid, Clock::now()});
    }
    if (running.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    for (size_t i = 0; i < running.size();) {
      int st = 0;
      if (stopping) {
        kill(-running[i].pid, SIGTERM);
        waitpid(running[i].pid, &st, 0);
        running.erase(running.begin() + static_cast<long>(i));
        continue;
      }
      if (waitpid(running[i].pid, &st, WNOHANG) != running[i].pid) {
        ++i;
        continue;
      }
      const ExperimentCell& c = running[i].cell;
      fs::path dir = out / "runs" / c.Id();
      bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0 && fs::exists(dir / "summary.json");
      if (ok) {
        std::ofstream(dir / "done") << "ok\n";
        ++sum.ran;
      } else {
        ++sum.failed;
      }
      ++done;
      if (!options.quiet) {
        Row r = ReadRow(c, dir);
        double secs = std::chrono::duration<double>(Clock::now() - running[i].start).count();
        double el = std::chrono::duration<double>(Clock::now() - start).count();
        std::printf("[%d/%d] %-16s %-11s f=%d %-10s seed %llu  %s  (%.0f s, %.0f s elapsed)\n",
                    done, sum.cells, c.rule.c_str(), c.attack.c_str(), c.f, c.schedule.c_str(),
                    static_cast<unsigned long long>(c.seed),
                    ok ? ("acc " + Fmt(r.accuracy)).c_str()
                       : ("FAILED, see " + (dir / "launch.log").string()).c_str(),
                    secs, el);
        std::fflush(stdout);
      }
      running.erase(running.begin() + static_cast<long>(i));
    }
    if (stopping && running.empty()) break;
  }
  PHX_RETURN_IF_ERROR(WriteExperimentReport(spec, options.out_dir));
  if (stop && stop->load()) return Cancelled("experiment interrupted; rerun to resume");
  return sum;
}

Status WriteExperimentReport(const ExperimentSpec& spec, const std::string& out_dir) {
  fs::path out(out_dir);
  std::vector<Row> rows;
  for (const auto& c : ExpandGrid(spec)) {
    fs::path dir = out / "runs" / c.Id();
    if (fs::exists(dir)) rows.push_back(ReadRow(c, dir));
  }
  {
    CsvWriter csv(out / "results.csv",
                  "rule,attack,f,schedule,seed,status,final_test_accuracy,rounds,wall_seconds,"
                  "updates_lost,faults_applied,overrides,run_dir");
    if (!csv.ok()) return Unavailable("cannot write " + csv.path().string());
    for (const auto& r : rows) {
      std::string ov;
      for (const auto& o : CellOverrides(spec, r.cell)) ov += (ov.empty() ? "" : " ") + o;
      csv.Row(r.cell.rule, r.cell.attack, r.cell.f, r.cell.schedule, r.cell.seed,
              r.ok ? "ok" : "failed", Fmt(r.accuracy), r.rounds, Fmt(r.wall, 1), r.updates_lost,
              r.faults, CsvQuote(ov), CsvQuote(r.dir));
    }
  }
  // summary.md and plots: one block per (f, schedule).
  std::ofstream md(out / "summary.md");
  md << "# Experiment " << spec.name << "\n\nFinal test accuracy, mean ± std over seeds ("
     << spec.seeds.size() << " seed" << (spec.seeds.size() > 1 ? "s" : "") << "); base config `"
     << fs::path(spec.base_config).filename().string() << "`. A blank cell did not finish.\n";
  for (const auto& schedule : spec.schedules) {
    for (int f : spec.f) {
      std::string tag = "f" + std::to_string(f) + (schedule == "none" ? "" : "-" + schedule);
      md << "\n## f = " << f << ", fault schedule: " << schedule << "\n\n| rule |";
      for (const auto& a : spec.attacks) md << " " << a << " |";
      md << "\n|---|";
      for (size_t i = 0; i < spec.attacks.size(); ++i) md << "---|";
      md << "\n";
      HeatmapSpec heat;
      heat.output_path = (out / ("heatmap-" + tag + ".png")).string();
      heat.title = "Final test accuracy (f = " + std::to_string(f) + ", faults: " + schedule + ")";
      heat.row_labels = spec.rules;
      heat.col_labels = spec.attacks;
      heat.x_label = "attack";
      heat.y_label = "rule";
      heat.colorbar_label = "accuracy";
      bool any = false;
      for (const auto& rule : spec.rules) {
        md << "| " << rule << " |";
        std::vector<double> hrow;
        for (const auto& attack : spec.attacks) {
          std::vector<double> v;
          for (const auto& r : rows) {
            if (r.ok && r.cell.rule == rule && r.cell.attack == attack && r.cell.f == f &&
                r.cell.schedule == schedule)
              v.push_back(r.accuracy);
          }
          if (v.empty()) {
            md << "  |";
            hrow.push_back(NAN);
            continue;
          }
          any = true;
          double mean = 0, var = 0;
          for (double x : v) mean += x;
          mean /= v.size();
          for (double x : v) var += (x - mean) * (x - mean);
          double sd = v.size() > 1 ? std::sqrt(var / (v.size() - 1)) : 0;
          md << " " << Fmt(mean);
          if (v.size() > 1) md << " ± " << Fmt(sd);
          md << " |";
          hrow.push_back(mean);
        }
        md << "\n";
        heat.values.push_back(hrow);
      }
      if (!any) continue;
      Status hs = PlotHeatmap(heat);
      if (!hs.ok()) spdlog::warn("heatmap not written: {}", hs.ToString());
      // Accuracy vs round, one plot per attack, one curve per rule (first seed).
      for (const auto& attack : spec.attacks) {
        PlotSpec plot;
        plot.output_path = (out / ("accuracy-" + attack + "-" + tag + ".png")).string();
        plot.title = "Test accuracy under " + attack + " (f = " + std::to_string(f) +
                     ", faults: " + schedule + ")";
        plot.x_column = "round";
        plot.y_label = "test accuracy";
        for (const auto& rule : spec.rules) {
          ExperimentCell c{rule, attack, f, schedule, spec.seeds.front()};
          fs::path csv = out / "runs" / c.Id() / "metrics.csv";
          if (CellFinished(out / "runs" / c.Id()) && fs::exists(csv)) {
            plot.series.push_back({"test_accuracy", rule, PlotAxis::kLeft, csv.string()});
          }
        }
        if (plot.series.empty()) continue;
        plot.csv_path = plot.series.front().csv_path;
        Status ps = PlotLines(plot);
        if (!ps.ok()) spdlog::warn("plot not written: {}", ps.ToString());
      }
    }
  }
  return Status::Ok();
}

}  // namespace phalanx::launch
