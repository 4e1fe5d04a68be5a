#pragma once
// LocalLauncher: `phalanx launch local`. Starts 1 scheduler + S servers + W
// workers as separate processes on this machine (the same binary with role
// subcommands), shows a progress line, stops every child on Ctrl-C or when a
// child fails, and writes the run folder: metrics.csv, summary.json,
// training.png, config.toml and logs/. Runs on the caller's thread.

#include <atomic>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/status.h"

namespace phalanx::launch {

struct LaunchOptions {
  std::string config_path;
  std::vector<std::string> overrides;
  std::string out_dir;
  std::string self_exe;  // path of the phalanx binary
  bool quiet = false;    // no progress line
};

struct LaunchResult {
  double final_test_accuracy = -1;
  int rounds = 0;
  double wall_seconds = 0;
};

Result<LaunchResult> LaunchLocal(const LaunchOptions& options, const std::atomic<bool>* stop);

}  // namespace phalanx::launch
