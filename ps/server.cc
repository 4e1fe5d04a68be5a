#include "ps/server.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <unordered_map>

#include "aggregators/gram.h"
#include "common/control.h"
#include "common/membership.h"
#include "common/metrics.h"
#include "common/transport.h"
#include "ps/internal/coordination.h"
#include "ps/snapshot.h"

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
  Counter& nonfinite =
      r.GetCounter("phalanx_server_nonfinite_pushes_total", "Pushes dropped for NaN/Inf gradients");
  Counter& stale = r.GetCounter("phalanx_server_stale_pushes_total",
                                "Sync pushes for a round that already closed");
  Histogram& pull_latency = r.GetHistogram("phalanx_server_pull_seconds", "Pull handling time");
  Histogram& push_latency = r.GetHistogram("phalanx_server_push_seconds", "Push handling time");
  Histogram& round_seconds = r.GetHistogram("phalanx_server_round_seconds",
                                            "Synchronous round duration (first push to close)");
  Histogram& apply_seconds =
      r.GetHistogram("phalanx_server_apply_seconds", "Aggregate + optimizer time per table update");
  Histogram& staleness =
      r.GetHistogram("phalanx_server_push_staleness", "Async push staleness in versions",
                     {0, 1, 2, 4, 8, 16, 32, 64, 128});
  Counter& coordination_bytes =
      r.GetCounter("phalanx_server_coordination_bytes_total",
                   "Bytes of partial Gram matrices and plans exchanged with the round coordinator");
  Counter& coordinated_rounds = r.GetCounter("phalanx_server_coordinated_rounds_total",
                                             "Rounds this server combined as coordinator");
  Counter& dropped_workers = r.GetCounter(
      "phalanx_server_round_dropped_workers_total",
      "Workers dropped from a round on every shard (non-finite or missing on a shard)");
  Counter& failed_rounds = r.GetCounter("phalanx_server_failed_rounds_total",
                                        "Rounds closed without an update (rule error)");
  Counter& local_fallbacks =
      r.GetCounter("phalanx_server_local_plan_fallbacks_total",
                   "Rounds closed with a shard-local plan because the coordinator did not answer");
  Gauge& rows = r.GetGauge("phalanx_server_rows", "Rows held by this shard");
  Gauge& version = r.GetGauge("phalanx_server_version", "Version of table 0");
};

// Snapshots and recovery (ps/snapshot.h).
struct RecoveryMetrics {
  MetricsRegistry& r = MetricsRegistry::Global();
  Counter& snapshots = r.GetCounter("phalanx_server_snapshots_total", "Snapshots written");
  Counter& snapshot_failures =
      r.GetCounter("phalanx_server_snapshot_failures_total", "Snapshots that could not be written");
  Gauge& snapshot_round =
      r.GetGauge("phalanx_server_snapshot_round", "Round (table 0 version) of the newest snapshot");
  Gauge& snapshot_bytes =
      r.GetGauge("phalanx_server_snapshot_bytes", "Size of the newest snapshot");
  Histogram& capture_seconds = r.GetHistogram("phalanx_server_snapshot_capture_seconds",
                                              "Time the request loop spent copying a snapshot");
  Histogram& write_seconds = r.GetHistogram("phalanx_server_snapshot_write_seconds",
                                            "Background write + fsync + rename of a snapshot");
  Gauge& restored_round = r.GetGauge("phalanx_server_restored_round",
                                     "Round of the snapshot this server started from (-1 = none)");
  Gauge& restore_seconds =
      r.GetGauge("phalanx_server_restore_seconds", "Time to load the snapshot at startup");
  Gauge& updates_lost = r.GetGauge(
      "phalanx_server_updates_lost",
      "Rounds of table 0 lost by the restore (cluster round at rejoin - snapshot round)");
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

// This shard's part of a closing round: keys, the gradients [G] with one
// column per worker (ascending id) and the rule's extra columns [E].
struct Slice {
  std::vector<uint64_t> keys;
  std::vector<int32_t> workers;
  Eigen::MatrixXf grads;   // keys.size()*dim x workers.size()
  Eigen::MatrixXd extras;  // keys.size()*dim x k
};

struct TableState {
  std::unique_ptr<EmbeddingTable> table;
  int64_t version = 0;
  std::map<int32_t, WorkerPush> pushes;  // sync: this round's pushes by worker id
  std::map<int32_t, WorkerPush> early;   // sync: next round's pushes that came while closing
  Clock::time_point round_started;
  std::vector<PendingPull> pending;  // sync: pulls waiting for a newer version
  bool closing = false;              // phase 1 sent, waiting for the plan
  Clock::time_point close_started;
  Slice slice;
  internal::GramPartial partial;
  // Previous aggregate per key, for rules whose extra column is their last
  // output (centered clipping).
  std::unordered_map<uint64_t, Eigen::VectorXd> previous;
  // Restored from a snapshot and not yet at the cluster's round: the first
  // request from ahead moves the version there (the rounds in between are
  // the updates lost). Cleared when this table closes its first round.
  bool align_pending = false;
  int64_t restored_version = -1;
};

struct Collect {
  std::map<int, internal::GramPartial> partials;  // by server rank
  std::map<int, std::string> peers;               // routing ids ("" = this server)
};

// True when no value is NaN or Inf: an exponent of all ones marks both.
// Written on the bits so the loop vectorises.
bool AllFinite(std::span<const float> v) {
  const uint32_t* bits = reinterpret_cast<const uint32_t*>(v.data());
  uint32_t bad = 0;
  for (size_t i = 0; i < v.size(); ++i) bad |= ((bits[i] & 0x7f800000u) == 0x7f800000u);
  return bad == 0;
}

class ServerImpl final : public Server {
 public:
  ServerImpl(const ServerOptions& o, std::unique_ptr<Socket> sock)
      : options_(o), socket_(std::move(sock)) {}
  ~ServerImpl() override {
    if (writer_.joinable()) writer_.join();
  }

  Status Init() {
    if (options_.restore) {
      // Fail before registering when there is nothing to restore.
      if (options_.checkpoint.dir.empty()) {
        return InvalidArgument("--restore needs checkpoint.dir in the config");
      }
      if (options_.requested_rank >= 0 &&
          ListSnapshots(options_.checkpoint.dir, options_.requested_rank).empty()) {
        return NotFound("--restore: no snapshot for server rank " +
                        std::to_string(options_.requested_rank) + " in " + options_.checkpoint.dir);
      }
    }
    for (size_t i = 0; i < options_.tables.size(); ++i) {
      if (options_.tables[i].table_id != i) return InvalidArgument("table ids must be 0..n-1");
      TableState t;
      PHX_ASSIGN_OR_RETURN(t.table, EmbeddingTable::Create(options_.tables[i]));
      tables_.push_back(std::move(t));
    }
    PHX_ASSIGN_OR_RETURN(aggregator_, aggregators::CreateAggregator(options_.aggregator));
    if (options_.federated.enabled) {
      PHX_ASSIGN_OR_RETURN(federated_,
                           FederatedShard::Create(options_.federated, tables_[0].table.get()));
    }
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
    PHX_RETURN_IF_ERROR(Recover());
    last_snapshot_time_ = Clock::now();
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
      Received r = socket_->Recv(coord_socket_ ? 0 : 20);
      if (coord_socket_ && r.status.code() == StatusCode::kDeadlineExceeded) {
        Socket* socks[2] = {socket_.get(), coord_socket_.get()};
        (void)PollReadable(socks, 20);
        DrainCoordinator();
        r = socket_->Recv(0);
      }
      if (r.status.ok()) {
        Handle(r.peer, std::move(r.msg));
      } else if (r.status.code() != StatusCode::kDeadlineExceeded) {
        metrics_.rejected.Increment();
        spdlog::warn("server: rejected message: {}", r.status.ToString());
        if (!r.peer.empty()) Reply(r.peer, MakeErrorMessage(MyId(), 0, r.status));
      }
      int64_t epoch = membership_->epoch();
      if (epoch != view_.epoch) OnViewChange();
      if (options_.synchronous) {
        for (size_t t = 0; t < tables_.size(); ++t) MaybeCloseRound(t);
      }
      if (++loops_ % 64 == 0) UpdateStatus();
      if (federated_) federated_->Tick();
      MaybeSnapshot();
      if (Status h = membership_->health(); !h.ok()) {
        if (writer_.joinable()) writer_.join();
        return h.WithContext("server rank " + std::to_string(membership_->rank()));
      }
    }
    spdlog::info("server rank {}: shutting down", membership_->rank());
    if (writer_.joinable()) writer_.join();
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
    // A server that owns every slot (the only one) owns every key: skip the
    // per-key hash, which costs as much as a quarter of a 100k-key lookup.
    if (owns_all_epoch_ != view_.epoch || owns_all_rank_ != me) {
      owns_all_ = std::all_of(view_.slot_owner.begin(), view_.slot_owner.end(),
                              [me](int32_t owner) { return owner == me; });
      owns_all_epoch_ = view_.epoch;
      owns_all_rank_ = me;
    }
    if (owns_all_) return Status::Ok();
    for (uint64_t k : keys) {
      uint32_t slot = SlotOfKey(k, view_.num_slots);
      if (view_.slot_owner[slot] != me) {
        return FailedPrecondition("key " + std::to_string(k) + " (slot " + std::to_string(slot) +
                                  ") is not owned by server rank " + std::to_string(me));
      }
    }
    return Status::Ok();
  }

  void OnViewChange() {
    int old_coordinator = CoordinatorRank();
    view_ = membership_->view();
    UpdateStatus();
    // A dead shard no longer holds up the rounds it was part of.
    std::vector<std::pair<uint32_t, int64_t>> keys;
    for (auto& [k, c] : collecting_) keys.push_back(k);
    for (auto& [table, round] : keys) TryCombine(table, round);
    // A new coordinator needs this shard's pending partials again.
    if (CoordinatorRank() != old_coordinator) {
      for (size_t t = 0; t < tables_.size(); ++t) {
        if (tables_[t].closing) SendPartial(t);
      }
    }
  }

  void Handle(const std::string& peer, Message msg) {
    const Header& h = msg.header;
    if (h.type == MsgType::kGramPartial) return HandleGramPartial(peer, msg);
    if (h.type != MsgType::kPull && h.type != MsgType::kPush) {
      return Reject(peer, msg,
                    InvalidArgument(std::string("server does not handle ") + MsgTypeName(h.type)));
    }
    if (!KnownWorker(h.sender)) {
      // Refresh once: the view may have changed since the last loop.
      view_ = membership_->view();
      if (!KnownWorker(h.sender)) {
        return Reject(peer, msg,
                      Unauthenticated("node " + std::to_string(h.sender) +
                                      " is not a registered live worker"));
      }
    }
    if (h.table_id >= tables_.size()) {
      return Reject(peer, msg, NotFound("unknown table " + std::to_string(h.table_id)));
    }
    Status own = CheckOwnership(msg.key_span());
    if (!own.ok()) return Reject(peer, msg, own);
    if (federated_ && h.table_id == 0) {
      // Live federated mode: the shard's FederatedServer owns table 0.
      Reply(peer, federated_->Handle(msg, MyId()));
      return;
    }
    if (tables_[h.table_id].align_pending && options_.synchronous) {
      AlignRestored(h.table_id, h.sender, h.round, h.type == MsgType::kPull);
    }
    if (h.type == MsgType::kPull && (h.flags & kFlagHonestGradients)) {
      return HandleHonestPeek(peer, std::move(msg));
    }
    if (h.type == MsgType::kPull) return HandlePull(peer, std::move(msg));
    return HandlePush(peer, std::move(msg));
  }

  // Omniscient attacks: a Byzantine worker asks for the honest workers'
  // pushes of round t (worker/honest_peek.h). Held until every live honest
  // worker pushed round t; refused unless the experiment enabled it.
  void HandleHonestPeek(const std::string& peer, Message msg) {
    if (!options_.honest_peeks || !options_.synchronous) {
      return Reject(
          peer, msg,
          FailedPrecondition("honest-gradient peeks are off (byzantine.omniscient = false "
                             "or asynchronous mode)"));
    }
    if (!IsByzantineWorker(msg.header.sender)) {
      return Reject(peer, msg,
                    Unauthenticated("only the configured Byzantine workers may read honest "
                                    "gradients"));
    }
    peeks_.push_back({peer, std::move(msg)});
    AnswerHonestPeeks();
  }

  bool IsByzantineWorker(int32_t id) const {
    for (const auto& w : view_.workers) {
      if (w.id == id) {
        return std::find(options_.byzantine_ranks.begin(), options_.byzantine_ranks.end(),
                         w.rank) != options_.byzantine_ranks.end();
      }
    }
    return false;
  }

  void AnswerHonestPeeks() {
    // The honest set must be the cluster's current one, not a view from
    // before every worker registered.
    if (membership_->view().epoch != view_.epoch) OnViewChange();
    for (size_t i = 0; i < peeks_.size();) {
      const Message& m = peeks_[i].msg;
      TableState& t = tables_[m.header.table_id];
      if (m.header.round < t.version) {
        Reject(peeks_[i].peer, m,
               Aborted("round " + std::to_string(m.header.round) + " already closed"));
        peeks_.erase(peeks_.begin() + static_cast<long>(i));
        continue;
      }
      std::vector<int32_t> honest;
      bool ready = m.header.round == t.version;
      for (const auto& w : view_.workers) {
        if (!ready) break;
        if (!w.alive || IsByzantineWorker(w.id)) continue;
        auto it = t.pushes.find(w.id);
        if (it == t.pushes.end()) {
          ready = false;
        } else if (!it->second.excluded) {
          honest.push_back(w.id);
        }
      }
      if (!ready) {
        ++i;
        continue;
      }
      std::sort(honest.begin(), honest.end());
      const uint32_t dim = t.table->dim();
      auto keys = m.key_span();
      float* out = nullptr;
      Buffer values = Buffer::Uninitialized<float>(honest.size() * keys.size() * dim, &out);
      for (int32_t id : honest) {
        const WorkerPush& p = t.pushes.at(id);
        auto pk = p.keys.as<uint64_t>();
        auto pv = p.values.as<float>();
        std::unordered_map<uint64_t, size_t> index;
        index.reserve(pk.size());
        for (size_t j = 0; j < pk.size(); ++j) index.emplace(pk[j], j);
        for (uint64_t k : keys) {
          auto it = index.find(k);
          if (it == index.end()) {
            std::fill(out, out + dim, 0.0f);
          } else {
            std::copy_n(pv.data() + it->second * dim, dim, out);
          }
          out += dim;
        }
      }
      Reply(peeks_[i].peer,
            MakeDataMessage(MsgType::kPullResponse, MyId(), m.header.request_id, t.version,
                            m.header.table_id, dim, Buffer(), std::move(values)));
      peeks_.erase(peeks_.begin() + static_cast<long>(i));
    }
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
    float* out = nullptr;
    // A recycled block: a fresh multi-MB one would page-fault on every write.
    // ZeroMQ sends it zero-copy and hands it back to the pool once sent.
    Buffer values = BufferPool::Global().Uninitialized<float>(keys.size() * dim, &out);
    t.table->Lookup(keys, out);
    // The reply is checksummed when the request was (the client's ChecksumMode).
    Reply(peer, MakeDataMessage(MsgType::kPullResponse, MyId(), msg.header.request_id, t.version,
                                msg.header.table_id, dim, Buffer(), std::move(values),
                                msg.header.checksum != 0));
    metrics_.pulls.Increment();
    metrics_.rows_pulled.Increment(keys.size());
    metrics_.pull_latency.Observe(std::chrono::duration<double>(Clock::now() - start).count());
  }

  // Answers the pulls that waited for a version this table has now reached.
  void AnswerReadyPulls(TableState& t) {
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

  void HandlePush(const std::string& peer, Message msg) {
    auto start = Clock::now();
    const Header& h = msg.header;
    TableState& t = tables_[h.table_id];
    if (h.num_keys > 0 && h.dim != t.table->dim()) {
      return Reject(peer, msg,
                    InvalidArgument("push dim " + std::to_string(h.dim) + " but table " +
                                    std::to_string(h.table_id) + " has dim " +
                                    std::to_string(t.table->dim())));
    }
    bool finite = AllFinite(msg.value_span());
    if (!options_.synchronous) {
      if (!finite) {
        metrics_.nonfinite.Increment();
        return Reject(peer, msg, InvalidArgument("non-finite gradient dropped"));
      }
      // Repeated keys need no check: the table applies them in call order.
      auto keys = msg.key_span();
      t.table->Apply(keys, msg.value_span().data());
      metrics_.rows_pushed.Increment(keys.size());
      if (!(h.flags & kFlagMoreParts)) {
        // The push's last (or only) part: now it counts as one update.
        metrics_.staleness.Observe(static_cast<double>(std::max<int64_t>(0, t.version - h.round)));
        t.version++;
        metrics_.pushes.Increment();
      }
      Reply(peer, MakeDataMessage(MsgType::kPushAck, MyId(), h.request_id, t.version, h.table_id, 0,
                                  Buffer(), Buffer()));
      metrics_.push_latency.Observe(std::chrono::duration<double>(Clock::now() - start).count());
      return;
    }
    if (h.flags & kFlagMoreParts) {
      return Reject(peer, msg,
                    InvalidArgument("a push split into parts needs an asynchronous server; "
                                    "synchronous rounds take one push per worker"));
    }
    if (h.round < t.version) {
      metrics_.stale.Increment();
      return Reject(peer, msg,
                    Aborted("round " + std::to_string(h.round) +
                            " already closed; server is at version " + std::to_string(t.version)));
    }
    if (h.round == t.version + 1 && t.closing && !t.early.count(h.sender)) {
      // The worker saw round t close on another shard first; keep its push
      // for the next round.
      t.early[h.sender] = WorkerPush{msg.keys, msg.values, !finite};
      if (!finite) metrics_.nonfinite.Increment();
      Reply(peer, MakeDataMessage(MsgType::kPushAck, MyId(), h.request_id, h.round, h.table_id, 0,
                                  Buffer(), Buffer()));
      return;
    }
    if (h.round > t.version) {
      return Reject(peer, msg,
                    FailedPrecondition("round " + std::to_string(h.round) +
                                       " is ahead of server version " + std::to_string(t.version)));
    }
    if (t.pushes.count(h.sender) || t.closing) {
      return Reject(peer, msg,
                    AlreadyExists("worker already pushed round " + std::to_string(h.round)));
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
    if (!peeks_.empty()) AnswerHonestPeeks();
    TableState& t = tables_[table_id];
    if (t.closing) {
      // Phase 2 overdue (coordinator gone and no replacement answered): close
      // with this shard's own plan rather than stall training.
      if (Clock::now() - t.close_started > std::chrono::milliseconds(options_.round_timeout_ms)) {
        spdlog::warn("server: table {} round {}: no plan from the coordinator; closing locally",
                     table_id, t.version);
        metrics_.local_fallbacks.Increment();
        internal::RoundPlan plan = internal::CombinePartials(*aggregator_, {t.partial});
        FinishClose(table_id, t.version, plan);
      }
      return;
    }
    if (t.pushes.empty()) return;
    int missing = 0;
    for (const auto& w : view_.workers) {
      if (w.alive && !t.pushes.count(w.id)) missing++;
    }
    bool timed_out =
        Clock::now() - t.round_started > std::chrono::milliseconds(options_.round_timeout_ms);
    if (missing > 0 && !timed_out) return;
    if (missing > 0) {
      metrics_.timeouts.Increment();
      metrics_.missing.Increment(missing);
      spdlog::warn("server: table {} round {} closed by timeout without {} worker(s)", table_id,
                   t.version, missing);
    }
    StartClose(table_id);
  }

  // Phase 1: build this shard's slice [G | E] of the round and send its
  // partial (worker list, finiteness, partial Gram) to the coordinator.
  void StartClose(size_t table_id) {
    TableState& t = tables_[table_id];
    t.closing = true;
    t.close_started = Clock::now();
    const uint32_t dim = t.table->dim();
    Slice& sl = t.slice;
    sl = Slice();
    internal::GramPartial& part = t.partial;
    part = internal::GramPartial();
    std::vector<const WorkerPush*> pushes;
    for (auto& [id, p] : t.pushes) {
      sl.workers.push_back(id);
      pushes.push_back(&p);
      part.finite.push_back(p.excluded ? 0 : 1);
    }
    part.workers = sl.workers;
    const size_t n = pushes.size();
    // Fast path: every worker pushed the same key list (dense parameters).
    bool same_keys = true;
    for (size_t i = 1; i < n && same_keys; ++i) {
      same_keys =
          pushes[i]->keys.size() == pushes[0]->keys.size() &&
          std::memcmp(pushes[i]->keys.data(), pushes[0]->keys.data(), pushes[0]->keys.size()) == 0;
    }
    if (same_keys) {
      auto k0 = pushes[0]->keys.as<uint64_t>();
      sl.keys.assign(k0.begin(), k0.end());
      sl.grads.resize(static_cast<Eigen::Index>(sl.keys.size() * dim),
                      static_cast<Eigen::Index>(n));
      for (size_t i = 0; i < n; ++i) {
        auto col = sl.grads.col(static_cast<Eigen::Index>(i));
        if (pushes[i]->excluded) {
          col.setZero();  // never aggregated; zeros keep the partial Gram finite
          continue;
        }
        auto v = pushes[i]->values.as<float>();
        col = Eigen::Map<const Eigen::VectorXf>(v.data(), static_cast<Eigen::Index>(v.size()));
      }
    } else {
      // Union of keys; a worker that did not touch a key contributes zeros.
      std::unordered_map<uint64_t, uint32_t> index;
      for (const auto* p : pushes) {
        for (uint64_t k : p->keys.as<uint64_t>()) {
          if (index.emplace(k, static_cast<uint32_t>(sl.keys.size())).second) sl.keys.push_back(k);
        }
      }
      sl.grads = Eigen::MatrixXf::Zero(static_cast<Eigen::Index>(sl.keys.size() * dim),
                                       static_cast<Eigen::Index>(n));
      for (size_t i = 0; i < n; ++i) {
        if (pushes[i]->excluded) continue;
        auto k = pushes[i]->keys.as<uint64_t>();
        auto v = pushes[i]->values.as<float>();
        for (size_t j = 0; j < k.size(); ++j) {
          Eigen::Index row = static_cast<Eigen::Index>(static_cast<size_t>(index[k[j]]) * dim);
          sl.grads.col(static_cast<Eigen::Index>(i)).segment(row, dim) +=
              Eigen::Map<const Eigen::VectorXf>(v.data() + j * dim, dim);
        }
      }
    }
    if (!aggregator_->coordinate_wise()) {
      Status s = BuildExtrasAndGram(t, static_cast<int>(n));
      if (!s.ok()) {
        spdlog::error("server: table {} round {}: {}", table_id, t.version, s.ToString());
        part.finite.assign(part.finite.size(), 0);  // nothing usable from this shard
        part.gram = Eigen::MatrixXd::Zero(static_cast<Eigen::Index>(n + part.extra),
                                          static_cast<Eigen::Index>(n + part.extra));
      }
    }
    SendPartial(table_id);
  }

  // E_s: the rule's extra columns for this shard's coordinates. Coordinate
  // (key, c) is global row key*dim + c, the same on every shard, so seeded
  // extras agree; centered clipping's centre is this shard's stored slice of
  // the previous aggregate.
  Status BuildExtrasAndGram(TableState& t, int n) {
    const uint32_t dim = t.table->dim();
    const int k = aggregator_->num_extra_columns(n);
    t.partial.extra = k;
    Slice& sl = t.slice;
    sl.extras.resize(sl.grads.rows(), k);
    if (k > 0) {
      for (size_t j = 0; j < sl.keys.size(); ++j) {
        Eigen::VectorXd prev = Eigen::VectorXd::Zero(dim);
        if (auto it = t.previous.find(sl.keys[j]); it != t.previous.end()) prev = it->second;
        int64_t row = static_cast<int64_t>(sl.keys[j] * static_cast<uint64_t>(dim));
        PHX_ASSIGN_OR_RETURN(Eigen::MatrixXd e, aggregator_->ExtraColumns(n, row, dim, prev));
        sl.extras.block(static_cast<Eigen::Index>(j * dim), 0, dim, k) = e;
      }
    }
    PHX_ASSIGN_OR_RETURN(t.partial.gram, aggregators::PartialGram(sl.grads, sl.extras));
    return Status::Ok();
  }

  bool IsCoordinator() const { return CoordinatorRank() == membership_->rank(); }

  // The round coordinator is the lowest-ranked live server.
  int CoordinatorRank() const {
    for (const auto& s : view_.servers) {
      if (s.alive) return s.rank;
    }
    return membership_->rank();
  }

  void SendPartial(size_t table_id) {
    TableState& t = tables_[table_id];
    if (IsCoordinator()) {
      AddPartial(static_cast<uint32_t>(table_id), t.version, membership_->rank(), "", t.partial);
      return;
    }
    Status s = EnsureCoordinatorSocket();
    if (s.ok()) {
      std::string body = internal::EncodePartial(t.partial);
      metrics_.coordination_bytes.Increment(body.size());
      Message m = MakeControlMessage(MsgType::kGramPartial, MyId(), 0, std::move(body));
      m.header.round = t.version;
      m.header.table_id = static_cast<uint32_t>(table_id);
      s = coord_socket_->Send(m);
    }
    if (!s.ok()) spdlog::warn("server: cannot reach the round coordinator: {}", s.ToString());
  }

  Status EnsureCoordinatorSocket() {
    int rank = CoordinatorRank();
    if (rank < 0 || rank >= static_cast<int>(view_.servers.size())) {
      return Unavailable("no live coordinator");
    }
    const NodeInfo& c = view_.servers[rank];
    std::string ep = TcpEndpoint(c.host, c.data_port);
    if (coord_socket_ && coord_endpoint_ == ep) return Status::Ok();
    PHX_ASSIGN_OR_RETURN(coord_socket_,
                         Socket::Connect(Socket::Kind::kDealer, ep, options_.limits));
    coord_endpoint_ = ep;
    return Status::Ok();
  }

  // Coordinator: records a shard's partial and combines once every live shard sent one.
  void AddPartial(uint32_t table, int64_t round, int rank, const std::string& peer,
                  internal::GramPartial partial) {
    Collect& c = collecting_[{table, round}];
    c.partials[rank] = std::move(partial);
    c.peers[rank] = peer;
    TryCombine(table, round);
  }

  void TryCombine(uint32_t table, int64_t round) {
    auto it = collecting_.find({table, round});
    if (it == collecting_.end()) return;
    Collect& c = it->second;
    for (const auto& s : view_.servers) {
      if (s.alive && !c.partials.count(s.rank)) return;
    }
    std::vector<internal::GramPartial> parts;
    for (auto& [rank, p] : c.partials) parts.push_back(std::move(p));
    internal::RoundPlan plan = internal::CombinePartials(*aggregator_, parts);
    std::string body = internal::EncodePlan(plan);
    for (auto& [rank, peer] : c.peers) {
      if (peer.empty()) continue;
      Message m = MakeControlMessage(MsgType::kGramPlan, MyId(), 0, body);
      m.header.round = round;
      m.header.table_id = table;
      metrics_.coordination_bytes.Increment(body.size());
      Reply(peer, m);
    }
    bool mine = c.peers.count(membership_->rank()) > 0;
    collecting_.erase(it);
    metrics_.coordinated_rounds.Increment();
    if (mine) FinishClose(table, round, plan);
  }

  void HandleGramPartial(const std::string& peer, const Message& msg) {
    int rank = -1;
    for (const auto& s : view_.servers) {
      if (s.id == msg.header.sender && s.alive) rank = s.rank;
    }
    if (rank < 0) {
      return Reject(peer, msg,
                    Unauthenticated("GramPartial from a node that is not a live server"));
    }
    if (msg.header.table_id >= tables_.size()) {
      return Reject(peer, msg, NotFound("unknown table " + std::to_string(msg.header.table_id)));
    }
    auto partial = internal::DecodePartial(msg.body);
    if (!partial.ok()) return Reject(peer, msg, partial.status());
    metrics_.coordination_bytes.Increment(msg.body.size());
    AddPartial(msg.header.table_id, msg.header.round, rank, peer, std::move(partial).value());
  }

  // Shard: a plan arrived from the coordinator.
  void DrainCoordinator() {
    if (!coord_socket_) return;
    while (true) {
      Received r = coord_socket_->Recv(0);
      if (r.status.code() == StatusCode::kDeadlineExceeded) return;
      if (!r.status.ok()) {
        metrics_.rejected.Increment();
        continue;
      }
      const Message& m = r.msg;
      if (m.header.type == MsgType::kError) {
        spdlog::warn("server: coordinator refused our partial: {}", StatusFromError(m).ToString());
        continue;
      }
      if (m.header.type != MsgType::kGramPlan || m.header.table_id >= tables_.size()) continue;
      auto plan = internal::DecodePlan(m.body);
      if (!plan.ok()) {
        metrics_.rejected.Increment();
        spdlog::warn("server: bad plan from coordinator: {}", plan.status().ToString());
        continue;
      }
      metrics_.coordination_bytes.Increment(m.body.size());
      FinishClose(m.header.table_id, m.header.round, *plan);
    }
  }

  // Phase 2 on this shard: apply the plan to the slice, step the optimizer,
  // advance the version and answer the pulls waiting for it.
  void FinishClose(size_t table_id, int64_t round, const internal::RoundPlan& plan) {
    TableState& t = tables_[table_id];
    if (!t.closing || round != t.version) return;  // stale or duplicate plan
    auto start = Clock::now();
    if (!plan.error.empty()) {
      metrics_.failed_rounds.Increment();
      spdlog::error("server: table {} round {} closed without update: {}", table_id, round,
                    plan.error);
    } else {
      Status s = ApplyPlan(t, plan);
      if (!s.ok()) {
        metrics_.failed_rounds.Increment();
        spdlog::error("server: table {} round {} not applied: {}", table_id, round, s.ToString());
      }
    }
    int expected = 0;
    for (const auto& w : view_.workers) expected += w.alive ? 1 : 0;
    int dropped_nonfinite = 0;
    for (size_t i = 0; i < t.partial.finite.size(); ++i) {
      if (!std::binary_search(plan.workers.begin(), plan.workers.end(), t.slice.workers[i])) {
        dropped_nonfinite++;
      }
    }
    metrics_.dropped_workers.Increment(dropped_nonfinite);
    (void)expected;
    metrics_.round_seconds.Observe(std::chrono::duration<double>(start - t.round_started).count());
    metrics_.apply_seconds.Observe(std::chrono::duration<double>(Clock::now() - start).count());
    metrics_.rounds.Increment();
    t.pushes.clear();
    t.pushes.swap(t.early);  // pushes for the next round that arrived while closing
    if (!t.pushes.empty()) t.round_started = Clock::now();
    t.closing = false;
    t.slice = Slice();
    t.version++;
    t.align_pending = false;
    if (table_id == 0) metrics_.version.Set(static_cast<double>(t.version));
    AnswerReadyPulls(t);
  }

  Status ApplyPlan(TableState& t, const internal::RoundPlan& plan) {
    Slice& sl = t.slice;
    if (sl.keys.empty()) return Status::Ok();
    // Columns of the plan's workers in this shard's slice.
    std::vector<int> cols = internal::ColumnsOf(sl.workers, plan.workers, 0);
    Eigen::MatrixXf used(sl.grads.rows(), static_cast<Eigen::Index>(cols.size()));
    for (size_t i = 0; i < cols.size(); ++i) {
      if (cols[i] < 0) return Internal("plan names a worker this shard did not see");
      used.col(static_cast<Eigen::Index>(i)) = sl.grads.col(cols[i]);
    }
    Eigen::VectorXd agg;
    if (plan.local) {
      PHX_ASSIGN_OR_RETURN(agg, aggregator_->Aggregate(used.cast<double>()));
    } else {
      PHX_ASSIGN_OR_RETURN(agg, aggregators::ApplyGramPlan(plan.plan, used, sl.extras));
    }
    if (!agg.allFinite()) return Internal("aggregate is not finite");
    const uint32_t dim = t.table->dim();
    if (sl.extras.cols() > 0) {
      for (size_t j = 0; j < sl.keys.size(); ++j) {
        t.previous[sl.keys[j]] = agg.segment(static_cast<Eigen::Index>(j * dim), dim);
      }
    }
    std::vector<float> update(static_cast<size_t>(agg.size()));
    Eigen::Map<Eigen::VectorXf>(update.data(), agg.size()) = agg.cast<float>();
    t.table->Apply(sl.keys, update.data());
    return Status::Ok();
  }

  // Startup: load the newest valid snapshot of this rank when asked to
  // (--restore) or when this server replaces one in a formed cluster (first
  // view after the formation view) and checkpoint.dir holds one.
  Status Recover() {
    recovery_.restored_round.Set(-1);
    const CheckpointOptions& cp = options_.checkpoint;
    const int32_t rank = membership_->rank();
    const bool have = !cp.dir.empty() && !ListSnapshots(cp.dir, rank).empty();
    const bool replacement = view_.epoch > 1;
    if (!options_.restore && !(have && replacement)) {
      if (have) MoveStaleSnapshots(rank);
      return Status::Ok();
    }
    if (cp.dir.empty()) return InvalidArgument("--restore needs checkpoint.dir in the config");
    SnapshotExpectation e;
    e.rank = rank;
    e.num_slots = view_.num_slots;
    e.num_servers = NumServers();
    e.tables = options_.tables;
    auto start = Clock::now();
    auto loaded = LoadNewestSnapshot(cp.dir, e);
    if (!loaded.ok()) {
      if (options_.restore) {
        return loaded.status().WithContext("restoring server rank " + std::to_string(rank));
      }
      spdlog::error("server rank {}: no usable snapshot ({}); starting from initial values", rank,
                    loaded.status().ToString());
      return Status::Ok();
    }
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    for (size_t i = 0; i < tables_.size(); ++i) {
      TableState& t = tables_[i];
      t.table = std::move(loaded->tables[i]);
      t.version = loaded->info.tables[i].version;
      t.restored_version = t.version;
      t.align_pending = true;
    }
    last_snapshot_version_ = loaded->info.round;
    recovery_.restored_round.Set(static_cast<double>(loaded->info.round));
    recovery_.restore_seconds.Set(secs);
    restored_round_ = loaded->info.round;
    spdlog::warn(
        "server rank {} restored from {} (round {}, {} rows) in {:.3f} s; waiting for "
        "the cluster's round to count the updates lost",
        rank, loaded->info.path, loaded->info.round, TotalRows(), secs);
    return Status::Ok();
  }

  // A fresh start must not later mistake another run's snapshots for its own.
  void MoveStaleSnapshots(int32_t rank) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path stale = fs::path(options_.checkpoint.dir) / "stale";
    fs::create_directories(stale, ec);
    for (const auto& f : ListSnapshots(options_.checkpoint.dir, rank)) {
      fs::rename(f, stale / fs::path(f).filename(), ec);
    }
    spdlog::warn("server rank {} starts fresh: moved its old snapshots to {}", rank,
                 stale.string());
  }

  uint32_t NumServers() const {
    return options_.num_servers ? options_.num_servers
                                : static_cast<uint32_t>(view_.servers.size());
  }

  size_t TotalRows() const {
    size_t n = 0;
    for (const auto& t : tables_) n += t.table->size();
    return n;
  }

  // A restored table meets the first request from the cluster's current
  // round: a push for round r (the worker pulled version r) or a pull for a
  // version r by a worker that has not pushed here at this version (so it is
  // not merely waiting for our next round) moves the version to r.
  void AlignRestored(uint32_t table_id, int32_t sender, int64_t round, bool is_pull) {
    TableState& t = tables_[table_id];
    if (round <= t.version || t.closing) return;
    if (is_pull && t.pushes.count(sender)) return;
    const int64_t lost = round - t.restored_version;
    spdlog::warn(
        "server rank {} table {}: restored at round {}, the cluster is at round {}: {} "
        "update(s) lost",
        membership_->rank(), table_id, t.restored_version, round, lost);
    if (table_id == 0) {
      recovery_.updates_lost.Set(static_cast<double>(lost));
      updates_lost_ = lost;
    }
    t.pushes.clear();
    t.early.clear();
    t.version = round;
    if (table_id == 0) metrics_.version.Set(static_cast<double>(t.version));
    AnswerReadyPulls(t);
  }

  // Every checkpoint.every_rounds rounds of table 0 or every_seconds: copy
  // the tables here (the request loop pauses for a memory copy), write the
  // file on a background thread. At most one write in flight.
  void MaybeSnapshot() {
    const CheckpointOptions& cp = options_.checkpoint;
    if (cp.dir.empty() || tables_.empty() || writer_busy_.load()) return;
    for (const auto& t : tables_) {
      if (t.align_pending) return;  // not yet at the cluster's round
    }
    const int64_t v = tables_[0].version;
    const auto now = Clock::now();
    const bool by_rounds = cp.every_rounds > 0 && v - last_snapshot_version_ >= cp.every_rounds;
    const bool by_time =
        cp.every_seconds > 0 &&
        now - last_snapshot_time_ >= std::chrono::duration<double>(cp.every_seconds);
    if (!by_rounds && !by_time) return;
    last_snapshot_time_ = now;
    if (!by_rounds && v == last_snapshot_version_ && snapshots_written_ > 0) return;  // no news
    last_snapshot_version_ = v;
    std::vector<const EmbeddingTable*> tables;
    std::vector<int64_t> versions;
    for (const auto& t : tables_) {
      tables.push_back(t.table.get());
      versions.push_back(t.version);
    }
    auto image = SnapshotImage::Capture(membership_->rank(), view_.num_slots, NumServers(), tables,
                                        versions);
    recovery_.capture_seconds.Observe(std::chrono::duration<double>(Clock::now() - now).count());
    if (!image.ok()) {
      recovery_.snapshot_failures.Increment();
      spdlog::error("server: snapshot capture failed: {}", image.status().ToString());
      return;
    }
    if (writer_.joinable()) writer_.join();
    writer_busy_ = true;
    snapshots_written_++;
    writer_ = std::thread([this, img = std::move(image).value(), dir = cp.dir, keep = cp.keep,
                           rank = membership_->rank()] {
      auto start = Clock::now();
      auto r = img->WriteTo(dir);
      if (r.ok()) {
        recovery_.write_seconds.Observe(
            std::chrono::duration<double>(Clock::now() - start).count());
        recovery_.snapshots.Increment();
        recovery_.snapshot_round.Set(static_cast<double>(r->round));
        recovery_.snapshot_bytes.Set(static_cast<double>(r->bytes));
        spdlog::info("server rank {}: snapshot of round {} written ({} bytes)", rank, r->round,
                     r->bytes);
        Status p = PruneSnapshots(dir, rank, keep);
        if (!p.ok()) spdlog::warn("server: {}", p.ToString());
      } else {
        recovery_.snapshot_failures.Increment();
        spdlog::error("server rank {}: snapshot failed: {}", rank, r.status().ToString());
      }
      writer_busy_ = false;
    });
  }

  void UpdateStatus() {
    nlohmann::json j;
    j["role"] = "server";
    j["id"] = MyId();
    j["rank"] = membership_ ? membership_->rank() : -1;
    j["epoch"] = view_.epoch;
    j["mode"] = options_.synchronous ? "sync" : "async";
    j["restored_round"] = restored_round_;
    j["updates_lost"] = updates_lost_;
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
  std::unique_ptr<FederatedShard> federated_;  // live federated mode only
  std::vector<TableState> tables_;
  std::map<std::pair<uint32_t, int64_t>, Collect> collecting_;  // coordinator: by (table, round)
  std::unique_ptr<Socket> coord_socket_;                        // to the coordinator (other shards)
  std::string coord_endpoint_;
  ClusterView view_;
  // CheckOwnership's cache: whether rank owns_all_rank_ owned every slot in
  // the view of epoch owns_all_epoch_.
  mutable bool owns_all_ = false;
  mutable int64_t owns_all_epoch_ = -1;
  mutable int32_t owns_all_rank_ = -1;
  std::vector<PendingPull> peeks_;  // honest-gradient peeks waiting for their round
  ServerMetrics metrics_;
  RecoveryMetrics recovery_;
  std::thread writer_;  // background snapshot write
  std::atomic<bool> writer_busy_{false};
  int64_t last_snapshot_version_ = 0;
  Clock::time_point last_snapshot_time_;
  uint64_t snapshots_written_ = 0;
  int64_t restored_round_ = -1;
  int64_t updates_lost_ = 0;
  uint64_t loops_ = 0;
  mutable std::mutex status_mu_;
  std::string status_json_ = R"({"role":"server"})";
};

}  // namespace

Result<std::unique_ptr<Server>> Server::Create(const ServerOptions& options) {
  PHX_ASSIGN_OR_RETURN(
      auto sock,
      Socket::Bind(Socket::Kind::kRouter, TcpEndpoint(options.host, options.port), options.limits));
  auto s = std::make_unique<ServerImpl>(options, std::move(sock));
  PHX_RETURN_IF_ERROR(s->Init());
  return std::unique_ptr<Server>(std::move(s));
}

}  // namespace phalanx::ps
