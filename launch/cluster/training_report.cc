#include "launch/cluster/training_report.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "launch/report/plot.h"
#include "launch/report/run_report.h"

namespace phalanx::launch {
namespace {

namespace fs = std::filesystem;

void WriteMetrics(const fs::path& out, const ProgressStream& progress) {
  CsvWriter csv(out / "metrics.csv",
                "round,wall_seconds,train_loss,test_accuracy,rows_per_second,staleness_mean");
  for (const auto& [round, r] : progress.rows()) {
    auto present = [](double v) { return v >= 0 ? std::optional<double>(v) : std::nullopt; };
    csv.Row(round, r.wall, r.loss(), present(r.accuracy), r.rows_per_s, present(r.staleness));
  }
}

void WriteFaults(const fs::path& out, const std::vector<AppliedFault>& faults) {
  CsvWriter csv(out / "faults.csv", "time_s,round,index,kind,node,event,detail,proxied_bytes");
  for (const auto& f : faults) {
    csv.Row(fmt::format("{:.3f}", f.time_s), f.round, f.index, f.kind, f.node, f.event,
            CsvQuote(f.detail, /*always=*/true),
            f.proxied_bytes >= 0 ? std::optional<int64_t>(f.proxied_bytes) : std::nullopt);
  }
}

nlohmann::json Summary(const TrainingReport& rep) {
  const JobConfig& config = *rep.config;
  const LaunchResult& res = *rep.result;
  nlohmann::json fault_json = nlohmann::json::array();
  for (const auto& f : res.faults) {
    fault_json.push_back({{"time_s", f.time_s},
                          {"round", f.round},
                          {"index", f.index},
                          {"kind", f.kind},
                          {"node", f.node},
                          {"event", f.event},
                          {"detail", f.detail},
                          {"proxied_bytes", f.proxied_bytes}});
  }
  nlohmann::json by_worker = nlohmann::json::object();
  for (const auto& [rank, n] : rep.progress->quorum_exclusions_by_worker()) {
    by_worker[std::to_string(rank)] = n;
  }
  // Jobs with checkpoint.dir only; empty otherwise.
  nlohmann::json snapshots = nlohmann::json::array();
  for (const auto& r : res.snapshots) {
    snapshots.push_back({{"server", "server-" + std::to_string(r.rank)},
                         {"rank", r.rank},
                         {"snapshots", r.snapshots},
                         {"snapshot_failures", r.snapshot_failures},
                         {"last_snapshot_round", r.last_snapshot_round}});
  }
  return {{"final_test_accuracy", res.final_test_accuracy},
          {"rounds", res.rounds},
          {"wall_seconds", res.wall_seconds},
          {"final_train_loss", rep.progress->last_loss()},
          {"servers", config.cluster.servers},
          {"workers", config.cluster.workers},
          {"failed_workers", rep.failed_workers},
          {"mode", config.cluster.mode},
          {"model", config.model.kind},
          {"dataset", config.data.dataset},
          {"aggregator", config.aggregator.name},
          {"config", rep.options->config_path},
          {"overrides", rep.options->overrides},
          {"faults", fault_json},
          {"quorum_exclusions", rep.progress->quorum_exclusions()},
          {"quorum_exclusions_by_worker", by_worker},
          {"quorum_rejoins", rep.progress->quorum_rejoins()},
          {"updates_lost",
           res.updates_lost >= 0 ? nlohmann::json(res.updates_lost) : nlohmann::json(nullptr)},
          {"restarts", res.restarts},
          {"max_restarts", res.max_restarts},
          {"snapshot_failures", res.snapshot_failures},
          {"server_snapshots", snapshots}};
}

}  // namespace

void WriteTrainingReport(const TrainingReport& rep) {
  fs::path out(rep.options->out_dir);
  WriteMetrics(out, *rep.progress);
  WriteFaults(out, rep.result->faults);
  if (Status s = WriteJsonFile(out / "summary.json", Summary(rep)); !s.ok()) {
    spdlog::warn("{}", s.ToString());
  }
  const JobConfig& config = *rep.config;
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
}

}  // namespace phalanx::launch
