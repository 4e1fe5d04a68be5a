#pragma once
// The table layout of the snapshot target: the seeds are written with it
// (make_seeds.cc) and the target loads files expecting it (snapshot_fuzz.cc),
// so the two cannot drift apart.

#include <vector>

#include "ps/table.h"

namespace phalanx::fuzz {

// Table 0: dim 4, plain SGD (no state); table 1: dim 3, Adam (2 x 3 + 1 state floats).
inline std::vector<ps::TableOptions> SnapshotFuzzTables() {
  ps::TableOptions t0;
  t0.table_id = 0;
  t0.dim = 4;
  ps::TableOptions t1;
  t1.table_id = 1;
  t1.dim = 3;
  t1.optimizer.kind = ps::OptimizerKind::kAdam;
  return {t0, t1};
}

}  // namespace phalanx::fuzz
