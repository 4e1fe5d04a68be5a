#include "aggregators/gram.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <string_view>
#include <vector>

#include "aggregators/internal/common.h"
#include "aggregators/internal/gram_dispatch.h"

namespace phalanx::aggregators {
namespace {

// Deterministic chunking: chunk partials are summed in chunk order, so the
// Gram matrix is bit-identical whatever the thread count.
constexpr Eigen::Index kChunkRows = 1 << 15;
constexpr Eigen::Index kBlockRows = internal::kGramBlockRows;

template <typename G>
Eigen::MatrixXd GramImpl(const internal::GramKernel& kernel, const G& gradients,
                         const SliceD& extras, bool parallel) {
  const Eigen::Index d = gradients.rows();
  const Eigen::Index n = gradients.cols();
  const Eigen::Index k = extras.cols();
  const Eigen::Index m = n + k;
  const Eigen::Index padded = kernel.padded_cols(m);
  const Eigen::Index chunks = std::max<Eigen::Index>(1, (d + kChunkRows - 1) / kChunkRows);
  std::vector<Eigen::MatrixXd> partial(chunks);
  auto run_chunk = [&](Eigen::Index c) {
    Eigen::MatrixXd acc = Eigen::MatrixXd::Zero(m, m);
    // Column-major kBlockRows x padded, zero outside the data (padding
    // columns stay zero; padding rows are cleared for a short last block).
    std::vector<double> block(static_cast<size_t>(kBlockRows * padded), 0.0);
    Eigen::Map<Eigen::MatrixXd> view(block.data(), kBlockRows, padded);
    const Eigen::Index end = std::min(d, (c + 1) * kChunkRows);
    for (Eigen::Index b = c * kChunkRows; b < end; b += kBlockRows) {
      const Eigen::Index len = std::min(kBlockRows, end - b);
      if (len < kBlockRows) view.setZero();
      // One conversion per value; the n(n+1)/2 products then run from cache.
      // One conversion per value; the n(n+1)/2 products then run from cache.
      view.topLeftCorner(len, n) = gradients.middleRows(b, len).template cast<double>();
      if (k > 0) view.block(0, n, len, k) = extras.middleRows(b, len);
      kernel.accumulate(block.data(), len, m, acc.data(), acc.rows());
    }
    partial[c] = std::move(acc);
  };
  if (chunks == 1 || !parallel) {
    for (Eigen::Index c = 0; c < chunks; ++c) run_chunk(c);
  } else {
    tbb::parallel_for(Eigen::Index{0}, chunks, run_chunk);
  }
  Eigen::MatrixXd gram = Eigen::MatrixXd::Zero(m, m);
  for (const auto& p : partial) gram += p;
  // The kernel fills the lower triangle; mirror it so the result is exactly
  // symmetric (exact Krum ties depend on symmetric distances).
  for (Eigen::Index i = 0; i < m; ++i) {
    for (Eigen::Index j = i + 1; j < m; ++j) gram(i, j) = gram(j, i);
  }
  return gram;
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

template <typename G>
Result<Eigen::VectorXd> ApplyImpl(const GramPlan& plan, const G& gradients, const SliceD& extras) {
  const Eigen::Index rows = gradients.rows();
  const Eigen::Index n = gradients.cols();
  const Eigen::Index k = extras.cols();
  if (extras.rows() != rows && k > 0) {
    return InvalidArgument("ApplyGramPlan: extras have " + std::to_string(extras.rows()) +
                           " rows, gradients " + std::to_string(rows));
  }
  if (plan.mixing.rows() != n + k) {
    return InvalidArgument("ApplyGramPlan: plan mixes " + std::to_string(plan.mixing.rows()) +
                           " columns but the slice has " + std::to_string(n) + " workers + " +
                           std::to_string(k) + " extra columns");
  }
  if (plan.coordinatewise_rule.empty()) {
    if (plan.coefficients.size() != plan.mixing.cols()) {
      return InvalidArgument("ApplyGramPlan: coefficients do not match the mixing matrix");
    }
    const Eigen::VectorXd c = plan.mixing * plan.coefficients;
    Eigen::VectorXd out(rows);
    tbb::parallel_for(Eigen::Index{0}, (rows + kChunkRows - 1) / kChunkRows, [&](Eigen::Index ch) {
      const Eigen::Index b = ch * kChunkRows;
      const Eigen::Index len = std::min(kChunkRows, rows - b);
      out.segment(b, len).noalias() =
          gradients.middleRows(b, len).template cast<double>() * c.head(n);
      // Skip the extra columns when unused (flag's initial subspace almost
      // always is): they may be as large as the gradients.
      if (k > 0 && !c.tail(k).isZero(0.0)) {
        out.segment(b, len).noalias() += extras.middleRows(b, len) * c.tail(k);
      }
    });
    return out;
  }
  Eigen::MatrixXd mixed = gradients.template cast<double>() * plan.mixing.topRows(n);
  if (k > 0) mixed.noalias() += extras * plan.mixing.bottomRows(k);
  return internal::ApplyCoordinatewise(plan.coordinatewise_rule, plan.coordinatewise_f, mixed);
}

template <typename G>
Result<Eigen::MatrixXd> CheckedGram(const G& gradients, const SliceD& extras, bool parallel) {
  if (extras.cols() > 0 && extras.rows() != gradients.rows()) {
    return InvalidArgument("PartialGram: extras have " + std::to_string(extras.rows()) +
                           " rows, gradients " + std::to_string(gradients.rows()));
  }
  const Result<const internal::GramKernel*>& kernel = internal::ActiveGramKernel();
  if (!kernel.ok()) return kernel.status();
  return GramImpl(**kernel, gradients, extras, parallel);
}

}  // namespace

namespace internal {

Eigen::MatrixXd PartialGramWith(const GramKernel& kernel, const SliceF& gradients,
                                const SliceD& extras, bool parallel) {
  return GramImpl(kernel, gradients, extras, parallel);
}

Eigen::MatrixXd PartialGramWith(const GramKernel& kernel, const SliceD& gradients,
                                const SliceD& extras, bool parallel) {
  return GramImpl(kernel, gradients, extras, parallel);
}

}  // namespace internal

std::string_view GramKernelName() {
  const Result<const internal::GramKernel*>& kernel = internal::ActiveGramKernel();
  if (!kernel.ok()) {
    static const std::string kRefused = "none (" + kernel.status().ToString() + ")";
    return kRefused;
  }
  return (*kernel)->name;
}

Result<Eigen::MatrixXd> PartialGram(const SliceF& gradients, const SliceD& extras, bool parallel) {
  return CheckedGram(gradients, extras, parallel);
}

Result<Eigen::MatrixXd> PartialGram(const SliceF& gradients, bool parallel) {
  const Eigen::MatrixXd none(gradients.rows(), 0);
  return CheckedGram(gradients, none, parallel);
}

Result<Eigen::MatrixXd> PartialGram(const SliceD& gradients, const SliceD& extras, bool parallel) {
  return CheckedGram(gradients, extras, parallel);
}

Result<Eigen::VectorXd> ApplyGramPlan(const GramPlan& plan, const SliceD& gradients,
                                      const SliceD& extras) {
  return ApplyImpl(plan, gradients, extras);
}

Result<Eigen::VectorXd> ApplyGramPlan(const GramPlan& plan, const SliceF& gradients,
                                      const SliceD& extras) {
  return ApplyImpl(plan, gradients, extras);
}

Result<Eigen::VectorXd> AggregateViaGram(Aggregator& rule, const Eigen::MatrixXd& inputs,
                                         int slices, const Eigen::VectorXd& previous_aggregate) {
  const Eigen::Index d = inputs.rows();
  const int n = static_cast<int>(inputs.cols());
  if (slices < 1 || d < 1 || n < 1) {
    return InvalidArgument("AggregateViaGram: needs slices >= 1 and non-empty inputs");
  }
  if (previous_aggregate.size() != 0 && previous_aggregate.size() != d) {
    return InvalidArgument("AggregateViaGram: previous aggregate has the wrong dimension");
  }
  const Eigen::Index s = std::min<Eigen::Index>(slices, d);
  std::vector<Eigen::Index> begin(s + 1);
  for (Eigen::Index i = 0; i <= s; ++i) begin[i] = d * i / s;
  std::vector<Eigen::MatrixXd> extras(s);
  Eigen::MatrixXd gram;
  for (Eigen::Index i = 0; i < s; ++i) {
    const Eigen::Index rows = begin[i + 1] - begin[i];
    const Eigen::VectorXd prev = previous_aggregate.size() == 0
                                     ? Eigen::VectorXd()
                                     : Eigen::VectorXd(previous_aggregate.segment(begin[i], rows));
    PHX_ASSIGN_OR_RETURN(extras[i], rule.ExtraColumns(n, begin[i], rows, prev));
    PHX_ASSIGN_OR_RETURN(Eigen::MatrixXd part,
                         PartialGram(inputs.middleRows(begin[i], rows), extras[i]));
    if (i == 0) {
      gram = std::move(part);
    } else {
      gram += part;
    }
  }
  PHX_ASSIGN_OR_RETURN(const GramPlan plan, rule.PlanFromGram(gram, n));
  Eigen::VectorXd out(d);
  for (Eigen::Index i = 0; i < s; ++i) {
    const Eigen::Index rows = begin[i + 1] - begin[i];
    PHX_ASSIGN_OR_RETURN(const Eigen::VectorXd part,
                         ApplyGramPlan(plan, inputs.middleRows(begin[i], rows), extras[i]));
    out.segment(begin[i], rows) = part;
  }
  return out;
}

Eigen::MatrixXd SeededUniformColumns(uint64_t seed, int64_t row_begin, int64_t rows, int cols) {
  Eigen::MatrixXd out(rows, cols);
  const uint64_t base = SplitMix64(seed);
  for (int c = 0; c < cols; ++c) {
    const uint64_t col_key = SplitMix64(base ^ (0xD1B54A32D192ED03ULL * (c + 1)));
    for (int64_t r = 0; r < rows; ++r) {
      const uint64_t z = SplitMix64(col_key + static_cast<uint64_t>(row_begin + r));
      out(r, c) = static_cast<double>(z >> 11) * 0x1.0p-53 - 0.5;
    }
  }
  return out;
}

}  // namespace phalanx::aggregators
