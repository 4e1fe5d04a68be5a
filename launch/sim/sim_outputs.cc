// What `phalanx simulate` writes into --out: metrics.csv, curves/,
// staleness/, summary.json and the two figures.

#include <filesystem>
#include <nlohmann/json.hpp>

#include "launch/report/plot.h"
#include "launch/report/run_report.h"
#include "launch/sim/simulator.h"

namespace phalanx::launch {

Status WriteSimulationOutputs(const SimConfig& c, const std::vector<RunResult>& runs,
                              const std::string& dir, bool plots) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(fs::path(dir) / "curves", ec);
  fs::create_directories(fs::path(dir) / "staleness", ec);
  if (ec) return Internal("cannot create '" + dir + "': " + ec.message());
  const char* kHeader =
      "virtual_time,wall_seconds,version,updates,test_accuracy,test_loss,staleness_mean,"
      "staleness_max,step_weight";
  CsvWriter all(fs::path(dir) / "metrics.csv", std::string("run,") + kHeader, 8);
  for (const auto& r : runs) {
    CsvWriter one(fs::path(dir) / "curves" / (r.name + ".csv"), kHeader, 8);
    for (const auto& p : r.curve) {
      // The same cells in both files; metrics.csv leads with the run's name.
      auto row = [&p](CsvWriter& w, const auto&... head) {
        w.Row(head..., p.virtual_time, p.wall_seconds, p.version, p.updates, p.test_accuracy,
              p.test_loss, p.staleness_mean, p.staleness_max, p.step_weight);
      };
      row(one);
      row(all, r.name);
    }
    CsvWriter h(fs::path(dir) / "staleness" / (r.name + ".csv"), "staleness,count,fraction");
    for (size_t s = 0; s < r.staleness_histogram.size(); ++s) {
      h.Row(s, r.staleness_histogram[s],
            r.accepted > 0
                ? static_cast<double>(r.staleness_histogram[s]) / static_cast<double>(r.accepted)
                : 0.0);
    }
  }
  if (!all.ok()) return Internal("cannot write metrics.csv in '" + dir + "'");
  nlohmann::json j;
  j["config"] = c.source;
  j["clients"] = c.clients;
  j["time_budget"] = c.time_budget;
  j["profile"] = c.profile;
  j["alpha"] = c.alpha;
  j["partition"] = c.partition;
  j["model"] = c.model;
  j["dataset"] = c.dataset;
  j["local_steps"] = c.steps;
  j["batch_size"] = c.batch_size;
  j["learning_rate"] = c.learning_rate;
  for (const auto& r : runs) {
    nlohmann::json x;
    x["name"] = r.name;
    x["algorithm"] = r.algorithm;
    x["final_accuracy"] = r.final_accuracy;
    x["best_accuracy"] = r.best_accuracy;
    x["std_last20"] = r.std_last20;
    x["server_steps"] = r.server_steps;
    x["trainings"] = r.trainings;
    x["accepted_updates"] = r.accepted;
    x["dropped_dropout"] = r.dropped_dropout;
    x["dropped_nonfinite"] = r.dropped_nonfinite;
    x["rejected_stale"] = r.rejected_stale;
    x["robust_failures"] = r.robust_failures;
    x["staleness_mean"] = r.staleness_mean;
    x["wall_seconds"] = r.wall_seconds;
    x["updates_per_wall_second"] =
        r.wall_seconds > 0 ? static_cast<double>(r.trainings) / r.wall_seconds : 0.0;
    j["runs"].push_back(x);
  }
  PHX_RETURN_IF_ERROR(WriteJsonFile(fs::path(dir) / "summary.json", j));
  if (!plots || runs.empty()) return Status::Ok();
  PlotSpec acc;
  acc.output_path = (fs::path(dir) / "accuracy.png").string();
  acc.title = c.title.empty() ? "test accuracy vs virtual time" : c.title;
  acc.x_column = "virtual_time";
  acc.x_label = "virtual time (slowest client's update time = 1)";
  acc.y_label = "test accuracy";
  PlotSpec st = acc;
  st.output_path = (fs::path(dir) / "staleness.png").string();
  st.title = "staleness of accepted updates";
  st.x_column = "staleness";
  st.x_label = "staleness (server versions)";
  st.y_label = "fraction of updates";
  for (const auto& r : runs) {
    acc.series.push_back({"test_accuracy", r.name, PlotAxis::kLeft,
                          (fs::path(dir) / "curves" / (r.name + ".csv")).string()});
    st.series.push_back({"fraction", r.name, PlotAxis::kLeft,
                         (fs::path(dir) / "staleness" / (r.name + ".csv")).string()});
  }
  PHX_RETURN_IF_ERROR(PlotLines(acc));
  return PlotLines(st);
}

}  // namespace phalanx::launch
