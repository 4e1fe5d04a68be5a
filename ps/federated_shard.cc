#include "ps/federated_shard.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "common/metrics.h"

namespace phalanx::ps {
namespace {

using Clock = std::chrono::steady_clock;

struct FederatedMetrics {
  MetricsRegistry& r = MetricsRegistry::Global();
  Counter& accepted =
      r.GetCounter("phalanx_federated_accepted_total", "Client updates accepted by this shard");
  Counter& rejected_stale = r.GetCounter("phalanx_federated_rejected_stale_total",
                                         "Client updates staler than max_staleness");
  Counter& rejected_nonfinite = r.GetCounter("phalanx_federated_rejected_nonfinite_total",
                                             "Client updates dropped for NaN/Inf values");
  Counter& pulls = r.GetCounter("phalanx_federated_pulls_total", "Model pulls answered");
  Gauge& version = r.GetGauge("phalanx_federated_version",
                              "Server steps taken by this shard (FederatedServer version)");
  Gauge& empty_steps =
      r.GetGauge("phalanx_federated_empty_steps", "FedFix windows closed without an update");
  Gauge& step_weight =
      r.GetGauge("phalanx_federated_last_step_weight", "Sum of the weights of the last step");
  Histogram& staleness =
      r.GetHistogram("phalanx_federated_staleness", "Staleness of accepted client updates",
                     {0, 1, 2, 4, 8, 16, 32, 64, 128, 256});
  Histogram& round_trip = r.GetHistogram(
      "phalanx_federated_round_trip_units",
      "Client pull-to-push time in virtual time units (time_unit_s)", {0.1, 0.2, 0.5, 1, 2, 5, 10});
};

FederatedMetrics& Metrics() {
  static FederatedMetrics m;
  return m;
}

double UnixSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

FederatedShard::FederatedShard(const FederatedShardOptions& options, EmbeddingTable* table)
    : options_(options), table_(table) {}

Result<std::unique_ptr<FederatedShard>> FederatedShard::Create(const FederatedShardOptions& o,
                                                               EmbeddingTable* table) {
  if (!table) return InvalidArgument("federated shard needs table 0");
  if (o.clients < 1 || o.clients > kMaxFederatedClients) {
    return InvalidArgument("federated.clients must be in [1, " +
                           std::to_string(kMaxFederatedClients) + "]");
  }
  if (!(o.time_unit_s > 0) || !std::isfinite(o.time_unit_s)) {
    return InvalidArgument("federated.time_unit_ms must be > 0");
  }
  aggregators::FederatedOptions fo = o.server;
  PHX_RETURN_IF_ERROR(aggregators::ResolveFederatedOptions(&fo));
  if (fo.algorithm == "fedavg") {
    return InvalidArgument(
        "federated.algorithm fedavg (synchronous rounds) is not available in live mode; use "
        "phalanx simulate, or fedfix with a window >= the slowest client");
  }
  std::unique_ptr<FederatedShard> s(new FederatedShard(o, table));
  s->options_.server = fo;
  s->pulled_at_.assign(static_cast<size_t>(o.clients), Clock::time_point{});
  return s;
}

Status FederatedShard::Init(std::span<const uint64_t> keys) {
  std::vector<uint64_t> sorted(keys.begin(), keys.end());
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  if (sorted.empty()) return FailedPrecondition("the first federated request named no rows");
  const uint32_t dim = table_->dim();
  std::vector<float> initial(sorted.size() * dim);
  table_->Lookup(sorted, initial.data());
  for (size_t i = 0; i < sorted.size(); ++i) index_.emplace(sorted[i], static_cast<uint32_t>(i));
  PHX_ASSIGN_OR_RETURN(
      server_, aggregators::FederatedServer::Create(options_.server, options_.clients,
                                                    std::move(initial), {}, {}, options_.seed));
  if (options_.server.algorithm == "fedfix") {
    // Windows aligned to the Unix epoch: every shard closes the same ones.
    offset_ = static_cast<int64_t>(
        std::floor(UnixSeconds() / (options_.server.window * options_.time_unit_s)));
  }
  delta_.resize(sorted.size() * dim);
  spdlog::info("federated shard: {} rows x {} of the dense model, {} over {} clients",
               sorted.size(), dim, options_.server.algorithm, options_.clients);
  return Status::Ok();
}

double FederatedShard::VirtualNow() const {
  return UnixSeconds() / options_.time_unit_s -
         static_cast<double>(offset_) * options_.server.window;
}

int64_t FederatedShard::version() const { return server_ ? server_->version() + offset_ : -1; }

void FederatedShard::Tick() {
  if (!server_ || options_.server.algorithm != "fedfix") return;
  if (VirtualNow() < server_->next_tick()) return;
  auto steps = server_->Tick(VirtualNow());
  if (!steps.ok()) {
    spdlog::error("federated shard: {}", steps.status().ToString());
    return;
  }
  auto& m = Metrics();
  m.version.Set(static_cast<double>(server_->version()));
  m.empty_steps.Set(static_cast<double>(server_->state().empty_steps));
  m.step_weight.Set(server_->state().last_step_weight);
}

Message FederatedShard::Handle(const Message& request, int32_t self_id) {
  const Header& h = request.header;
  Status s;
  if (h.round < 0) {
    s = InvalidArgument("federated mode: negative round field");
  } else if (h.type != MsgType::kPull && h.type != MsgType::kPush) {
    s = InvalidArgument("federated mode: table 0 takes pulls and pushes only");
  } else if (!server_) {
    s = Init(request.key_span());
  }
  if (s.ok()) {
    Result<Message> r = h.type == MsgType::kPull ? Pull(request, self_id) : Push(request, self_id);
    if (r.ok()) return std::move(r).value();
    s = r.status();
  }
  return MakeErrorMessage(self_id, h.request_id, s);
}

Result<Message> FederatedShard::Pull(const Message& m, int32_t self_id) {
  const uint32_t dim = table_->dim();
  auto keys = m.key_span();
  float* out = nullptr;
  Buffer values = BufferPool::Global().Uninitialized<float>(keys.size() * dim, &out);
  const std::vector<float>& model = server_->model();
  for (size_t j = 0; j < keys.size(); ++j) {
    auto it = index_.find(keys[j]);
    if (it == index_.end()) {
      return FailedPrecondition("federated mode: row " + std::to_string(keys[j]) +
                                " is not part of this shard's dense model");
    }
    std::copy_n(model.data() + static_cast<size_t>(it->second) * dim, dim, out + j * dim);
  }
  const int64_t client = m.header.client;
  if (client >= 0 && client < options_.clients)
    pulled_at_[static_cast<size_t>(client)] = Clock::now();
  Metrics().pulls.Increment();
  return MakeDataMessage(MsgType::kPullResponse, self_id, m.header.request_id, version(),
                         m.header.table_id, dim, Buffer(), std::move(values),
                         m.header.checksum != 0);
}

Result<Message> FederatedShard::Push(const Message& m, int32_t self_id) {
  const uint32_t dim = table_->dim();
  if (m.header.num_keys > 0 && m.header.dim != dim) {
    return InvalidArgument("push dim " + std::to_string(m.header.dim) + " but table 0 has dim " +
                           std::to_string(dim));
  }
  if (m.header.num_keys == 0) {
    // Would count as an arrival (a FedBuff slot) while moving nothing.
    return InvalidArgument("federated push with no rows");
  }
  const int64_t client = m.header.client;
  if (client < 0 || client >= options_.clients) {
    return InvalidArgument("federated push from unknown client " + std::to_string(client) +
                           " (federated.clients = " + std::to_string(options_.clients) + ")");
  }
  const bool send_model = options_.server.algorithm == "fedasync";
  const std::vector<float>& model = server_->model();
  // Rows a push does not name contribute a zero delta.
  std::fill(delta_.begin(), delta_.end(), 0.0f);
  auto keys = m.key_span();
  auto values = m.value_span();
  for (size_t j = 0; j < keys.size(); ++j) {
    auto it = index_.find(keys[j]);
    if (it == index_.end()) {
      return FailedPrecondition("federated mode: row " + std::to_string(keys[j]) +
                                " is not part of this shard's dense model");
    }
    const size_t at = static_cast<size_t>(it->second) * dim;
    for (uint32_t c = 0; c < dim; ++c) {
      const float v = values[j * dim + c];
      delta_[at + c] = send_model ? v - model[at + c] : v;
    }
  }
  auto& met = Metrics();
  auto& pulled = pulled_at_[static_cast<size_t>(client)];
  if (pulled != Clock::time_point{}) {
    const double units =
        std::chrono::duration<double>(Clock::now() - pulled).count() / options_.time_unit_s;
    server_->ObserveRoundTrip(client, units);
    met.round_trip.Observe(units);
    pulled = Clock::time_point{};
  }
  const int64_t now = server_->version();
  // A client that pulled from a shard ahead of this one (or, under FedFix,
  // before this shard's first window) is treated as fresh.
  const int64_t base = std::clamp<int64_t>(m.header.round - offset_, 0, now);
  aggregators::ClientUpdate u;
  u.client = client;
  u.delta = delta_;
  u.base_version = base;
  u.num_examples = 1;
  u.base = model;  // fedasync: x_new = base + delta = θ⁺
  PHX_ASSIGN_OR_RETURN(aggregators::SubmitOutcome outcome, server_->Submit(u));
  using aggregators::SubmitOutcome;
  if (outcome == SubmitOutcome::kRejectedNonFinite) {
    met.rejected_nonfinite.Increment();
    return InvalidArgument("non-finite client update dropped");
  }
  if (outcome == SubmitOutcome::kRejectedStale) {
    met.rejected_stale.Increment();
    return Aborted("client update of staleness " + std::to_string(now - base) +
                   " exceeds max_staleness " + std::to_string(options_.server.max_staleness));
  }
  if (outcome == SubmitOutcome::kRejectedNotInRound) {
    return FailedPrecondition("client is not part of the open round");
  }
  met.accepted.Increment();
  met.staleness.Observe(static_cast<double>(now - base));
  met.version.Set(static_cast<double>(server_->version()));
  met.step_weight.Set(server_->state().last_step_weight);
  const int64_t visible = outcome == SubmitOutcome::kApplied ? version() : version() + 1;
  return MakeDataMessage(MsgType::kPushAck, self_id, m.header.request_id, visible,
                         m.header.table_id, 0, Buffer(), Buffer());
}

}  // namespace phalanx::ps
