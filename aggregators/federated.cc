#include "aggregators/federated.h"

#include <algorithm>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>
#include <cmath>
#include <cstring>
#include <set>

#include "common/cereal_body.h"

namespace phalanx::aggregators {
namespace {

uint64_t SplitMixNext(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Uniform in [0, bound), unbiased (rejection of the short last interval).
uint64_t Below(uint64_t* state, uint64_t bound) {
  if (bound <= 1) return 0;
  const uint64_t threshold = (0 - bound) % bound;
  while (true) {
    const uint64_t r = SplitMixNext(state);
    if (r >= threshold) return r % bound;
  }
}

// Branch-free within blocks so that it vectorises (it runs on every update):
// a float is inf or NaN iff its exponent bits are all set.
bool AllFinite(std::span<const float> v) {
  constexpr size_t kBlock = 512;
  for (size_t i = 0; i < v.size(); i += kBlock) {
    const size_t end = std::min(v.size(), i + kBlock);
    uint32_t bad = 0;
    for (size_t j = i; j < end; ++j) {
      uint32_t bits;
      std::memcpy(&bits, &v[j], sizeof(bits));
      bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
    }
    if (bad != 0) return false;
  }
  return true;
}

}  // namespace

Status ValidateStaleness(const StalenessOptions& s) {
  static const std::set<std::string> kFns = {"constant", "polynomial", "hinge", "sqrt"};
  if (!kFns.count(s.fn)) {
    return InvalidArgument("staleness must be constant, polynomial, hinge or sqrt, got '" + s.fn +
                           "'");
  }
  if (!(s.a >= 0) || !std::isfinite(s.a)) return InvalidArgument("staleness_a must be >= 0");
  if (!(s.b >= 0) || !std::isfinite(s.b)) return InvalidArgument("staleness_b must be >= 0");
  return Status::Ok();
}

double StalenessWeight(const StalenessOptions& s, int64_t staleness) {
  const double d = static_cast<double>(std::max<int64_t>(staleness, 0));
  if (s.fn == "polynomial") return std::pow(d + 1.0, -s.a);
  if (s.fn == "hinge") return d <= s.b ? 1.0 : 1.0 / (s.a * (d - s.b) + 1.0);
  if (s.fn == "sqrt") return 1.0 / std::sqrt(1.0 + d);
  return 1.0;
}

double FxTime(int64_t client, int64_t num_clients, double fastest_percent) {
  if (num_clients <= 1) return 1.0;
  return 1.0 - (static_cast<double>(client) / static_cast<double>(num_clients - 1)) *
                   fastest_percent / 100.0;
}

Status ResolveFederatedOptions(FederatedOptions* o) {
  const std::string& a = o->algorithm;
  if (a != "fedavg" && a != "async" && a != "fedasync" && a != "fedbuff" && a != "fedfix") {
    return InvalidArgument("algorithm must be fedavg, async, fedasync, fedbuff or fedfix, got '" +
                           a + "'");
  }
  if (!(o->server_lr > 0) || !std::isfinite(o->server_lr)) {
    return InvalidArgument("server_lr must be a positive number");
  }
  if (o->weights.empty()) {
    o->weights = a == "fedavg"                         ? "importance"
                 : (a == "fedbuff" || a == "fedasync") ? "identical"
                                                       : "fraboni";
  }
  const std::string& w = o->weights;
  bool ok_w = false;
  if (a == "fedavg") ok_w = w == "importance" || w == "data-size";
  if (a == "async" || a == "fedfix") ok_w = w == "fraboni" || w == "identical";
  if (a == "fedbuff" || a == "fedasync") ok_w = w == "identical";
  if (!ok_w) {
    return InvalidArgument("weights '" + w + "' is not available for " + a +
                           " (fedavg: importance|data-size; async, fedfix: fraboni|identical; "
                           "fedbuff, fedasync: identical)");
  }
  if (o->clients_per_round < 0) return InvalidArgument("clients_per_round must be >= 0");
  if (a == "fedbuff" && o->buffer_size < 1) {
    return InvalidArgument("buffer_size (K_b) must be >= 1, got " + std::to_string(o->buffer_size));
  }
  if (a == "fedfix" && (!(o->window > 0) || !std::isfinite(o->window))) {
    return InvalidArgument("window (FedFix Δt) must be > 0");
  }
  if (a == "fedasync" && (!(o->mix_alpha > 0) || o->mix_alpha > 1)) {
    return InvalidArgument("mix_alpha (FedAsync α) must be in (0, 1]");
  }
  if (o->staleness.fn.empty()) o->staleness.fn = a == "fedbuff" ? "sqrt" : "constant";
  PHX_RETURN_IF_ERROR(ValidateStaleness(o->staleness));
  if (o->max_staleness < -1) return InvalidArgument("max_staleness must be >= 0 or -1 (none)");
  if (o->redispatch.empty()) {
    o->redispatch = (a == "fedfix" || a == "fedavg") ? "at-trigger" : "immediately";
  }
  if (o->redispatch != "immediately" && o->redispatch != "at-trigger") {
    return InvalidArgument("redispatch must be immediately or at-trigger, got '" + o->redispatch +
                           "'");
  }
  if (a == "fedfix" && o->redispatch != "at-trigger") {
    return InvalidArgument("fedfix redispatches at the window close (redispatch = at-trigger)");
  }
  if ((a == "async" || a == "fedasync") && o->redispatch != "immediately") {
    return InvalidArgument(a + " applies every update at once (redispatch = immediately)");
  }
  if (o->robust.name.empty()) o->robust.name = "mean";
  if (o->robust.name != "mean" && (a == "async" || a == "fedasync")) {
    return InvalidArgument("robust rule '" + o->robust.name + "' needs a set of updates; " + a +
                           " applies one at a time (use fedavg, fedbuff or fedfix)");
  }
  return Status::Ok();
}

Result<std::unique_ptr<FederatedServer>> FederatedServer::Create(
    const FederatedOptions& options, int64_t num_clients, std::vector<float> initial_model,
    std::vector<float> importance, std::vector<float> mean_time, uint64_t seed) {
  FederatedOptions o = options;
  PHX_RETURN_IF_ERROR(ResolveFederatedOptions(&o));
  if (num_clients < 1) return InvalidArgument("need at least one client");
  if (o.clients_per_round > num_clients) {
    return InvalidArgument("clients_per_round " + std::to_string(o.clients_per_round) +
                           " exceeds the " + std::to_string(num_clients) + " clients");
  }
  if (initial_model.empty() || !AllFinite(initial_model)) {
    return InvalidArgument("initial model must be non-empty and finite");
  }
  if (!importance.empty()) {
    if (static_cast<int64_t>(importance.size()) != num_clients) {
      return InvalidArgument("importance needs one p_i per client");
    }
    for (float p : importance) {
      if (!(p >= 0) || !std::isfinite(p)) return InvalidArgument("importance p_i must be >= 0");
    }
  }
  if (!mean_time.empty()) {
    if (static_cast<int64_t>(mean_time.size()) != num_clients) {
      return InvalidArgument("mean_time needs one τ_i per client");
    }
    for (float t : mean_time) {
      if (!(t > 0) || !std::isfinite(t)) return InvalidArgument("mean_time τ_i must be > 0");
    }
  }
  std::unique_ptr<Aggregator> rule;
  if (o.robust.name != "mean") {
    PHX_ASSIGN_OR_RETURN(rule, CreateAggregator(o.robust));
  }
  std::unique_ptr<FederatedServer> s(new FederatedServer(o, num_clients, std::move(importance),
                                                         std::move(mean_time), std::move(rule)));
  s->state_.model = std::move(initial_model);
  s->state_.accumulator.assign(s->state_.model.size(), 0.0);
  s->state_.rng_state = seed * 0x9e3779b97f4a7c15ULL + 0x46656441ULL;
  s->state_.staleness_histogram.assign(kStalenessBins + 1, 0);
  if (o.algorithm == "fedfix") s->state_.next_tick = o.window;
  if (s->mean_time_.empty()) {
    s->state_.tau_estimate.assign(static_cast<size_t>(num_clients), 1.0f);
    s->inv_tau_sum_ = static_cast<double>(num_clients);
  }
  return s;
}

FederatedServer::FederatedServer(FederatedOptions options, int64_t num_clients,
                                 std::vector<float> importance, std::vector<float> mean_time,
                                 std::unique_ptr<Aggregator> rule)
    : options_(std::move(options)),
      num_clients_(num_clients),
      importance_(std::move(importance)),
      mean_time_(std::move(mean_time)),
      robust_(rule != nullptr),
      rule_(std::move(rule)) {
  for (float t : mean_time_) inv_tau_sum_ += 1.0 / t;
}

double FederatedServer::Importance(int64_t c) const {
  return importance_.empty() ? 1.0 / static_cast<double>(num_clients_)
                             : importance_[static_cast<size_t>(c)];
}

double FederatedServer::Tau(int64_t c) const {
  return mean_time_.empty() ? state_.tau_estimate[static_cast<size_t>(c)]
                            : mean_time_[static_cast<size_t>(c)];
}

double FederatedServer::ClientWeight(int64_t c) const {
  const std::string& a = options_.algorithm;
  const std::string& w = options_.weights;
  if (a == "fedavg") {
    const int64_t m = options_.clients_per_round > 0 ? options_.clients_per_round : num_clients_;
    return Importance(c) * (static_cast<double>(num_clients_) / static_cast<double>(m));
  }
  if (a == "async") return w == "identical" ? 1.0 : Importance(c) * Tau(c) * inv_tau_sum_;
  if (a == "fedfix") {
    if (w == "identical") return Importance(c);
    // ⌈τ/Δt⌉ windows per cycle. τ is stored as float (0.2f = 0.200000003), so
    // a relative tolerance keeps τ = Δt at one window, not two.
    const double x = Tau(c) / options_.window;
    const double cycles = std::max(1.0, std::ceil(x - 1e-6 * std::max(1.0, x)));
    return Importance(c) * cycles;
  }
  if (a == "fedbuff") return 1.0 / static_cast<double>(options_.buffer_size);
  return options_.mix_alpha;
}

void FederatedServer::ObserveRoundTrip(int64_t c, double seconds) {
  if (!mean_time_.empty() || c < 0 || c >= num_clients_ || !(seconds > 0)) return;
  float& t = state_.tau_estimate[static_cast<size_t>(c)];
  const double old = t;
  t = static_cast<float>(0.8 * old + 0.2 * seconds);
  inv_tau_sum_ += 1.0 / t - 1.0 / old;
}

void FederatedServer::CountStaleness(int64_t s) {
  state_.staleness_histogram[static_cast<size_t>(std::min(s, kStalenessBins))]++;
}

void FederatedServer::Accumulate(const ClientUpdate& u, double weight) {
  FederatedState::Pending p;
  p.client = u.client;
  p.base_version = u.base_version;
  p.num_examples = u.num_examples;
  p.weight = weight;
  if (robust_) {
    p.delta.assign(u.delta.begin(), u.delta.end());
  } else {
    double* acc = state_.accumulator.data();
    const float* d = u.delta.data();
    const size_t n = u.delta.size();
    for (size_t j = 0; j < n; ++j) acc[j] += weight * static_cast<double>(d[j]);
  }
  state_.pending.push_back(std::move(p));
  state_.pending_weight += weight;
}

Status FederatedServer::Step(double normaliser) {
  auto& st = state_;
  st.version++;
  st.last_step_weight = st.pending_weight * normaliser;
  if (st.pending.empty()) {
    st.empty_steps++;
    st.pending_weight = 0;
    return Status::Ok();
  }
  const double lr = options_.server_lr;
  float* theta = st.model.data();
  const size_t d = st.model.size();
  if (!robust_) {
    double* acc = st.accumulator.data();
    const double scale = lr * normaliser;
    for (size_t j = 0; j < d; ++j) {
      theta[j] = static_cast<float>(static_cast<double>(theta[j]) + scale * acc[j]);
      acc[j] = 0.0;
    }
  } else {
    const auto n = static_cast<Eigen::Index>(st.pending.size());
    Eigen::MatrixXd v(static_cast<Eigen::Index>(d), n);
    for (Eigen::Index i = 0; i < n; ++i) {
      const auto& p = st.pending[static_cast<size_t>(i)];
      const double s = static_cast<double>(n) * p.weight * normaliser;
      v.col(i) = Eigen::Map<const Eigen::VectorXf>(p.delta.data(), static_cast<Eigen::Index>(d))
                     .cast<double>() *
                 s;
    }
    auto agg = rule_->Aggregate(v);
    if (!agg.ok()) {
      // Too few inputs for the rule's f (e.g. a FedFix window with one
      // arrival): the step is taken without moving θ, and counted.
      st.robust_failures++;
    } else {
      for (size_t j = 0; j < d; ++j) {
        theta[j] = static_cast<float>(static_cast<double>(theta[j]) +
                                      lr * (*agg)(static_cast<Eigen::Index>(j)));
      }
    }
  }
  st.pending.clear();
  st.pending_weight = 0;
  return Status::Ok();
}

Result<std::vector<int64_t>> FederatedServer::BeginRound() {
  if (options_.algorithm != "fedavg") return FailedPrecondition("BeginRound is for fedavg only");
  if (!state_.round_open.empty()) return FailedPrecondition("a round is already open");
  const int64_t m = options_.clients_per_round > 0 ? options_.clients_per_round : num_clients_;
  std::vector<int64_t> s;
  if (m == num_clients_) {
    s.resize(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) s[static_cast<size_t>(i)] = i;
  } else {
    // Floyd's sampling: m distinct of M in O(m) draws and memory.
    std::set<int64_t> chosen;
    for (int64_t j = num_clients_ - m; j < num_clients_; ++j) {
      const auto t = static_cast<int64_t>(Below(&state_.rng_state, static_cast<uint64_t>(j + 1)));
      if (!chosen.insert(t).second) chosen.insert(j);
    }
    s.assign(chosen.begin(), chosen.end());
  }
  state_.round_open = s;
  state_.round_size = m;
  return s;
}

Result<bool> FederatedServer::Abandon(int64_t client) {
  auto& open = state_.round_open;
  auto it = std::lower_bound(open.begin(), open.end(), client);
  if (it == open.end() || *it != client) {
    return InvalidArgument("client " + std::to_string(client) + " is not in the open round");
  }
  open.erase(it);
  if (!open.empty()) return false;
  const bool by_size = options_.weights == "data-size";
  PHX_RETURN_IF_ERROR(
      Step(by_size && state_.pending_weight > 0 ? 1.0 / state_.pending_weight : 1.0));
  return true;
}

Result<SubmitOutcome> FederatedServer::Submit(const ClientUpdate& u) {
  auto& st = state_;
  if (u.client < 0 || u.client >= num_clients_) {
    return InvalidArgument("unknown client " + std::to_string(u.client));
  }
  if (u.delta.size() != st.model.size()) {
    return InvalidArgument("delta has " + std::to_string(u.delta.size()) + " values, model has " +
                           std::to_string(st.model.size()));
  }
  if (u.base_version < 0 || u.base_version > st.version) {
    return InvalidArgument("base version " + std::to_string(u.base_version) + " is not in [0, " +
                           std::to_string(st.version) + "]");
  }
  if (u.num_examples < 0) return InvalidArgument("num_examples must be >= 0");
  const std::string& a = options_.algorithm;
  if (a == "fedasync" && u.base.size() != st.model.size()) {
    return InvalidArgument("fedasync needs the client's base model");
  }
  const bool in_round =
      a != "fedavg" || std::binary_search(st.round_open.begin(), st.round_open.end(), u.client);
  if (!in_round) return SubmitOutcome::kRejectedNotInRound;
  const int64_t staleness = st.version - u.base_version;
  SubmitOutcome outcome = SubmitOutcome::kBuffered;
  if (!AllFinite(u.delta)) {
    st.rejected_nonfinite++;
    outcome = SubmitOutcome::kRejectedNonFinite;
  } else if (options_.max_staleness >= 0 && staleness > options_.max_staleness) {
    st.rejected_stale++;
    outcome = SubmitOutcome::kRejectedStale;
  }
  if (outcome != SubmitOutcome::kBuffered) {
    if (a == "fedavg") {
      PHX_ASSIGN_OR_RETURN(bool closed, Abandon(u.client));
      (void)closed;
    }
    return outcome;
  }
  st.accepted++;
  CountStaleness(staleness);
  const double phi = StalenessWeight(options_.staleness, staleness);
  if (a == "fedasync") {
    const double at = options_.mix_alpha * phi;
    float* theta = st.model.data();
    for (size_t j = 0; j < st.model.size(); ++j) {
      const double x_new = static_cast<double>(u.base[j]) + static_cast<double>(u.delta[j]);
      theta[j] = static_cast<float>((1.0 - at) * theta[j] + at * x_new);
    }
    st.version++;
    st.last_step_weight = at;
    return SubmitOutcome::kApplied;
  }
  if (a == "fedavg") {
    const bool by_size = options_.weights == "data-size";
    const double w = by_size ? static_cast<double>(u.num_examples)
                             : Importance(u.client) * (static_cast<double>(num_clients_) /
                                                       static_cast<double>(st.round_size));
    Accumulate(u, w * phi);
    auto it = std::lower_bound(st.round_open.begin(), st.round_open.end(), u.client);
    st.round_open.erase(it);
    if (!st.round_open.empty()) return SubmitOutcome::kBuffered;
    PHX_RETURN_IF_ERROR(Step(by_size && st.pending_weight > 0 ? 1.0 / st.pending_weight : 1.0));
    return SubmitOutcome::kApplied;
  }
  Accumulate(u, ClientWeight(u.client) * phi);
  if (a == "async" ||
      (a == "fedbuff" && static_cast<int>(st.pending.size()) >= options_.buffer_size)) {
    PHX_RETURN_IF_ERROR(Step(1.0));
    return SubmitOutcome::kApplied;
  }
  return SubmitOutcome::kBuffered;  // fedbuff below K_b, fedfix until the tick
}

Result<int> FederatedServer::Tick(double now) {
  if (options_.algorithm != "fedfix") return 0;
  if (!std::isfinite(now)) return InvalidArgument("Tick needs a finite time");
  int steps = 0;
  while (state_.next_tick <= now) {
    PHX_RETURN_IF_ERROR(Step(1.0));
    // Window ends are k·Δt from the version count, so they never drift.
    state_.next_tick = static_cast<double>(state_.version + 1) * options_.window;
    ++steps;
  }
  return steps;
}

Status FederatedServer::Flush() {
  if (options_.algorithm != "fedbuff" || state_.pending.empty()) return Status::Ok();
  return Step(1.0);
}

Result<std::string> FederatedServer::SaveState() const {
  try {
    return EncodeBody([&](auto& ar) { ar(state_); });
  } catch (const std::exception& e) {
    return Internal(std::string("cannot encode federated state: ") + e.what());
  }
}

Status FederatedServer::LoadState(const std::string& blob) {
  auto r = DecodeBody<FederatedState>(blob, "federated state",
                                      [](auto& ar, FederatedState& s) { ar(s); });
  if (!r.ok()) return r.status();
  FederatedState& s = *r;
  if (s.model.size() != state_.model.size() || s.accumulator.size() != s.model.size()) {
    return InvalidArgument("federated state is for a model of " + std::to_string(s.model.size()) +
                           " values, this server has " + std::to_string(state_.model.size()));
  }
  if (s.staleness_histogram.size() != static_cast<size_t>(kStalenessBins + 1) ||
      (!s.tau_estimate.empty() && static_cast<int64_t>(s.tau_estimate.size()) != num_clients_) ||
      s.version < 0) {
    return InvalidArgument("federated state does not match this server's clients");
  }
  for (const auto& p : s.pending) {
    if (p.client < 0 || p.client >= num_clients_ || (robust_ && p.delta.size() != s.model.size())) {
      return InvalidArgument("federated state holds a malformed pending update");
    }
  }
  state_ = std::move(s);
  if (mean_time_.empty()) {
    if (state_.tau_estimate.empty()) state_.tau_estimate.assign(num_clients_, 1.0f);
    inv_tau_sum_ = 0;
    for (float t : state_.tau_estimate) inv_tau_sum_ += 1.0 / t;
  }
  return Status::Ok();
}

}  // namespace phalanx::aggregators
