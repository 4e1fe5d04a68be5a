#pragma once
// Entry points of the three process roles, used by `phalanx scheduler|server|
// worker`. Each builds its options from the job config, serves /metrics and
// /status over HTTP when enabled, and runs until done or *stop is set.

#include <atomic>
#include <ostream>
#include <string>

#include "common/status.h"
#include "launch/config/config.h"

namespace phalanx::launch {

// Prints PHX_HTTP (when enabled) and PHX_ENDPOINT lines (common/node_lines.h)
// on `out` once bound, then serves.
Status RunScheduler(const JobConfig& config, int port, std::ostream& out,
                    const std::atomic<bool>* stop);
// With restore, the server loads the newest valid snapshot of its rank from
// checkpoint.dir before serving, or fails (see ps/snapshot.h), and prints a
// PHX_RESTORED line (what the snapshot missed) on `out` when it stops.
Status RunServer(const JobConfig& config, const std::string& scheduler, int rank, std::ostream& out,
                 const std::atomic<bool>* stop, bool restore = false);
// Training progress goes to `out` (PHX_PROGRESS / PHX_RESULT lines).
Status RunWorker(const JobConfig& config, const std::string& scheduler, int rank, std::ostream& out,
                 const std::atomic<bool>* stop);

}  // namespace phalanx::launch
