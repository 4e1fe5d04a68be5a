#pragma once
// The simulator's pieces shared by its .cc files: the seeded random helpers,
// the population (Simulator::Impl: data, model, partition, client speeds;
// clients.cc) and the event loop that runs one algorithm over it
// (event_loop.cc). Used by one thread, which runs TBB tasks inside.

#include <tbb/task_arena.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <utility>
#include <vector>

#include "launch/sim/simulator.h"
#include "worker/model.h"
#include "worker/partition.h"

namespace phalanx::launch {
namespace internal {

// SplitMix64 step; our own so that results never depend on the standard
// library's distributions.
inline uint64_t SplitMix(uint64_t* s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
inline uint64_t Mix(uint64_t seed, uint64_t tag, uint64_t a, uint64_t b = 0) {
  uint64_t s = seed ^ (tag * 0xA24BAED4963EE407ULL) ^ (a * 0xD1B54A32D192ED03ULL) ^
               (b * 0x8CB92BA72F3D8DD7ULL);
  return SplitMix(&s);
}
inline double Uniform(uint64_t* s) {
  return (static_cast<double>(SplitMix(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
inline uint64_t Below(uint64_t* s, uint64_t bound) {
  if (bound <= 1) return 0;
  const uint64_t threshold = (0 - bound) % bound;
  while (true) {
    const uint64_t r = SplitMix(s);
    if (r >= threshold) return r % bound;
  }
}

}  // namespace internal

struct Simulator::Impl {
  std::unique_ptr<worker::TrainTest> owned;
  const worker::TrainTest* data = nullptr;
  std::unique_ptr<worker::Model> model;
  std::optional<worker::Partition> partition;
  std::vector<float> theta0;
  std::vector<float> mean_time;
  std::vector<std::vector<float>> trace;
  std::vector<int64_t> byzantine;  // sorted
  std::vector<size_t> test_idx;
  size_t dense_size = 0, buckets = 0, dim = 0;
  double fx_percent = 0;

  size_t model_size() const { return dense_size + buckets * dim; }

  double Duration(const SimConfig& c, int64_t client, int64_t round) const;

  // One local training: a pure function of (base, client, round, seed).
  void Train(const SimConfig& c, int64_t client, int64_t round, const std::vector<float>& base,
             std::vector<float>* delta) const;

  // Test accuracy and mean loss, in fixed chunks reduced in order.
  std::pair<double, double> Evaluate(const std::vector<float>& theta, tbb::task_arena& arena) const;
};

namespace internal {

// Runs `run` over the population from θ⁰ (event_loop.cc).
Result<RunResult> RunEventLoop(const Simulator::Impl& im, const SimConfig& c, const SimRun& run,
                               int threads, std::ostream* progress);

}  // namespace internal
}  // namespace phalanx::launch
