#include "bench/transport/options.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "bench/util/flags.h"

namespace phalanx::bench::transport {

Options ParseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) o.quick = 1;
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::printf(
          "usage: bench_transport [--quick] [--name=value ...]; names: rows batch "
          "dense_floats dense_row_dim rounds sparse_iters dense_iters rtt_iters "
          "populate_batch breakdown server_prefix phalanx config optimizer checksum "
          "part_bytes set (also "
          "PHX_BENCH_<NAME>)\n");
      std::exit(0);
    }
  }
  ReadInt(argc, argv, "quick", &o.quick);
  if (o.quick) {
    // Small enough for < 30 s including start-up, large enough that the
    // table does not fit in cache.
    o.rows = 1'000'000;
    o.rounds = 3;
    o.sparse_iters = 8;
    o.dense_iters = 3;
    o.rtt_iters = 500;
  }
  ReadInt(argc, argv, "rows", &o.rows);
  ReadInt(argc, argv, "batch", &o.batch);
  ReadInt(argc, argv, "dense_floats", &o.dense_floats);
  ReadInt(argc, argv, "dense_row_dim", &o.dense_row_dim);
  ReadInt(argc, argv, "rounds", &o.rounds);
  ReadInt(argc, argv, "sparse_iters", &o.sparse_iters);
  ReadInt(argc, argv, "dense_iters", &o.dense_iters);
  ReadInt(argc, argv, "rtt_iters", &o.rtt_iters);
  ReadInt(argc, argv, "populate_batch", &o.populate_batch);
  ReadInt(argc, argv, "breakdown", &o.breakdown);
  ReadInt(argc, argv, "part_bytes", &o.part_bytes);
  o.batch = std::min(o.batch, o.rows);
  if (auto v = FlagValue(argc, argv, "server_prefix")) o.server_prefix = *v;
  if (auto v = FlagValue(argc, argv, "optimizer")) o.optimizer = *v;
  if (auto v = FlagValue(argc, argv, "checksum")) o.checksum = *v;
  if (auto v = FlagValue(argc, argv, "set")) o.set = *v;
  if (auto v = FlagValue(argc, argv, "phalanx")) {
    o.phalanx = *v;
  } else if (const char* dir = std::getenv("PHX_BINARY_DIR")) {
    o.phalanx = std::string(dir) + "/phalanx";
  } else {
    o.phalanx = (SelfDir().parent_path() / "phalanx").string();  // <build>/bench/..
  }
  if (auto v = FlagValue(argc, argv, "config")) {
    o.config = *v;
  } else {
    // The source tree is the build directory's parent in this project's
    // layout (build*/ sits next to launch/).
    o.config = (std::filesystem::path(o.phalanx).parent_path().parent_path() / "launch" /
                "configs" / "fashion-mnist-softmax.toml")
                   .string();
  }
  return o;
}

ps::OptimizerKind ServerOptimizerKind(const Options& o) {
  if (o.optimizer == "sgd") return ps::OptimizerKind::kSgd;
  if (o.optimizer == "adagrad") return ps::OptimizerKind::kAdagrad;
  return ps::OptimizerKind::kAdam;
}

}  // namespace phalanx::bench::transport
