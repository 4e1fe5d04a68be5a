#pragma once
// EmbeddingTable: a shard's collisionless uint64 key -> row map. Each row holds
// `dim` floats plus its optimizer state. Rows are created on first update and
// initialized deterministically from (seed, table_id, key), so any shard can
// recreate an initial row without coordination.
//
// Thread-safety: not thread-safe; one owner thread (the shard's request loop)
// calls it. Lookup/Apply may fan out over TBB internally.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"

namespace phalanx::ps {

enum class OptimizerKind { kSgd, kAdagrad, kAdam };

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::kSgd;
  float learning_rate = 0.1f;
  float momentum = 0.0f;             // SGD only; 0 = plain SGD (no state)
  float beta1 = 0.9f;                // Adam
  float beta2 = 0.999f;              // Adam
  float epsilon = 1e-8f;             // Adam, Adagrad
  float initial_accumulator = 0.0f;  // Adagrad
  float weight_decay = 0.0f;         // L2, added to the gradient
};

// Floats of optimizer state per row for `kind` (0 for SGD without momentum):
// SGD with momentum dim (velocity), Adagrad dim (accumulator), Adam 2*dim + 1
// (first and second moments, then the row's step count as uint32 bits, used
// for bias correction: Adam here counts steps per row, not per table).
size_t OptimizerStateFloats(const OptimizerOptions& options, size_t dim);

// The optimizer-row variant every table's Apply runs in this process:
// "scalar", "avx2" or "avx512", the widest this CPU supports unless the
// environment variable PHX_KERNEL names another (tests, benchmarks). If
// PHX_KERNEL names one this CPU or build cannot run, "none (<the error>)",
// and EmbeddingTable::Create returns that InvalidArgument. For /status and
// build-info (ps/internal/optimizer_dispatch.h).
std::string_view OptimizerKernelName();

enum class InitKind { kZeros, kUniform, kNormal };

struct TableOptions {
  uint32_t table_id = 0;
  uint32_t dim = 16;
  uint64_t seed = 1;
  InitKind init = InitKind::kUniform;
  float init_scale = 0.01f;  // uniform in [-scale, scale], or normal stddev
  OptimizerOptions optimizer;
  size_t initial_capacity = 1 << 16;  // rows; the table grows past it
  // Share-nothing sub-tables, chosen by key hash bits; a power of two in
  // [1, 256]. Row values never depend on it; it bounds the parallelism of
  // large batches and the size of one rehash.
  uint32_t num_partitions = 8;
  // Apply/Import batches of at least this many keys fan out over TBB, one
  // task per partition; SIZE_MAX keeps every call on the caller's thread. An
  // update rewrites 2-5 random lines per key (row, optimizer state), and a
  // second core's line-fill buffers pay for the bucketing pass: a 100k-key
  // Adam push on 2 cores, 16k-key parts, 17-18 -> 11-12 ms server time.
  size_t parallel_min_update = 4096;
  // The same for Lookup, which reads one line per key: on the 2-core machine
  // the second core is busy sending the previous part's reply, and fanning
  // 16k-key lookups out made pulls 3-12% slower, so only large batches do.
  size_t parallel_min_lookup = size_t{1} << 18;
};

class EmbeddingTable {
 public:
  static Result<std::unique_ptr<EmbeddingTable>> Create(const TableOptions& options);
  virtual ~EmbeddingTable() = default;
  EmbeddingTable(const EmbeddingTable&) = delete;
  EmbeddingTable& operator=(const EmbeddingTable&) = delete;

  const TableOptions& options() const { return options_; }
  uint32_t dim() const { return options_.dim; }

  // Copies the rows of `keys` into out (keys.size() x dim, row-major). A key
  // without a row reads as its initial row and is not inserted: rows are
  // created by updates (Apply, Import), so pulls of unknown keys cannot grow
  // the table. Duplicate keys allowed.
  virtual void Lookup(std::span<const uint64_t> keys, float* out) = 0;

  // One optimizer step: row(key) <- opt(row, grad) for each key, with grads
  // keys.size() x dim row-major. Keys must be distinct within one call.
  // Missing rows are created first. Non-finite gradients are the caller's job.
  virtual void Apply(std::span<const uint64_t> keys, const float* grads) = 0;

  // The initial value of a row (what Lookup returns before any update).
  virtual void InitialRow(uint64_t key, float* out) const = 0;

  virtual size_t size() const = 0;          // rows present
  virtual size_t memory_bytes() const = 0;  // bytes held (index + rows + state)

  // Floats per stored row: dim weights followed by the optimizer state
  // (OptimizerStateFloats), the unit of ForEach and Import.
  size_t row_floats() const {
    return options_.dim + OptimizerStateFloats(options_.optimizer, options_.dim);
  }

  // True if `key` has a row. Does not create one.
  virtual bool Contains(uint64_t key) const = 0;

  // Calls fn(key, row) for every row, row being row_floats() floats (weights,
  // then optimizer state), in an unspecified order. For snapshots; fn must
  // not call back into the table.
  virtual void ForEach(
      const std::function<void(uint64_t key, std::span<const float> row)>& fn) const = 0;

  // Sets the full stored rows of `keys` (weights and optimizer state) from
  // values (keys.size() x row_floats(), row-major), creating rows as needed.
  // The inverse of ForEach, for restoring snapshots. With duplicate keys the
  // last one wins.
  virtual void Import(std::span<const uint64_t> keys, const float* values) = 0;

 protected:
  explicit EmbeddingTable(const TableOptions& options) : options_(options) {}
  TableOptions options_;
};

}  // namespace phalanx::ps
