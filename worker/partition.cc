#include "worker/partition.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "worker/internal/random.h"

namespace phalanx::worker {
namespace {

using internal::SplitMix64;

uint64_t Mix(uint64_t seed, uint64_t a, uint64_t b) {
  SplitMix64 r(seed ^ (a * 0xD1B54A32D192ED03ULL) ^ (b * 0x8CB92BA72F3D8DD7ULL));
  return r.Next();
}

// Uniform in (0, 1), never 0 so log() is finite.
double Uniform(SplitMix64& r) {
  return (static_cast<double>(r.Next() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

double Normal(SplitMix64& r) {
  return std::sqrt(-2.0 * std::log(Uniform(r))) * std::cos(6.283185307179586 * Uniform(r));
}

// log of a Gamma(alpha, 1) draw (Marsaglia–Tsang; alpha < 1 by boosting).
double LogGamma(double alpha, SplitMix64& r) {
  if (alpha < 1.0) return LogGamma(alpha + 1.0, r) + std::log(Uniform(r)) / alpha;
  const double d = alpha - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  while (true) {
    const double x = Normal(r);
    double v = 1.0 + c * x;
    if (v <= 0) continue;
    v = v * v * v;
    const double u = Uniform(r);
    if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return std::log(d * v);
  }
}

}  // namespace

std::vector<double> SampleDirichlet(double alpha, size_t k, uint64_t seed) {
  SplitMix64 r(seed);
  std::vector<double> lg(k);
  double mx = -std::numeric_limits<double>::infinity();
  for (auto& x : lg) {
    x = LogGamma(alpha, r);
    mx = std::max(mx, x);
  }
  double sum = 0;
  for (auto& x : lg) {
    x = std::exp(x - mx);
    sum += x;
  }
  for (auto& x : lg) x /= sum;
  return lg;
}

Result<Partition> Partition::Create(const Dataset& train, const PartitionOptions& o) {
  if (o.method != "dirichlet-equal" && o.method != "dirichlet" && o.method != "iid") {
    return InvalidArgument("partition must be dirichlet-equal, dirichlet or iid, got '" + o.method +
                           "'");
  }
  if (!(o.alpha > 0) || !std::isfinite(o.alpha)) {
    return InvalidArgument("data.alpha (Dirichlet concentration) must be > 0, got " +
                           std::to_string(o.alpha));
  }
  if (o.num_clients < 1) return InvalidArgument("need at least one client");
  if (o.samples_per_client < 0) return InvalidArgument("data.samples_per_client must be >= 0");
  if (train.size() == 0 || train.num_classes == 0) {
    return InvalidArgument("training set is empty");
  }
  if (train.size() > std::numeric_limits<int32_t>::max()) {
    return InvalidArgument("training set too large for 32-bit client indices");
  }
  Partition p;
  p.options_ = o;
  p.num_classes_ = train.num_classes;
  p.num_examples_ = static_cast<int32_t>(train.size());
  const auto n = static_cast<int64_t>(train.size());
  if (o.method != "dirichlet") {
    if (p.options_.samples_per_client == 0) p.options_.samples_per_client = n / o.num_clients;
    if (p.options_.samples_per_client == 0) {
      return InvalidArgument("every client would be empty: " + std::to_string(n) +
                             " examples over " + std::to_string(o.num_clients) +
                             " clients; set data.samples_per_client");
    }
    if (o.method == "dirichlet-equal") {
      p.pools_.resize(train.num_classes);
      for (size_t i = 0; i < train.size(); ++i) {
        const int32_t y = train.labels[i];
        if (y < 0 || static_cast<size_t>(y) >= train.num_classes) {
          return InvalidArgument("label out of range at example " + std::to_string(i));
        }
        p.pools_[static_cast<size_t>(y)].push_back(static_cast<uint32_t>(i));
      }
    }
    return p;
  }
  // Standard split: class by class, Dirichlet shares over the clients.
  const auto m = static_cast<size_t>(o.num_clients);
  std::vector<std::vector<uint32_t>> per_client(m);
  std::vector<std::vector<uint32_t>> by_class(train.num_classes);
  for (size_t i = 0; i < train.size(); ++i) {
    by_class[static_cast<size_t>(train.labels[i])].push_back(static_cast<uint32_t>(i));
  }
  for (size_t k = 0; k < by_class.size(); ++k) {
    auto& pool = by_class[k];
    internal::Shuffle(&pool, Mix(o.seed, 0x636c617373ULL, k));
    const auto q = SampleDirichlet(o.alpha, m, Mix(o.seed, 0x7368617265ULL, k));
    double cum = 0;
    size_t begin = 0;
    for (size_t c = 0; c < m; ++c) {
      cum += q[c];
      size_t end = c + 1 == m ? pool.size()
                              : std::min(pool.size(), static_cast<size_t>(std::llround(
                                                          cum * static_cast<double>(pool.size()))));
      end = std::max(end, begin);
      per_client[c].insert(per_client[c].end(), pool.begin() + static_cast<ptrdiff_t>(begin),
                           pool.begin() + static_cast<ptrdiff_t>(end));
      begin = end;
    }
  }
  p.offsets_.reserve(m + 1);
  p.offsets_.push_back(0);
  for (size_t c = 0; c < m; ++c) {
    if (per_client[c].empty()) {
      return InvalidArgument("client " + std::to_string(c) +
                             " has no examples after the Dirichlet(" + std::to_string(o.alpha) +
                             ") split of " + std::to_string(n) + " examples over " +
                             std::to_string(m) +
                             " clients; raise data.alpha, lower simulation.clients or use "
                             "data.partition = \"dirichlet-equal\"");
    }
    p.indices_.insert(p.indices_.end(), per_client[c].begin(), per_client[c].end());
    p.offsets_.push_back(static_cast<uint32_t>(p.indices_.size()));
  }
  return p;
}

int64_t Partition::ClientSize(int64_t c) const {
  if (c < 0 || c >= options_.num_clients) return 0;
  if (options_.method == "dirichlet") {
    return offsets_[static_cast<size_t>(c) + 1] - offsets_[static_cast<size_t>(c)];
  }
  return options_.samples_per_client;
}

std::vector<double> Partition::LabelProportions(int64_t c) const {
  if (options_.method == "iid") return std::vector<double>(num_classes_, 1.0 / num_classes_);
  if (options_.method == "dirichlet-equal") {
    // Classes with an empty pool get no share.
    std::vector<size_t> present;
    for (size_t k = 0; k < pools_.size(); ++k) {
      if (!pools_[k].empty()) present.push_back(k);
    }
    auto q = SampleDirichlet(options_.alpha, present.size(),
                             Mix(options_.seed, 0x70726f70ULL, static_cast<uint64_t>(c)));
    std::vector<double> out(num_classes_, 0.0);
    for (size_t j = 0; j < present.size(); ++j) out[present[j]] = q[j];
    return out;
  }
  return {};  // empirical proportions need the labels; callers count them.
}

void Partition::ClientIndices(int64_t c, std::vector<uint32_t>* out) const {
  out->clear();
  if (c < 0 || c >= options_.num_clients) return;
  if (options_.method == "dirichlet") {
    out->assign(indices_.begin() + offsets_[static_cast<size_t>(c)],
                indices_.begin() + offsets_[static_cast<size_t>(c) + 1]);
    return;
  }
  const auto n = static_cast<size_t>(options_.samples_per_client);
  out->resize(n);
  SplitMix64 r(Mix(options_.seed, 0x64726177ULL, static_cast<uint64_t>(c)));
  if (options_.method == "iid") {
    for (auto& x : *out) x = static_cast<uint32_t>(r.Below(static_cast<uint64_t>(num_examples_)));
    return;
  }
  const auto q = LabelProportions(c);
  std::vector<double> cdf(q.size());
  double cum = 0;
  for (size_t k = 0; k < q.size(); ++k) cdf[k] = (cum += q[k]);
  for (auto& x : *out) {
    const double u = Uniform(r) * cum;
    size_t k = static_cast<size_t>(std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
    k = std::min(k, q.size() - 1);
    while (pools_[k].empty()) k = (k + 1) % pools_.size();  // q_k = 0 there; rounding guard
    x = pools_[k][r.Below(pools_[k].size())];
  }
}

size_t Partition::MemoryBytes() const {
  size_t b = sizeof(*this) + indices_.capacity() * 4 + offsets_.capacity() * 4;
  for (const auto& p : pools_) b += p.capacity() * 4 + sizeof(p);
  return b;
}

}  // namespace phalanx::worker
