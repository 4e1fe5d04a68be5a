#pragma once
// Shard-side helpers of the two-phase Gram protocol (see aggregator.h): the
// partial Gram matrix of a shard's slice, and the application of the
// coordinator's GramPlan to that slice. Pure functions, thread-safe; they may
// run TBB-parallel internally.

#include <Eigen/Dense>
#include <cstdint>
#include <string_view>

#include "aggregators/aggregator.h"
#include "common/status.h"

namespace phalanx::aggregators {

// Row-major-friendly aliases: a shard stores its slice as rows x n with each
// worker's values contiguous (column-major Eigen default).
using SliceF = Eigen::Ref<const Eigen::MatrixXf>;
using SliceD = Eigen::Ref<const Eigen::MatrixXd>;

// Partial Gram matrix [G | E]^T [G | E] of a slice: G is rows x n float32
// (the workers' values for this shard's coordinates), E is rows x k float64
// (the rule's extra columns; may have 0 columns). Float64 accumulation,
// blocked over rows so each block is converted once and stays in L1/L2;
// parallel over row blocks with TBB when parallel is true. Returns
// (n+k) x (n+k), exactly symmetric. InvalidArgument if E has other rows than G.
Result<Eigen::MatrixXd> PartialGram(const SliceF& gradients, const SliceD& extras,
                                    bool parallel = true);
Result<Eigen::MatrixXd> PartialGram(const SliceF& gradients, bool parallel = true);
// Same for float64 gradients (tests, simulator).
Result<Eigen::MatrixXd> PartialGram(const SliceD& gradients, const SliceD& extras,
                                    bool parallel = true);

// The Gram kernel variant PartialGram runs in this process: "scalar",
// "avx2" or "avx512", the widest this CPU supports unless the environment
// variable PHX_KERNEL names another (for tests and benchmarks). If PHX_KERNEL
// names one this CPU or build cannot run, "none (<the error>)", and every
// PartialGram returns that InvalidArgument. For /status and build_info.
std::string_view GramKernelName();

// Applies a plan to a shard's slice: returns the rows of the aggregate for
// these coordinates. extras must be the same rows x k columns that went into
// the shard's partial Gram. InvalidArgument on shape mismatch or an unknown
// coordinate-wise rule.
Result<Eigen::VectorXd> ApplyGramPlan(const GramPlan& plan, const SliceD& gradients,
                                      const SliceD& extras);
Result<Eigen::VectorXd> ApplyGramPlan(const GramPlan& plan, const SliceF& gradients,
                                      const SliceD& extras);

// The whole two-phase protocol in one process, for tests, the simulator and
// the case runner: splits the d rows of inputs into `slices` contiguous
// slices, sums their partial Grams (with the rule's extra columns), plans
// once, applies the plan per slice and concatenates. previous_aggregate is
// centered clipping's centre (empty: the configured one).
Result<Eigen::VectorXd> AggregateViaGram(Aggregator& rule, const Eigen::MatrixXd& inputs,
                                         int slices,
                                         const Eigen::VectorXd& previous_aggregate = {});

// Rows [row_begin, row_begin + rows) of a d x cols matrix of i.i.d.
// U[-1/2, 1/2) entries that depends only on (seed, global row, column), so
// shards generate their slices independently (flag's initial subspace).
Eigen::MatrixXd SeededUniformColumns(uint64_t seed, int64_t row_begin, int64_t rows, int cols);

}  // namespace phalanx::aggregators
