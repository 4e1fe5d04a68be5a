#pragma once
// The result table of a bench that measures Phalanx against a baseline: one
// row per operation with both medians, their ratio, the target and PASS/FAIL.
// Single-threaded.

#include <string>
#include <vector>

#include "bench/util/timing.h"
#include "common/build_info.h"

namespace phalanx::bench {

struct Row {
  std::string op;
  std::string phx;
  std::string raw;
  double ratio;
  std::string target;
  bool pass;
};

// snprintf of up to three doubles into a string.
std::string Fmt(const char* fmt, double a, double b = 0, double c = 0);

// A throughput row: ratio = phalanx throughput / raw throughput (target >= 0.5).
Row ThroughputRow(const std::string& op, const Samples& phx, const Samples& raw, double bytes,
                  double keys);

// A latency row: ratio = phalanx time / raw time (target <= 1.2).
Row LatencyRow(const std::string& op, double phx_s, double raw_s);

void PrintTable(const std::vector<Row>& rows);

// The header of a bench's output: the machine and the kernel variants the
// figures are for (BuildInfoText, e.g. of ps::ProcessBuildInfo()).
void PrintBuildHeader(const BuildInfo& info);

}  // namespace phalanx::bench
