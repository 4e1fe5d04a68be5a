#pragma once
// The run folder of `phalanx launch local`: metrics.csv (a row per reported
// round), faults.csv (every fault event), summary.json and training.png (loss
// and accuracy by round). Written once, at the end of the run, through
// launch/report/. Launcher thread only.

#include <string>

#include "launch/cluster/local_launcher.h"
#include "launch/cluster/progress_stream.h"
#include "launch/config/config.h"

namespace phalanx::launch {

struct TrainingReport {
  const JobConfig* config = nullptr;
  const LaunchOptions* options = nullptr;
  const ProgressStream* progress = nullptr;
  const LaunchResult* result = nullptr;
  int failed_workers = 0;
};

// Writes the four files into report.options->out_dir; a figure that cannot be
// drawn (no gnuplot) is only logged.
void WriteTrainingReport(const TrainingReport& report);

}  // namespace phalanx::launch
