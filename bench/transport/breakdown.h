#pragma once
// bench_transport's in-process figures: the pieces of the Phalanx pipeline at
// the benchmark's sizes, timed alone, which say where the end-to-end time goes
// without a profiler (perf has no counters on this VM); and the memory floor of
// a sparse request. Main thread only.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "bench/transport/options.h"
#include "worker/client.h"

namespace phalanx::bench::transport {

// Times each piece and prints the breakdown table.
void Breakdown(const Options& o, worker::Client& client, const std::vector<uint64_t>& keys);

// The memory floor of a sparse request on this machine: `batch` random
// 64-byte rows out of `rows`, gathered with prefetch from 2 MiB pages. Returns
// seconds (best of 5), 0 when the memory is refused.
double GatherFloorSeconds(size_t rows, size_t batch);

}  // namespace phalanx::bench::transport
