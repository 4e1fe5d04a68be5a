#include "ps/internal/coordination.h"

#include <algorithm>
#include <cereal/archives/binary.hpp>
#include <cereal/types/vector.hpp>
#include <sstream>

#include "common/cereal_body.h"

namespace phalanx::ps::internal {
namespace {

constexpr uint64_t kMaxWorkers = 1 << 14;
constexpr uint64_t kMaxEntries = 1ull << 24;  // doubles in a Gram or mixing matrix
// Rows or columns of one: workers plus extra columns (GramPartial::extra). A
// side bound as well as the entries' matters: a 0 x 2^40 matrix holds nothing,
// yet Eigen's loops over its columns (allFinite) would run for hours.
constexpr uint64_t kMaxSide = kMaxWorkers + 4096;
constexpr size_t kMaxErrorBytes = 4096;
constexpr size_t kMaxRuleNameBytes = 64;

template <class Ar>
void SaveMatrix(Ar& ar, const Eigen::MatrixXd& m) {
  int64_t rows = m.rows(), cols = m.cols();
  ar(rows, cols);
  ar(cereal::binary_data(m.data(), static_cast<size_t>(rows * cols) * sizeof(double)));
}

template <class Ar>
void LoadMatrix(Ar& ar, Eigen::MatrixXd& m) {
  int64_t rows = 0, cols = 0;
  ar(rows, cols);
  if (rows < 0 || cols < 0 || static_cast<uint64_t>(rows) > kMaxSide ||
      static_cast<uint64_t>(cols) > kMaxSide ||
      static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols) > kMaxEntries) {
    throw cereal::Exception("matrix size over limit");
  }
  m.resize(rows, cols);
  ar(cereal::binary_data(m.data(), static_cast<size_t>(rows * cols) * sizeof(double)));
}

template <class Ar, typename T>
void LoadVector(Ar& ar, std::vector<T>& v) {
  cereal::size_type n = 0;
  ar(cereal::make_size_tag(n));
  if (n > kMaxWorkers * 4) throw cereal::Exception("list over limit");
  v.resize(n);
  ar(cereal::binary_data(v.data(), n * sizeof(T)));
}

template <class Ar, typename T>
void SaveVector(Ar& ar, const std::vector<T>& v) {
  ar(cereal::make_size_tag(static_cast<cereal::size_type>(v.size())));
  ar(cereal::binary_data(v.data(), v.size() * sizeof(T)));
}

// Two parallel lists (ids ascending, counts >= 1), so a decoded state has the
// shape every writer gives it.
template <class Ar>
void SaveQuorum(Ar& ar, const QuorumState& q) {
  std::vector<int32_t> ids, missed;
  for (const auto& [id, m] : q) {
    ids.push_back(id);
    missed.push_back(m);
  }
  SaveVector(ar, ids);
  SaveVector(ar, missed);
}

template <class Ar>
void LoadQuorum(Ar& ar, QuorumState& q) {
  std::vector<int32_t> ids, missed;
  LoadVector(ar, ids);
  LoadVector(ar, missed);
  if (ids.size() != missed.size()) throw cereal::Exception("quorum lists differ in length");
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0 && ids[i] <= ids[i - 1]) throw cereal::Exception("quorum ids not ascending");
    if (missed[i] < 1) throw cereal::Exception("quorum count below 1");
    q.emplace_hint(q.end(), ids[i], missed[i]);
  }
}

}  // namespace

std::string EncodePartial(const GramPartial& p) {
  return EncodeBody([&](auto& ar) {
    SaveVector(ar, p.workers);
    SaveVector(ar, p.finite);
    ar(p.extra);
    SaveMatrix(ar, p.gram);
    SaveQuorum(ar, p.quorum);
  });
}

Result<GramPartial> DecodePartial(const std::string& bytes) {
  auto r = DecodeBody<GramPartial>(bytes, "GramPartial", [](auto& ar, GramPartial& p) {
    LoadVector(ar, p.workers);
    LoadVector(ar, p.finite);
    ar(p.extra);
    LoadMatrix(ar, p.gram);
    LoadQuorum(ar, p.quorum);
  });
  if (!r.ok()) return r;
  const GramPartial& p = *r;
  if (p.finite.size() != p.workers.size()) return InvalidArgument("GramPartial: finite flags");
  if (!std::is_sorted(p.workers.begin(), p.workers.end()) ||
      std::adjacent_find(p.workers.begin(), p.workers.end()) != p.workers.end()) {
    return InvalidArgument("GramPartial: workers not strictly ascending");
  }
  if (p.extra < 0 || p.extra > 4096) return InvalidArgument("GramPartial: extra columns");
  int64_t size = static_cast<int64_t>(p.workers.size()) + p.extra;
  if (p.gram.size() != 0 && (p.gram.rows() != size || p.gram.cols() != size)) {
    return InvalidArgument("GramPartial: Gram matrix is not (n+k)x(n+k)");
  }
  if (!p.gram.allFinite()) return InvalidArgument("GramPartial: Gram matrix not finite");
  return r;
}

std::string EncodePlan(const RoundPlan& p) {
  return EncodeBody([&](auto& ar) {
    SaveVector(ar, p.workers);
    ar(p.local);
    SaveString(ar, p.error);
    SaveString(ar, p.plan.coordinatewise_rule);
    ar(p.plan.coordinatewise_f);
    SaveMatrix(ar, p.plan.mixing);
    Eigen::MatrixXd c = p.plan.coefficients;
    SaveMatrix(ar, c);
    SaveVector(ar, p.plan.selected);
    SaveQuorum(ar, p.quorum);
  });
}

Result<RoundPlan> DecodePlan(const std::string& bytes) {
  return DecodeBody<RoundPlan>(bytes, "RoundPlan", [](auto& ar, RoundPlan& p) {
    LoadVector(ar, p.workers);
    ar(p.local);
    LoadBoundedString(ar, p.error, kMaxErrorBytes);
    LoadBoundedString(ar, p.plan.coordinatewise_rule, kMaxRuleNameBytes);
    ar(p.plan.coordinatewise_f);
    LoadMatrix(ar, p.plan.mixing);
    Eigen::MatrixXd c;
    LoadMatrix(ar, c);
    if (c.cols() > 1) throw cereal::Exception("coefficients must be a vector");
    p.plan.coefficients = c.size() ? Eigen::VectorXd(c.col(0)) : Eigen::VectorXd();
    LoadVector(ar, p.plan.selected);
    LoadQuorum(ar, p.quorum);
  });
}

std::vector<int> ColumnsOf(const std::vector<int32_t>& partial_workers,
                           const std::vector<int32_t>& workers, int extra) {
  std::vector<int> cols;
  for (int32_t w : workers) {
    auto it = std::lower_bound(partial_workers.begin(), partial_workers.end(), w);
    cols.push_back(it != partial_workers.end() && *it == w
                       ? static_cast<int>(it - partial_workers.begin())
                       : -1);
  }
  int n = static_cast<int>(partial_workers.size());
  for (int e = 0; e < extra; ++e) cols.push_back(n + e);
  return cols;
}

RoundPlan CombinePartials(aggregators::Aggregator& rule, const std::vector<GramPartial>& partials) {
  RoundPlan out;
  if (partials.empty()) {
    out.error = "no shard partials";
    return out;
  }
  // Workers usable everywhere: pushed to every shard, finite on every shard.
  std::vector<int32_t> usable = partials[0].workers;
  for (const auto& p : partials) {
    std::vector<int32_t> keep;
    for (int32_t w : usable) {
      auto it = std::lower_bound(p.workers.begin(), p.workers.end(), w);
      if (it != p.workers.end() && *it == w && p.finite[it - p.workers.begin()]) keep.push_back(w);
    }
    usable.swap(keep);
  }
  out.workers = usable;
  if (usable.empty()) {
    out.error = "no worker pushed a usable gradient to every shard";
    return out;
  }
  if (rule.coordinate_wise()) {
    out.local = true;
    return out;
  }
  const int n = static_cast<int>(usable.size());
  const int k = partials[0].extra;
  Eigen::MatrixXd gram = Eigen::MatrixXd::Zero(n + k, n + k);
  for (const auto& p : partials) {
    if (p.extra != k || p.gram.size() == 0) {
      out.error = "shards disagree on the rule's extra columns";
      return out;
    }
    std::vector<int> cols = ColumnsOf(p.workers, usable, k);
    for (int a = 0; a < n + k; ++a) {
      for (int b = 0; b < n + k; ++b) gram(a, b) += p.gram(cols[a], cols[b]);
    }
  }
  auto plan = rule.PlanFromGram(gram, n);
  if (!plan.ok()) {
    out.error = plan.status().ToString();
    return out;
  }
  out.plan = *plan;
  return out;
}

}  // namespace phalanx::ps::internal
