#pragma once
// The aggregation-rule interface and registry. Pure library: Eigen in, Eigen
// out, no I/O.
//
// Every rule has a direct form (Aggregate: n vectors in, one vector out) and a
// Gram form (PlanFromGram: the n' x n' Gram matrix of [G | E] in, a GramPlan
// out) so that servers holding disjoint slices of the coordinates compute
// their slice of the exact aggregate (docs/aggregation-rules.md, "Direct form
// and Gram form"). The two-phase protocol is:
//
//   shard s:      E_s = rule->ExtraColumns(begin_s, rows_s, prev_slice_s)
//                 K_s = PartialGram(G_s, E_s)                 (n+k)x(n+k)
//   coordinator:  plan = rule->PlanFromGram(sum_s K_s)
//   shard s:      out_s = ApplyGramPlan(plan, G_s, E_s)       rows_s
//
// Non-finite inputs: the cluster drops workers whose vector has a NaN/Inf
// before aggregation (counted and logged by the server); the library rejects
// them with InvalidArgument instead of producing NaN.
//
// A rule object is used by one thread at a time (the server's round thread);
// rules may use TBB internally. Some rules are stateful (centered clipping
// remembers its last output as the next centre), so use one instance per run.

#include <Eigen/Dense>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace phalanx::aggregators {

// Parameters from the config: the rule name ("mean", "nnm+krum", "flag", ...),
// the number of tolerated Byzantine inputs f, and named numeric parameters.
// See aggregators/README.md for each rule's parameters and defaults.
struct AggregatorOptions {
  std::string name = "mean";
  int f = 0;
  std::map<std::string, double> params;
  // Seed for rules with a random part (flag's initial subspace).
  uint64_t seed = 1;
  // Centered clipping: initial centre (d-vector). Empty means the zero vector.
  Eigen::VectorXd center = {};
  // Flag: injected initial subspace Y0 (d x r, orthonormal columns), the test
  // hook of docs/aggregation-rules.md, "Initial subspace". Empty means the seeded default.
  Eigen::MatrixXd initial_subspace = {};
};

// What the coordinator sends back to every shard in phase 2. Let X = [G | E]
// be the d x (n+k) matrix of the worker vectors followed by the rule's extra
// columns. The mixed vectors are X * mixing (d x m). The aggregate is
//   X * mixing * coefficients                 when coordinatewise_rule is empty,
//   coordinatewise_rule(X * mixing)           otherwise,
// so each shard computes its rows from its own slice of X. Value type.
struct GramPlan {
  Eigen::MatrixXd mixing;        // (n+k) x m
  Eigen::VectorXd coefficients;  // m, used when coordinatewise_rule is empty
  // "mean", "median", "trimmed-mean" or "meamed", applied to the m mixed
  // vectors with trim parameter coordinatewise_f (rows dropped per side for
  // trimmed-mean; values dropped for meamed, which keeps m - f per coordinate).
  std::string coordinatewise_rule;
  int coordinatewise_f = 0;
  // Diagnostics: worker indices the rule selected (Krum: {argmin}; Multi-Krum,
  // MDA, MoNNA: ascending; Bulyan: Krum selection order). Empty if none.
  std::vector<int> selected;
};

class Aggregator {
 public:
  virtual ~Aggregator() = default;
  Aggregator() = default;
  Aggregator(const Aggregator&) = delete;
  Aggregator& operator=(const Aggregator&) = delete;

  virtual std::string name() const = 0;
  // True when output coordinate j depends only on coordinate j of the inputs,
  // so each shard can run the rule on its own slice with no coordination.
  virtual bool coordinate_wise() const = 0;
  // Direct form. inputs is d x n, column i is worker i's vector. Returns the
  // d-vector aggregate, or InvalidArgument for bad shapes, non-finite values
  // or n too small for f.
  virtual Result<Eigen::VectorXd> Aggregate(const Eigen::MatrixXd& inputs) = 0;

  // Gram form. Number k of extra columns the rule appends to G (centered
  // clipping: 1, the centre; flag: r, its initial subspace; others 0). May
  // depend on n (flag's default r).
  virtual int num_extra_columns(int n) const {
    (void)n;
    return 0;
  }
  // Rows [row_begin, row_begin + rows) of the extra columns, rows x k. A shard
  // generates them for its own coordinates: flag's seeded initial subspace is
  // a pure function of (seed, global row, column); centered clipping's centre
  // is the shard's slice of the previous aggregate, passed as
  // previous_aggregate (empty: the configured centre, else zero).
  virtual Result<Eigen::MatrixXd> ExtraColumns(int n, int64_t row_begin, int64_t rows,
                                               const Eigen::VectorXd& previous_aggregate) const {
    (void)row_begin;
    (void)previous_aggregate;
    return Eigen::MatrixXd(rows, num_extra_columns(n));
  }
  // Computes the plan from gram = [G | E]^T [G | E], (n+k) x (n+k), summed
  // over all shards. n is deduced as gram.rows() - k.
  virtual Result<GramPlan> PlanFromGram(const Eigen::MatrixXd& gram, int n) = 0;

  // Worker indices selected by the last Aggregate/PlanFromGram call (see
  // GramPlan::selected); empty for rules that select nothing.
  const std::vector<int>& selected() const { return selected_; }

 protected:
  std::vector<int> selected_;
};

// Creates the rule named options.name: mean, median, trimmed-mean, meamed,
// krum, multi-krum, geometric-median, centered-clipping, mda, bulyan, nna
// (robust-pivot NNA), monna, flag, and "nnm+<rule>" for any rule ("nnm+mean"
// is NNM then mean, the former "nna"). InvalidArgument for unknown
// names, unknown or out-of-range parameters.
Result<std::unique_ptr<Aggregator>> CreateAggregator(const AggregatorOptions& options);

// Whether the rule of `options` can combine n inputs: it is created and tried
// once on n seeded random vectors, in its direct form and (unless it is
// coordinate-wise) its Gram form, so the answer is the rule's own validity
// condition as every round would meet it (e.g. "bulyan: needs n >= 4f+3, got
// n=4, f=1"). Lets a launcher or server refuse an impossible configuration
// before anything starts. InvalidArgument naming the rule, n and f.
Status CheckRuleCanRun(const AggregatorOptions& options, int n);

// Names accepted by CreateAggregator (without the nnm+ compositions).
std::vector<std::string> AggregatorNames();

}  // namespace phalanx::aggregators
