#pragma once
// Trainer: the worker's training loop. Each step pulls the parameters it needs
// (the dense rows and, for sparse models, the embedding rows of the batch),
// computes the batch gradient with the model, and pushes it. In synchronous
// mode step t waits for the servers' version t; in asynchronous mode pulls
// are answered at once and pushes carry the version they were computed from.
// Worker 0 also evaluates test accuracy every eval_every steps.
//
// Progress goes to `progress` as PHX_PROGRESS lines (common/node_lines.h; the
// launcher reads these); the caller prints the PHX_RESULT line.
// Threading: runs on the caller's thread, which must own the Client.

#include <cstdint>
#include <functional>
#include <ostream>
#include <random>
#include <string>
#include <unordered_map>

#include "common/status.h"
#include "worker/byzantine.h"
#include "worker/client.h"
#include "worker/dataset.h"
#include "worker/honest_peek.h"
#include "worker/model.h"

namespace phalanx::worker {

inline constexpr uint32_t kDenseTable = 0;
inline constexpr uint32_t kEmbeddingTable = 1;

struct TrainerOptions {
  bool synchronous = true;
  int rounds = 100;
  int batch_size = 64;
  int eval_every = 100;
  int log_every = 10;
  uint64_t seed = 1;
  uint32_t dense_row_dim = 256;
  // Evaluate on the test set (worker 0 by default).
  bool evaluate = false;
  // Worker-side Polyak momentum (MoNNA): push m = beta m + (1 - beta) g.
  double momentum = 0.0;
  // A straggler: sleep this long after computing each step's gradient.
  int step_delay_ms = 0;
  // When rank 0 (the evaluator) is dead at the end, the lowest live rank
  // evaluates the final model instead.
  bool evaluate_if_evaluator_lost = true;
  // Omniscient attacks: how long to wait for the honest workers' pushes.
  int honest_timeout_ms = 30000;
  // This worker lies: behaviour from `byzantine` (attack "none" = honest).
  ByzantineOptions byzantine;
};

// Number of dense rows holding `dense_size` parameters.
inline uint64_t DenseRows(size_t dense_size, uint32_t row_dim) {
  return (dense_size + row_dim - 1) / row_dim;
}

class Trainer {
 public:
  Trainer(const TrainerOptions& options, Client* client, const Model* model, const Dataset* train,
          std::vector<size_t> shard, const Dataset* test, std::ostream* progress);
  // Runs all rounds. Returns the final test accuracy (when evaluating) in
  // *final_accuracy. Fails on a lost cluster or a persistent server error.
  Status Run(double* final_accuracy = nullptr);

 private:
  Status PullDense(int64_t min_version, int64_t* version);
  Status PullRows(std::span<const uint64_t> keys, int64_t min_version, SparseRows* rows,
                  int64_t* version);
  Result<double> Evaluate(int64_t min_version);
  // A step's pushes (dense, and the sparse rows when the model has them).
  Status PushGradients(const SparseRows& rows, const std::vector<float>& sparse_grad,
                       int64_t dense_version, int64_t sparse_version, int* errors);
  // Waits for a step's pushes (id 0: none); the errors a later pull realigns
  // are logged (the first 5, counted in *errors), any other one is returned.
  Status WaitPushes(uint64_t dense_push, uint64_t sparse_push, int* errors);
  // After the last step: the final model's accuracy from a stand-in for a
  // lost evaluator, or from an evaluator that joined after the last round.
  Status EvaluateAtEnd(int first_step, int64_t dense_version, double* final_accuracy);
  void ApplyMomentum(const SparseRows& rows, std::vector<float>* sparse_grad);
  Status Lie(const std::vector<size_t>& batch, const SparseRows& rows,
             std::vector<float>* sparse_grad, const std::vector<size_t>& order,
             std::mt19937_64& rng, int64_t round);
  // Omniscient attacks: the round's honest dense gradients (d x h, column
  // major) into *samples; false when they are unavailable this round.
  bool FetchHonest(int64_t round, std::vector<float>* samples);

  TrainerOptions options_;
  Client* client_;
  const Model* model_;
  const Dataset* train_;
  std::vector<size_t> shard_;
  const Dataset* test_;
  std::ostream* progress_;
  std::unique_ptr<HonestPeek> honest_peek_;
  int honest_failures_ = 0;
  std::vector<uint64_t> dense_keys_;
  std::vector<float> dense_;
  std::vector<float> dense_grad_;
  std::vector<float> dense_momentum_;
  std::unordered_map<uint64_t, std::vector<float>> row_momentum_;
  ByzantineBehaviour byzantine_;
};

}  // namespace phalanx::worker
