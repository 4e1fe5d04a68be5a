#include "ps/server.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>

#include "common/control.h"
#include "common/membership.h"
#include "common/metrics.h"
#include "common/transport.h"

namespace phalanx::ps {
namespace {

using Clock = std::chrono::steady_clock;

struct ServerMetrics {
  MetricsRegistry& r = MetricsRegistry::Global();
  Counter& pulls = r.GetCounter("phalanx_server_pulls_total", "Pull requests answered");
  Counter& pushes = r.GetCounter("phalanx_server_pushes_total", "Push requests accepted");
  Counter& rows_pulled = r.GetCounter("phalanx_server_rows_pulled_total", "Rows sent in pulls");
  Counter& rows_pushed = r.GetCounter("phalanx_server_rows_pushed_total", "Gradient rows received");
  Counter& rounds = r.GetCounter("phalanx_server_rounds_total", "Synchronous rounds closed");
  Counter& timeouts = r.GetCounter("phalanx_server_round_timeouts_total",
                                   "Rounds closed by timeout with workers missing");
  Counter& missing = r.GetCounter("phalanx_server_round_missing_workers_total",
                                  "Worker slots missing from closed rounds");
  Counter& rejected = r.GetCounter("phalanx_server_rejected_requests_total",
                                   "Requests rejected (malformed, unknown sender, bad shape)");
  Counter& nonfinite = r.GetCounter("phalanx_server_nonfinite_pushes_total",
                                    "Pushes dropped for NaN/Inf gradients");
  Counter& stale = r.GetCounter("phalanx_server_stale_pushes_total",
                                "Sync pushes for a round that already closed");
  Histogram& pull_latency = r.GetHistogram("phalanx_server_pull_seconds", "Pull handling time");
  Histogram& push_latency = r.GetHistogram("phalanx_server_push_seconds", "Push handling time");
  Histogram& round_seconds = r.GetHistogram("phalanx_server_round_seconds",
                                            "Synchronous round duration (first push to close)");
  Histogram& apply_seconds = r.GetHistogram("phalanx_server_apply_seconds",
                                            "Aggregate + optimizer time per table update");
  Histogram& staleness = r.GetHistogram("phalanx_server_push_staleness",
                                        "Async push staleness in versions",
                                        {0, 1, 2, 4, 8, 16, 32, 64, 128});
  Gauge& rows = r.GetGauge("phalanx_server_rows", "Rows held by this shard");
  Gauge& version = r.GetGauge("phalanx_server_version", "Version of table 0");
};

struct WorkerPush {
  Buffer keys;
  Buffer values;
  bool excluded = false;  // arrived but not usable (non-finite)
};

struct PendingPull {
  std::string peer;
  Message msg;
};

struct TableState {
  std::unique_ptr<EmbeddingTable> table;
  int64_t version = 0;
  std::map<int32_t, WorkerPush> pushes;  // sync: this round's pushes by worker id
  Clock::time_point round_started;
  std::vector<PendingPull> pending;  // sync: pulls waiting for a newer version
};

bool AllFinite(std::span<const float> v) {
  bool ok = true;
  for (float x : v) ok &= std::isfinite(x);
  return ok;
}

class ServerImpl final : public Server {
 public:
  ServerImpl(const ServerOptions& o, std::unique_ptr<Socket> sock) : options_(o), socket_(std::move(sock)) {}

  Status Init() {
    for (size_t i = 0; i < options_.tables.size(); ++i) {
      if (options_.tables[i].table_id != i) return InvalidArgument("table ids must be 0..n-1");
      TableState t;
      PHX_ASSIGN_OR_RETURN(t.table, EmbeddingTable::Create(options_.tables[i]));
      tables_.push_back(std::move(t));
    }
    PHX_ASSIGN_OR_RETURN(aggregator_, aggregators::CreateAggregator(options_.aggregator));
    MembershipOptions mo;
    mo.scheduler_endpoint = options_.scheduler_endpoint;
    mo.self.role = Role::kServer;
    mo.self.host = options_.host;
    mo.self.data_port = socket_->port();
    mo.self.http_port = options_.http_port;
    mo.requested_rank = options_.requested_rank;
    mo.heartbeat_ms = options_.heartbeat_ms;
    mo.register_timeout_ms = options_.register_timeout_ms;
    PHX_ASSIGN_OR_RETURN(membership_, MembershipClient::Start(mo));
    auto view = membership_->WaitForView(1, options_.formation_timeout_ms);
    if (!view.ok()) return view.status().WithContext("waiting for the cluster to form");
    view_ = *view;
    spdlog::info("server rank {} (id {}) serving {} on {}", membership_->rank(),
                 membership_->node_id(), options_.synchronous ? "sync" : "async",
                 socket_->endpoint());
    UpdateStatus();
    return Status::Ok();
  }

  int port() const override { return socket_->port(); }
  int rank() const override { return membership_->rank(); }

  Status Run(const std::atomic<bool>* stop) override {
    while (!(stop && stop->load()) && !membership_->shutdown_requested()) {
      Received r = socket_->Recv(20);
      if (r.status.ok()) {
        Handle(r.peer, std::move(r.msg));
      } else if (r.status.code() != StatusCode::kDeadlineExceeded) {
        metrics_.rejected.Increment();
        spdlog::warn("server: rejected message: {}", r.status.ToString());
        if (!r.peer.empty()) Reply(r.peer, MakeErrorMessage(MyId(), 0, r.status));
      }
      int64_t epoch = membership_->epoch();
      if (epoch != view_.epoch) {
        view_ = membership_->view();
        UpdateStatus();
      }
      if (options_.synchronous) {
        for (size_t t = 0; t < tables_.size(); ++t) MaybeCloseRound(t);
      }
      if (++loops_ % 64 == 0) UpdateStatus();
    }
    spdlog::info("server rank {}: shutting down", membership_->rank());
    return Status::Ok();
  }

  std::string StatusJson() const override {
    std::lock_guard<std::mutex> lock(status_mu_);
    return status_json_;
  }

 private:
  int32_t MyId() const { return membership_ ? membership_->node_id() : -1; }

  void Reply(const std::string& peer, const Message& m) {
    Status s = socket_->Send(m, peer);
    if (!s.ok()) spdlog::debug("server: reply failed: {}", s.ToString());
  }

  void Reject(const std::string& peer, const Message& req, const Status& s) {
    metrics_.rejected.Increment();
    spdlog::debug("server: rejecting {} from {}: {}", MsgTypeName(req.header.type),
                  req.header.sender, s.ToString());
    Reply(peer, MakeErrorMessage(MyId(), req.header.request_id, s));
  }

  bool KnownWorker(int32_t id) const {
    for (const auto& w : view_.workers) {
      if (w.id == id && w.alive) return true;
    }
    return false;
  }

  Status CheckOwnership(std::span<const uint64_t> keys) const {
    int32_t me = membership_->rank();
    for (uint64_t k : keys) {
      uint32_t slot = SlotOfKey(k, view_.num_slots);
      if (view_.slot_owner[slot] != me) {
        return FailedPrecondition("key " + std::to_string(k) + " (slot " + std::to_string(slot) +
                                  ") is not owned by server rank " + std::to_string(me));
      }
    }
    return Status::Ok();
  }

  void Handle(const std::string& peer, Message msg) {
    const Header& h = msg.header;
    if (h.type != MsgType::kPull && h.type != MsgType::kPush) {
      return Reject(peer, msg, InvalidArgument(std::string("server does not handle ") +
                                               MsgTypeName(h.type)));
    }
    if (!KnownWorker(h.sender)) {
      // Refresh once: the view may have changed since the last loop.
      view_ = membership_->view();
      if (!KnownWorker(h.sender)) {
        return Reject(peer, msg, Unauthenticated("node " + std::to_string(h.sender) +
                                                 " is not a registered live worker"));
      }
    }
    if (h.table_id >= tables_.size()) {
      return Reject(peer, msg, NotFound("unknown table " + std::to_string(h.table_id)));
    }
    Status own = CheckOwnership(msg.key_span());
    if (!own.ok()) return Reject(peer, msg, own);
    if (h.type == MsgType::kPull) return HandlePull(peer, std::move(msg));
    return HandlePush(peer, std::move(msg));
  }

  void HandlePull(const std::string& peer, Message msg) {
    TableState& t = tables_[msg.header.table_id];
    if (options_.synchronous && msg.header.round > t.version) {
      t.pending.push_back({peer, std::move(msg)});
      return;
    }
    AnswerPull(peer, msg);
  }

  void AnswerPull(const std::string& peer, const Message& msg) {
    auto start = Clock::now();
    TableState& t = tables_[msg.header.table_id];
    auto keys = msg.key_span();
    uint32_t dim = t.table->dim();
    std::vector<float> out(keys.size() * dim);
    t.table->Lookup(keys, out.data());
    Reply(peer, MakeDataMessage(MsgType::kPullResponse, MyId(), msg.header.request_id, t.version,
                                msg.header.table_id, dim, Buffer(), Buffer::FromVector(std::move(out))));
    metrics_.pulls.Increment();
    metrics_.rows_pulled.Increment(keys.size());
    metrics_.pull_latency.Observe(std::chrono::duration<double>(Clock::now() - start).count());
  }

  void HandlePush(const std::string& peer, Message msg) {
    auto start = Clock::now();
    const Header& h = msg.header;
    TableState& t = tables_[h.table_id];
    if (h.num_keys > 0 && h.dim != t.table->dim()) {
      return Reject(peer, msg, InvalidArgument("push dim " + std::to_string(h.dim) +
                                               " but table " + std::to_string(h.table_id) +
                                               " has dim " + std::to_string(t.table->dim())));
    }
    bool finite = AllFinite(msg.value_span());
    if (!options_.synchronous) {
      if (!finite) {
        metrics_.nonfinite.Increment();
        return Reject(peer, msg, InvalidArgument("non-finite gradient dropped"));
      }
      auto keys = msg.key_span();
      std::vector<uint64_t> sorted(keys.begin(), keys.end());
      std::sort(sorted.begin(), sorted.end());
      if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
        return Reject(peer, msg, InvalidArgument("duplicate keys in push"));
      }
      metrics_.staleness.Observe(static_cast<double>(std::max<int64_t>(0, t.version - h.round)));
      t.table->Apply(keys, msg.value_span().data());
      t.version++;
      metrics_.pushes.Increment();
      metrics_.rows_pushed.Increment(keys.size());
      Reply(peer, MakeDataMessage(MsgType::kPushAck, MyId(), h.request_id, t.version, h.table_id,
                                  0, Buffer(), Buffer()));
      metrics_.push_latency.Observe(std::chrono::duration<double>(Clock::now() - start).count());
      return;
    }
    if (h.round < t.version) {
      metrics_.stale.Increment();
      return Reject(peer, msg, Aborted("round " + std::to_string(h.round) +
                                       " already closed; server is at version " +
                                       std::to_string(t.version)));
    }
    if (h.round > t.version) {
      return Reject(peer, msg, FailedPrecondition("round " + std::to_string(h.round) +
                                                  " is ahead of server version " +
                                                  std::to_string(t.version)));
    }
    if (t.pushes.count(h.sender)) {
      return Reject(peer, msg, AlreadyExists("worker already pushed round " +
                                             std::to_string(h.round)));
    }
    if (t.pushes.empty()) t.round_started = Clock::now();
    WorkerPush p{msg.keys, msg.values, !finite};
    t.pushes[h.sender] = std::move(p);
    if (!finite) {
      metrics_.nonfinite.Increment();
      Reply(peer, MakeErrorMessage(MyId(), h.request_id,
                                   InvalidArgument("non-finite gradient; dropped from round " +
                                                   std::to_string(h.round))));
    } else {
      metrics_.pushes.Increment();
      metrics_.rows_pushed.Increment(h.num_keys);
      Reply(peer, MakeDataMessage(MsgType::kPushAck, MyId(), h.request_id, h.round, h.table_id, 0,
                                  Buffer(), Buffer()));
    }
    metrics_.push_latency.Observe(std::chrono::duration<double>(Clock::now() - start).count());
    MaybeCloseRound(h.table_id);
  }

  void MaybeCloseRound(size_t table_id) {
    TableState& t = tables_[table_id];
    if (t.pushes.empty()) return;
    int missing = 0;
    for (const auto& w : view_.workers) {
      if (w.alive && !t.pushes.count(w.id)) missing++;
    }
    bool timed_out = Clock::now() - t.round_started >
                     std::chrono::milliseconds(options_.round_timeout_ms);
    if (missing > 0 && !timed_out) return;
    if (missing > 0) {
      metrics_.timeouts.Increment();
      metrics_.missing.Increment(missing);
      spdlog::warn("server: table {} round {} closed by timeout without {} worker(s)", table_id,
                   t.version, missing);
    }
    CloseRound(t);
  }

  void CloseRound(TableState& t) {
    auto start = Clock::now();
    std::vector<const WorkerPush*> used;
    for (auto& [id, p] : t.pushes) {
      if (!p.excluded) used.push_back(&p);
    }
    if (!used.empty()) {
      Status s = AggregateAndApply(t, used);
      if (!s.ok()) spdlog::error("server: round {} not applied: {}", t.version, s.ToString());
    }
    metrics_.round_seconds.Observe(std::chrono::duration<double>(start - t.round_started).count());
    metrics_.apply_seconds.Observe(std::chrono::duration<double>(Clock::now() - start).count());
    metrics_.rounds.Increment();
    t.pushes.clear();
    t.version++;
    if (&t == &tables_[0]) metrics_.version.Set(static_cast<double>(t.version));
    // Answer the pulls this version satisfies.
    std::vector<PendingPull> still;
    for (auto& p : t.pending) {
      if (p.msg.header.round <= t.version) {
        AnswerPull(p.peer, p.msg);
      } else {
        still.push_back(std::move(p));
      }
    }
    t.pending.swap(still);
  }

  Status AggregateAndApply(TableState& t, const std::vector<const WorkerPush*>& used) {
    const uint32_t dim = t.table->dim();
    const size_t n = used.size();
    // Fast path: every worker pushed the same key list (dense parameters).
    bool same_keys = true;
    for (size_t i = 1; i < n && same_keys; ++i) {
      same_keys = used[i]->keys.size() == used[0]->keys.size() &&
                  std::memcmp(used[i]->keys.data(), used[0]->keys.data(), used[0]->keys.size()) == 0;
    }
    std::vector<uint64_t> keys;
    Eigen::MatrixXd grads;
    if (same_keys) {
      auto k0 = used[0]->keys.as<uint64_t>();
      keys.assign(k0.begin(), k0.end());
      grads.resize(static_cast<Eigen::Index>(keys.size() * dim), static_cast<Eigen::Index>(n));
      for (size_t i = 0; i < n; ++i) {
        auto v = used[i]->values.as<float>();
        grads.col(static_cast<Eigen::Index>(i)) =
            Eigen::Map<const Eigen::VectorXf>(v.data(), static_cast<Eigen::Index>(v.size()))
                .cast<double>();
      }
    } else {
      // Union of keys; a worker that did not touch a key contributes zeros.
      std::unordered_map<uint64_t, uint32_t> index;
      for (const auto* p : used) {
        for (uint64_t k : p->keys.as<uint64_t>()) {
          if (index.emplace(k, static_cast<uint32_t>(keys.size())).second) keys.push_back(k);
        }
      }
      grads = Eigen::MatrixXd::Zero(static_cast<Eigen::Index>(keys.size() * dim),
                                    static_cast<Eigen::Index>(n));
      for (size_t i = 0; i < n; ++i) {
        auto k = used[i]->keys.as<uint64_t>();
        auto v = used[i]->values.as<float>();
        for (size_t j = 0; j < k.size(); ++j) {
          size_t row = static_cast<size_t>(index[k[j]]) * dim;
          for (uint32_t c = 0; c < dim; ++c) {
            grads(static_cast<Eigen::Index>(row + c), static_cast<Eigen::Index>(i)) +=
                v[j * dim + c];
          }
        }
      }
    }
    if (keys.empty()) return Status::Ok();
    PHX_ASSIGN_OR_RETURN(Eigen::VectorXd agg, aggregator_->Aggregate(grads));
    std::vector<float> update(static_cast<size_t>(agg.size()));
    Eigen::Map<Eigen::VectorXf>(update.data(), agg.size()) = agg.cast<float>();
    if (!AllFinite(update)) return Internal("aggregate is not finite");
    t.table->Apply(keys, update.data());
    return Status::Ok();
  }

  void UpdateStatus() {
    nlohmann::json j;
    j["role"] = "server";
    j["id"] = MyId();
    j["rank"] = membership_ ? membership_->rank() : -1;
    j["epoch"] = view_.epoch;
    j["mode"] = options_.synchronous ? "sync" : "async";
    j["endpoint"] = socket_->endpoint();
    auto tables = nlohmann::json::array();
    size_t rows = 0;
    for (size_t i = 0; i < tables_.size(); ++i) {
      rows += tables_[i].table->size();
      tables.push_back({{"id", i},
                        {"dim", tables_[i].table->dim()},
                        {"rows", tables_[i].table->size()},
                        {"bytes", tables_[i].table->memory_bytes()},
                        {"version", tables_[i].version}});
    }
    metrics_.rows.Set(static_cast<double>(rows));
    j["tables"] = tables;
    auto peers = nlohmann::json::array();
    for (const auto* group : {&view_.servers, &view_.workers}) {
      for (const auto& n : *group) {
        peers.push_back({{"id", n.id},
                         {"role", RoleName(n.role)},
                         {"rank", n.rank},
                         {"alive", n.alive},
                         {"http_port", n.http_port}});
      }
    }
    j["peers"] = peers;
    std::lock_guard<std::mutex> lock(status_mu_);
    status_json_ = j.dump();
  }

  ServerOptions options_;
  std::unique_ptr<Socket> socket_;
  std::unique_ptr<MembershipClient> membership_;
  std::unique_ptr<aggregators::Aggregator> aggregator_;
  std::vector<TableState> tables_;
  ClusterView view_;
  ServerMetrics metrics_;
  uint64_t loops_ = 0;
  mutable std::mutex status_mu_;
  std::string status_json_ = R"({"role":"server"})";
};

}  // namespace

Result<std::unique_ptr<Server>> Server::Create(const ServerOptions& options) {
  PHX_ASSIGN_OR_RETURN(auto sock, Socket::Bind(Socket::Kind::kRouter,
                                               TcpEndpoint(options.host, options.port),
                                               options.limits));
  auto s = std::make_unique<ServerImpl>(options, std::move(sock));
  PHX_RETURN_IF_ERROR(s->Init());
  return std::unique_ptr<Server>(std::move(s));
}

}  // namespace phalanx::ps
