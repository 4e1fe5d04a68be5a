#include "aggregators/gram.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "aggregators/internal/common.h"

namespace phalanx::aggregators {
namespace {

// Deterministic chunking: chunk partials are summed in chunk order, so the
// Gram matrix is bit-identical whatever the thread count.
constexpr Eigen::Index kChunkRows = 1 << 15;
// Cache block: 256 rows x (n+k) doubles, 32 KB for n+k = 16: the tile loop
// reads it from L1 (512 rows measured 20-25% slower at n = 15).
constexpr Eigen::Index kBlockRows = 256;
// Register tile of the Gram kernel: 4 x 4 column pairs, 8 rows per step
// (16 accumulators of one 512-bit vector each).
constexpr Eigen::Index kTile = 4;
constexpr Eigen::Index kLanes = 8;

// acc(i, j) += sum_r block(r, i) * block(r, j) for the lower triangle j <= i,
// over a column-major block of kBlockRows rows (zero-padded past `len`) and
// m4 columns (a multiple of kTile, zero-padded past the real ones). Eigen's
// rankUpdate spends most of its time packing for a 15 x 15 result; this
// kernel keeps a 4 x 4 tile of dot products in registers and streams the
// block through them: 16 FMAs per 8 loads. The lane sums are reduced in a
// fixed order, so results do not depend on threads or alignment.
// Eight doubles, one 512-bit register with AVX-512 (two or four narrower
// ones otherwise; GCC lowers the vector type).
using V8 = double __attribute__((vector_size(64)));
static_assert(kLanes == 8, "V8 holds kLanes doubles");

inline V8 LoadV8(const double* p) {
  V8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

void AccumulateGramBlock(const double* block, Eigen::Index len, Eigen::Index m4,
                         Eigen::MatrixXd& acc) {
  const Eigen::Index steps = (len + kLanes - 1) / kLanes;
  for (Eigen::Index i0 = 0; i0 < m4; i0 += kTile) {
    for (Eigen::Index j0 = 0; j0 <= i0; j0 += kTile) {
      V8 s[kTile][kTile];
#pragma GCC unroll 4
      for (Eigen::Index x = 0; x < kTile; ++x) {
#pragma GCC unroll 4
        for (Eigen::Index y = 0; y < kTile; ++y) s[x][y] = V8{};
      }
      const double* a = block + i0 * kBlockRows;
      const double* b = block + j0 * kBlockRows;
      for (Eigen::Index t = 0; t < steps; ++t) {
        const Eigen::Index r = t * kLanes;
        V8 av[kTile], bv[kTile];
#pragma GCC unroll 4
        for (Eigen::Index x = 0; x < kTile; ++x) {
          av[x] = LoadV8(a + x * kBlockRows + r);
          bv[x] = LoadV8(b + x * kBlockRows + r);
        }
#pragma GCC unroll 4
        for (Eigen::Index x = 0; x < kTile; ++x) {
#pragma GCC unroll 4
          for (Eigen::Index y = 0; y < kTile; ++y) s[x][y] += av[x] * bv[y];
        }
      }
      for (Eigen::Index x = 0; x < kTile; ++x) {
        for (Eigen::Index y = 0; y < kTile; ++y) {
          if (j0 + y > i0 + x || i0 + x >= acc.rows()) continue;
          const V8& v = s[x][y];
          acc(i0 + x, j0 + y) += ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
        }
      }
    }
  }
}

template <typename G>
Eigen::MatrixXd GramImpl(const G& gradients, const SliceD& extras, bool parallel) {
  const Eigen::Index d = gradients.rows();
  const Eigen::Index n = gradients.cols();
  const Eigen::Index k = extras.cols();
  const Eigen::Index m = n + k;
  const Eigen::Index m4 = (m + kTile - 1) / kTile * kTile;
  const Eigen::Index chunks = std::max<Eigen::Index>(1, (d + kChunkRows - 1) / kChunkRows);
  std::vector<Eigen::MatrixXd> partial(chunks);
  auto run_chunk = [&](Eigen::Index c) {
    Eigen::MatrixXd acc = Eigen::MatrixXd::Zero(m, m);
    // Column-major kBlockRows x m4, zero outside the data (padding columns
    // stay zero; padding rows are cleared for a short last block).
    std::vector<double> block(static_cast<size_t>(kBlockRows * m4), 0.0);
    Eigen::Map<Eigen::MatrixXd> view(block.data(), kBlockRows, m4);
    const Eigen::Index end = std::min(d, (c + 1) * kChunkRows);
    for (Eigen::Index b = c * kChunkRows; b < end; b += kBlockRows) {
      const Eigen::Index len = std::min(kBlockRows, end - b);
      if (len < kBlockRows) view.setZero();
      // One conversion per value; the n(n+1)/2 products then run from cache.
      view.topLeftCorner(len, n) = gradients.middleRows(b, len).template cast<double>();
      if (k > 0) view.block(0, n, len, k) = extras.middleRows(b, len);
      AccumulateGramBlock(block.data(), len, m4, acc);
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

}  // namespace

Result<Eigen::MatrixXd> PartialGram(const SliceF& gradients, const SliceD& extras, bool parallel) {
  if (extras.cols() > 0 && extras.rows() != gradients.rows()) {
    return InvalidArgument("PartialGram: extras have " + std::to_string(extras.rows()) +
                           " rows, gradients " + std::to_string(gradients.rows()));
  }
  return GramImpl(gradients, extras, parallel);
}

Result<Eigen::MatrixXd> PartialGram(const SliceF& gradients, bool parallel) {
  const Eigen::MatrixXd none(gradients.rows(), 0);
  return GramImpl(gradients, none, parallel);
}

Result<Eigen::MatrixXd> PartialGram(const SliceD& gradients, const SliceD& extras, bool parallel) {
  if (extras.cols() > 0 && extras.rows() != gradients.rows()) {
    return InvalidArgument("PartialGram: extras have " + std::to_string(extras.rows()) +
                           " rows, gradients " + std::to_string(gradients.rows()));
  }
  return GramImpl(gradients, extras, parallel);
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
