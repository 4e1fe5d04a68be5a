#pragma once
// bench_transport's options (see bench/transport.cc for each one's meaning and
// default) and the optimizer the server runs with. Main thread only.

#include <cstdint>
#include <string>

#include "ps/table.h"

namespace phalanx::bench::transport {

struct Options {
  int64_t rows = 10'000'000;
  int64_t batch = 100'000;
  int64_t dense_floats = 10'000'000;
  int64_t dense_row_dim = 4096;
  int64_t rounds = 5;
  int64_t sparse_iters = 20;
  int64_t dense_iters = 6;
  int64_t rtt_iters = 2000;
  int64_t populate_batch = 1'000'000;
  int64_t breakdown = 1;
  int64_t quick = 0;
  std::string server_prefix;
  std::string phalanx;
  std::string config;
  std::string optimizer;
  std::string checksum = "auto";
  // Client::max_part_bytes (split_pushes on: the server runs async). The raw
  // baseline splits its requests the same way, so both move the same bytes in
  // messages of the same size. 0: one message per request.
  int64_t part_bytes = int64_t{1} << 20;
  std::string set;  // extra config items for every role, space-separated
};

// Flags (--name=value) over PHX_BENCH_<NAME>; --help prints the names and exits.
Options ParseOptions(int argc, char** argv);

// The server's optimizer: --optimizer, else the config's (Adam).
ps::OptimizerKind ServerOptimizerKind(const Options& o);

}  // namespace phalanx::bench::transport
