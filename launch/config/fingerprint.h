#pragma once
// The settings every node of one job must agree on, as an ordered key=value
// list (the config's own key names). Nodes send it when they register; the
// scheduler refuses a node whose list differs from its own and names the first
// key that differs, so a worker started with another job's config cannot mix
// its gradients into this job's rows.

#include "common/control.h"
#include "launch/config/config.h"

namespace phalanx {

// What decides the shapes and meaning of the tables and of every push: mode,
// servers and slots, data set, model and its dimensions, table layout and
// seed, both optimizers, the aggregation rule and its parameters, and (in
// synchronous mode) the number of rounds. Data paths, ports, timeouts,
// logging and fault settings may differ between nodes and are not in it.
ConfigFingerprint FingerprintOf(const JobConfig& config);

}  // namespace phalanx
