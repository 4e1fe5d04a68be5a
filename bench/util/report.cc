#include "bench/util/report.h"

#include <cstdio>

namespace phalanx::bench {

std::string Fmt(const char* fmt, double a, double b, double c) {
  char buf[128];
  std::snprintf(buf, sizeof(buf), fmt, a, b, c);
  return buf;
}

Row ThroughputRow(const std::string& op, const Samples& phx, const Samples& raw, double bytes,
                  double keys) {
  double tp = phx.Median();
  double tr = raw.Median();
  Row r;
  r.op = op;
  r.phx = Fmt("%7.2f ms %5.2f GB/s %6.1f Mk/s", tp * 1e3, bytes / tp / 1e9, keys / tp / 1e6);
  r.raw = Fmt("%7.2f ms %5.2f GB/s", tr * 1e3, bytes / tr / 1e9);
  r.ratio = tr / tp;
  r.target = ">= 0.50x";
  r.pass = r.ratio >= 0.5;
  return r;
}

Row LatencyRow(const std::string& op, double phx_s, double raw_s) {
  Row r;
  r.op = op;
  r.phx = Fmt("%8.1f us", phx_s * 1e6);
  r.raw = Fmt("%8.1f us", raw_s * 1e6);
  r.ratio = phx_s / raw_s;
  r.target = "<= 1.20x";
  r.pass = r.ratio <= 1.2;
  return r;
}

void PrintTable(const std::vector<Row>& rows) {
  std::printf("\n%-38s | %-36s | %-23s | %6s | %-8s | %s\n", "operation", "phalanx (median per op)",
              "raw zeromq (median)", "ratio", "target", "result");
  std::printf("%s\n", std::string(130, '-').c_str());
  for (const auto& r : rows) {
    std::printf("%-38s | %-36s | %-23s | %5.2fx | %-8s | %s\n", r.op.c_str(), r.phx.c_str(),
                r.raw.c_str(), r.ratio, r.target.c_str(), r.pass ? "PASS" : "FAIL");
  }
  std::fflush(stdout);
}

void PrintBuildHeader(const BuildInfo& info) { std::fputs(BuildInfoText(info).c_str(), stdout); }

}  // namespace phalanx::bench
