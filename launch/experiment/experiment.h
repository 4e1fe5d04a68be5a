#pragma once
// Experiment sweeps: `phalanx experiment --config FILE --out DIR`.
//
// An experiment file names a base job config and a grid (rules x attacks x f
// x fault schedules x seeds). Each cell is one `phalanx launch local` child
// process writing its own run folder under DIR/runs/; several cells run at
// once (`parallel`). A cell whose folder holds a finished summary.json is not
// rerun, so an interrupted sweep resumes where it stopped. When the grid is
// done (or interrupted) the report is (re)written from every finished cell:
// results.csv (one row per run), summary.md (rule x attack -> mean +- std
// accuracy over seeds, one table per f and schedule), heatmap PNGs and
// accuracy-vs-round PNGs (one per attack, one curve per rule).
//
// Threading: RunExperiment runs on the caller's thread; the cells are child
// processes polled from that thread.

#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace phalanx::launch {

struct ExperimentSpec {
  std::string name;
  std::string source;       // the experiment file
  std::string base_config;  // job config (absolute path)
  std::vector<std::string> rules{"mean"};
  std::vector<std::string> attacks{"none"};  // "none" = no Byzantine worker
  std::vector<int> f{0};
  std::vector<uint64_t> seeds{1};
  // Schedule name -> TOML file whose [[faults]] entries are appended to the
  // run's config; "none" (no file) means no faults.
  std::vector<std::string> schedules{"none"};
  std::map<std::string, std::string> schedule_files;
  std::vector<std::string> overrides;  // --set items for every cell
  // Per-rule --set items (e.g. flag's r), applied after `overrides`.
  std::map<std::string, std::vector<std::string>> rule_overrides;
  // Named variants: [rule_set] flag-r4 = { rule = "flag", set = ["aggregator.r=4"] }
  // lets `rules` list the same aggregator with different parameters.
  std::map<std::string, std::string> rule_alias;
  int parallel = 1;
};

// One cell of the grid.
struct ExperimentCell {
  std::string rule;
  std::string attack;
  int f = 0;
  std::string schedule;
  uint64_t seed = 1;
  std::string Id() const;  // folder name, unique in the grid
};

// Parses and validates an experiment file (InvalidArgument / NotFound with the
// offending key or path named). `overrides` are `section.key=value` items
// for the [experiment] table, as with job configs.
Result<ExperimentSpec> LoadExperiment(const std::string& path,
                                      const std::vector<std::string>& overrides = {});

std::vector<ExperimentCell> ExpandGrid(const ExperimentSpec& spec);

// The `--set` items a cell adds to the base config.
std::vector<std::string> CellOverrides(const ExperimentSpec& spec, const ExperimentCell& cell);

struct ExperimentOptions {
  std::string out_dir;
  std::string self_exe;  // the phalanx binary
  bool quiet = false;
  int parallel = 0;  // >0 overrides the file's value
};

struct ExperimentSummary {
  int cells = 0;
  int ran = 0;
  int skipped = 0;  // finished earlier
  int failed = 0;
};

Result<ExperimentSummary> RunExperiment(const ExperimentSpec& spec,
                                        const ExperimentOptions& options,
                                        const std::atomic<bool>* stop);

// Rewrites results.csv, summary.md and the plots from the cell folders under
// out_dir/runs (used at the end of RunExperiment; callable on its own).
Status WriteExperimentReport(const ExperimentSpec& spec, const std::string& out_dir);

}  // namespace phalanx::launch
