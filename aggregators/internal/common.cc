#include "aggregators/internal/common.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace phalanx::aggregators::internal {
namespace {

// Rows per deterministic work chunk: partial results are summed in chunk
// order, so the result does not depend on the number of threads.
constexpr Eigen::Index kChunkRows = 1 << 15;
// Rows per cache block inside a chunk (31 columns x 512 doubles = 124 KiB).
constexpr Eigen::Index kBlockRows = 512;

template <typename Fn>
void ForEachRowRange(Eigen::Index rows, Fn&& fn) {
  if (rows <= kChunkRows) {
    fn(Eigen::Index{0}, rows);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<Eigen::Index>(0, rows, kChunkRows / 4),
                    [&](const tbb::blocked_range<Eigen::Index>& r) { fn(r.begin(), r.end()); });
}

}  // namespace

Status CheckInputs(const Eigen::MatrixXd& inputs, int min_cols, const std::string& rule) {
  if (inputs.rows() == 0) return InvalidArgument(rule + ": inputs have dimension 0");
  if (inputs.cols() < min_cols) {
    return InvalidArgument(rule + ": needs at least " + std::to_string(min_cols) +
                           " input vectors, got " + std::to_string(inputs.cols()));
  }
  if (!inputs.allFinite()) {
    for (Eigen::Index i = 0; i < inputs.cols(); ++i) {
      if (!inputs.col(i).allFinite()) {
        return InvalidArgument(rule + ": input " + std::to_string(i) +
                               " has a non-finite value (the cluster drops such workers "
                               "before aggregation)");
      }
    }
  }
  return Status::Ok();
}

Status CheckGram(const Eigen::MatrixXd& gram, int n, int k, const std::string& rule) {
  if (gram.rows() != gram.cols()) return InvalidArgument(rule + ": Gram matrix is not square");
  if (n < 1 || gram.rows() != n + k) {
    return InvalidArgument(rule + ": Gram matrix is " + std::to_string(gram.rows()) + "x" +
                           std::to_string(gram.cols()) + ", expected " + std::to_string(n + k) +
                           " (n=" + std::to_string(n) + " workers + " + std::to_string(k) +
                           " extra columns)");
  }
  if (!gram.allFinite()) {
    return InvalidArgument(rule + ": Gram matrix has non-finite entries (non-finite inputs)");
  }
  return Status::Ok();
}

std::vector<int> StableSmallest(const Eigen::VectorXd& keys, int k) {
  std::vector<int> idx(keys.size());
  std::iota(idx.begin(), idx.end(), 0);
  k = std::clamp<int>(k, 0, static_cast<int>(idx.size()));
  auto less = [&](int a, int b) { return keys[a] < keys[b] || (keys[a] == keys[b] && a < b); };
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), less);
  idx.resize(k);
  return idx;
}

Eigen::MatrixXd PairwiseSquaredDistances(const Eigen::MatrixXd& x) {
  const Eigen::Index n = x.cols();
  const Eigen::Index d = x.rows();
  const Eigen::Index chunks = std::max<Eigen::Index>(1, (d + kChunkRows - 1) / kChunkRows);
  std::vector<Eigen::MatrixXd> partial(chunks, Eigen::MatrixXd::Zero(n, n));
  auto run_chunk = [&](Eigen::Index c) {
    Eigen::MatrixXd& acc = partial[c];
    const Eigen::Index end = std::min(d, (c + 1) * kChunkRows);
    for (Eigen::Index b = c * kChunkRows; b < end; b += kBlockRows) {
      const Eigen::Index len = std::min(kBlockRows, end - b);
      for (Eigen::Index i = 0; i < n; ++i) {
        const auto xi = x.col(i).segment(b, len);
        for (Eigen::Index j = i + 1; j < n; ++j) {
          acc(i, j) += (xi - x.col(j).segment(b, len)).squaredNorm();
        }
      }
    }
  };
  if (chunks == 1) {
    run_chunk(0);
  } else {
    tbb::parallel_for(Eigen::Index{0}, chunks, run_chunk);
  }
  Eigen::MatrixXd d2 = Eigen::MatrixXd::Zero(n, n);
  for (const auto& p : partial) d2 += p;
  for (Eigen::Index i = 0; i < n; ++i) {
    d2(i, i) = 0.0;
    for (Eigen::Index j = i + 1; j < n; ++j) d2(j, i) = d2(i, j);
  }
  return d2;
}

Eigen::MatrixXd SquaredDistancesFromGram(const Eigen::MatrixXd& gram, int n) {
  Eigen::MatrixXd d2 = Eigen::MatrixXd::Zero(n, n);
  for (int i = 0; i < n; ++i) {
    for (int j = i + 1; j < n; ++j) {
      const double v = std::max(0.0, gram(i, i) + gram(j, j) - 2.0 * gram(i, j));
      d2(i, j) = v;
      d2(j, i) = v;
    }
  }
  return d2;
}

Eigen::VectorXd KrumScores(const Eigen::MatrixXd& d2, const std::vector<int>& rows,
                           int neighbours) {
  const int m = static_cast<int>(rows.size());
  Eigen::VectorXd scores(m);
  std::vector<double> row(m);
  for (int a = 0; a < m; ++a) {
    for (int b = 0; b < m; ++b) row[b] = d2(rows[a], rows[b]);
    std::sort(row.begin(), row.end());
    double sum = 0.0;
    for (int t = 1; t <= neighbours && t < m; ++t) sum += row[t];
    scores[a] = neighbours > 0 ? sum / neighbours : 0.0;
  }
  return scores;
}

Eigen::MatrixXd NnmMixing(const Eigen::MatrixXd& d2, int f,
                          std::vector<std::vector<int>>* neighbours) {
  const int n = static_cast<int>(d2.rows());
  const int k = n - f;
  Eigen::MatrixXd mix = Eigen::MatrixXd::Zero(n, n);
  if (neighbours != nullptr) neighbours->assign(n, {});
  for (int i = 0; i < n; ++i) {
    std::vector<int> sel = StableSmallest(d2.row(i).transpose(), k);
    for (int j : sel) mix(j, i) = 1.0 / k;
    if (neighbours != nullptr) {
      std::sort(sel.begin(), sel.end());
      (*neighbours)[i] = std::move(sel);
    }
  }
  return mix;
}

namespace {

struct MdaSearch {
  const Eigen::MatrixXd& dist;
  int n;
  int k;
  double best = std::numeric_limits<double>::infinity();
  std::vector<int> best_set = {};
  std::vector<int> current = {};

  // Extends `current` with indices >= next in increasing order, i.e. visits
  // combinations lexicographically; prunes when the partial diameter already
  // reaches the best (no completion could be strictly smaller).
  void Visit(int next, double diam) {
    if (static_cast<int>(current.size()) == k) {
      if (diam < best) {
        best = diam;
        best_set = current;
      }
      return;
    }
    const int need = k - static_cast<int>(current.size());
    for (int c = next; c <= n - need; ++c) {
      double d = diam;
      for (int s : current) d = std::max(d, dist(s, c));
      if (d >= best) continue;
      current.push_back(c);
      Visit(c + 1, d);
      current.pop_back();
    }
  }
};

}  // namespace

std::vector<int> MinDiameterSubset(const Eigen::MatrixXd& dist, int k) {
  MdaSearch search{dist, static_cast<int>(dist.rows()), k};
  search.current.reserve(k);
  search.Visit(0, 0.0);
  return search.best_set;
}

std::vector<int> BulyanSelection(const Eigen::MatrixXd& d2, int f, int theta) {
  std::vector<int> remaining(d2.rows());
  std::iota(remaining.begin(), remaining.end(), 0);
  std::vector<int> order;
  for (int round = 0; round < theta; ++round) {
    const int m = static_cast<int>(remaining.size());
    const Eigen::VectorXd scores = KrumScores(d2, remaining, m - f - 1);
    const int pos = StableSmallest(scores, 1)[0];
    order.push_back(remaining[pos]);
    remaining.erase(remaining.begin() + pos);
  }
  return order;
}

namespace {

template <typename RowFn>
Eigen::VectorXd PerCoordinate(const Eigen::MatrixXd& x, RowFn&& fn) {
  Eigen::VectorXd out(x.rows());
  ForEachRowRange(x.rows(), [&](Eigen::Index begin, Eigen::Index end) {
    std::vector<double> buf(x.cols());
    std::vector<int> idx(x.cols());
    for (Eigen::Index r = begin; r < end; ++r) {
      for (Eigen::Index i = 0; i < x.cols(); ++i) buf[i] = x(r, i);
      out[r] = fn(buf, idx);
    }
  });
  return out;
}

double MedianInPlace(std::vector<double>& v) {
  const size_t n = v.size();
  const size_t mid = n / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  const double upper = v[mid];
  if (n % 2 == 1) return upper;
  const double lower = *std::max_element(v.begin(), v.begin() + mid);
  return (lower + upper) / 2.0;
}

}  // namespace

Eigen::VectorXd CoordinateMedian(const Eigen::MatrixXd& x) {
  return PerCoordinate(x,
                       [](std::vector<double>& v, std::vector<int>&) { return MedianInPlace(v); });
}

Eigen::VectorXd CoordinateTrimmedMean(const Eigen::MatrixXd& x, int f) {
  return PerCoordinate(x, [f](std::vector<double>& v, std::vector<int>&) {
    std::sort(v.begin(), v.end());
    double sum = 0.0;
    const int n = static_cast<int>(v.size());
    for (int i = f; i < n - f; ++i) sum += v[i];
    return sum / (n - 2 * f);
  });
}

Eigen::VectorXd CoordinateMeamed(const Eigen::MatrixXd& x, int f) {
  return PerCoordinate(x, [f](std::vector<double>& v, std::vector<int>& idx) {
    const int n = static_cast<int>(v.size());
    std::vector<double> copy = v;
    const double med = MedianInPlace(copy);
    std::iota(idx.begin(), idx.end(), 0);
    auto less = [&](int a, int b) {
      const double ka = std::abs(v[a] - med);
      const double kb = std::abs(v[b] - med);
      return ka < kb || (ka == kb && a < b);
    };
    const int keep = n - f;
    std::partial_sort(idx.begin(), idx.begin() + keep, idx.end(), less);
    double sum = 0.0;
    for (int t = 0; t < keep; ++t) sum += v[idx[t]];
    return sum / keep;
  });
}

Result<Eigen::VectorXd> ApplyCoordinatewise(const std::string& rule, int f,
                                            const Eigen::MatrixXd& x) {
  const int n = static_cast<int>(x.cols());
  if (n == 0) return InvalidArgument(rule + ": no input vectors");
  if (rule == "mean") return Eigen::VectorXd(x.rowwise().mean());
  if (rule == "median") return CoordinateMedian(x);
  if (rule == "trimmed-mean") {
    if (f < 0 || 2 * f >= n) return InvalidArgument("trimmed-mean: needs 2f < n");
    return CoordinateTrimmedMean(x, f);
  }
  if (rule == "meamed") {
    if (f < 0 || f >= n) return InvalidArgument("meamed: needs f < n");
    return CoordinateMeamed(x, f);
  }
  return InvalidArgument("unknown coordinate-wise rule '" + rule + "'");
}

Eigen::VectorXd MixColumns(const Eigen::MatrixXd& x, const Eigen::VectorXd& c) {
  Eigen::VectorXd out(x.rows());
  ForEachRowRange(x.rows(), [&](Eigen::Index begin, Eigen::Index end) {
    out.segment(begin, end - begin).noalias() = x.middleRows(begin, end - begin) * c;
  });
  return out;
}

}  // namespace phalanx::aggregators::internal
