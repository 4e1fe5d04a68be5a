#pragma once
// `phalanx simulate`: federated clients on an event-driven virtual clock
// (docs/federated.md, "The simulator's event loop"). Simulated time never waits on the wall
// clock: a dispatched client gets an end event at now + τ (its speed profile),
// and its local training runs lazily when the loop needs the result;
// staleness comes from the server's version numbers. The server side is
// aggregators::FederatedServer, so the same state machines serve a live
// cluster later.
//
// Determinism: a client's training is a pure function of (base model, client
// id, the client's training count, seed). The loop is serial; when an end
// event needs its result, the next pending trainings (in event order) are
// computed together with TBB. Evaluation reduces in a fixed order. The
// results are therefore bit-identical for a seed whatever the thread count.
//
// Memory: registered clients are lazy. An idle client is a few counters
// (training count, idle-pool slot, state byte, τ_i for the server); its data
// indices are regenerated from (seed, id) when it trains
// (worker/partition.h). Models exist only as shared snapshots of the versions
// in-flight clients started from.
//
// Threading: a Simulator is used by one thread; it runs TBB tasks inside.

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "launch/sim/sim_config.h"
#include "worker/dataset.h"

namespace phalanx::launch {

struct EvalPoint {
  double virtual_time = 0;
  double wall_seconds = 0;
  int64_t version = 0;
  int64_t updates = 0;  // accepted client updates so far
  double test_accuracy = 0;
  double test_loss = 0;
  double staleness_mean = 0;  // over the updates since the previous point
  int64_t staleness_max = 0;
  double step_weight = 0;  // Σω of the last server step
};

struct RunResult {
  std::string name;
  std::string algorithm;
  std::vector<EvalPoint> curve;
  double final_accuracy = 0;
  double best_accuracy = 0;
  double std_last20 = 0;  // accuracy std over evaluations in the last 20% of the budget
  int64_t server_steps = 0;
  int64_t trainings = 0;  // client trainings that ended (incl. dropped)
  int64_t accepted = 0;
  int64_t dropped_dropout = 0;
  int64_t dropped_nonfinite = 0;
  int64_t rejected_stale = 0;
  int64_t robust_failures = 0;
  double staleness_mean = 0;
  std::vector<int64_t> staleness_histogram;  // index = staleness
  double wall_seconds = 0;
  double train_wall_seconds = 0;  // spent in parallel client training
  int64_t resident_bytes = 0;     // process RSS at the end of the run (population still alive)
  std::vector<float> final_model;
};

struct SimulateOptions {
  std::string out_dir;  // empty = write nothing
  int threads = 0;      // 0 = TBB default (all cores)
  bool plots = true;
  std::ostream* progress = nullptr;  // one line per run and per 10% of the budget
};

class Simulator {
 public:
  // Loads the data set named by the config, splits it and checks the speed
  // trace. Every config error surfaces here, before anything trains.
  static Result<std::unique_ptr<Simulator>> Create(const SimConfig& config);
  // With data already loaded (tests, benchmarks). `data` must outlive the simulator.
  static Result<std::unique_ptr<Simulator>> Create(const SimConfig& config,
                                                   const worker::TrainTest* data);
  ~Simulator();
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  const SimConfig& config() const { return config_; }
  size_t model_size() const;

  // Runs config().runs[index] from θ⁰.
  Result<RunResult> Run(size_t index, int threads = 0);
  // Runs every run; writes metrics.csv, summary.json, curves/, staleness/,
  // accuracy.png and staleness.png into options.out_dir when set.
  Result<std::vector<RunResult>> RunAll(const SimulateOptions& options);

  // Bytes held per registered client while it is idle (population state and
  // the server's per-client vectors), from the containers' sizes.
  static size_t IdleClientBytes();

  // Defined in simulator.cc (data, model, partition, speeds); public only so
  // that the .cc's event loop can name it.
  struct Impl;

 private:
  explicit Simulator(SimConfig config);
  SimConfig config_;
  std::unique_ptr<Impl> impl_;
};

// Writes the outputs of `runs` into `out_dir` (created if needed).
Status WriteSimulationOutputs(const SimConfig& config, const std::vector<RunResult>& runs,
                              const std::string& out_dir, bool plots);

}  // namespace phalanx::launch
