#include "ps/server.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/control.h"
#include "common/membership.h"
#include "common/mutex.h"
#include "common/transport.h"
#include "ps/internal/honest_peeks.h"
#include "ps/internal/quorum_watch.h"
#include "ps/internal/recovery.h"
#include "ps/internal/replies.h"
#include "ps/internal/round_coordinator.h"
#include "ps/internal/server_metrics.h"
#include "ps/internal/server_status.h"
#include "ps/internal/sync_round.h"

namespace phalanx::ps {
namespace {

using internal::Clock;
using internal::LocalPlan;
using internal::Outbox;
using internal::SyncRound;

// The request loop: start-up, dispatch, checks that apply to every request,
// and sending what the collaborators (ps/internal/) decide.
class ServerImpl final : public Server {
 public:
  ServerImpl(const ServerOptions& o, std::unique_ptr<Socket> sock)
      : options_(o),
        socket_(std::move(sock)),
        peeks_(o.honest_peeks && o.synchronous, o.byzantine_ranks),
        recovery_(o.checkpoint, o.restore),
        quorum_(o.aggregator, &metrics_, o.on_quorum_event) {}

  Status Init() {
    // Fail before registering when there is nothing to restore.
    PHX_RETURN_IF_ERROR(internal::Recovery::CheckRestorable(options_.checkpoint, options_.restore,
                                                            options_.requested_rank));
    std::vector<std::unique_ptr<EmbeddingTable>> tables;
    for (size_t i = 0; i < options_.tables.size(); ++i) {
      if (options_.tables[i].table_id != i) return InvalidArgument("table ids must be 0..n-1");
      PHX_ASSIGN_OR_RETURN(auto table, EmbeddingTable::Create(options_.tables[i]));
      tables.push_back(std::move(table));
    }
    PHX_ASSIGN_OR_RETURN(aggregator_, aggregators::CreateAggregator(options_.aggregator));
    if (options_.synchronous && !options_.federated.enabled && options_.num_workers > 0) {
      // Refuse a rule that no round could run before registering.
      PHX_RETURN_IF_ERROR(aggregators::CheckRuleCanRun(options_.aggregator, options_.num_workers)
                              .WithContext("server refuses the configured rule"));
    }
    for (size_t i = 0; i < tables.size(); ++i) {
      rounds_.emplace_back(static_cast<uint32_t>(i), std::move(tables[i]), aggregator_.get(),
                           &metrics_, options_.round_timeout_ms,
                           options_.exclude_after_missed_rounds);
    }
    quorum_.SetTables(rounds_.size());
    if (options_.federated.enabled) {
      PHX_ASSIGN_OR_RETURN(federated_,
                           FederatedShard::Create(options_.federated, &rounds_[0].table()));
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
    mo.config_fingerprint = options_.config_fingerprint;
    PHX_ASSIGN_OR_RETURN(membership_, MembershipClient::Start(mo));
    auto view = membership_->WaitForView(1, options_.formation_timeout_ms);
    if (!view.ok()) return view.status().WithContext("waiting for the cluster to form");
    view_ = *view;
    coordinator_ = std::make_unique<internal::RoundCoordinator>(
        aggregator_.get(), &metrics_, &view_, options_.limits, membership_->rank(), MyId(),
        options_.exclude_after_missed_rounds);
    PHX_RETURN_IF_ERROR(
        recovery_.Restore(view_, membership_->rank(), NumServers(), options_.tables, &rounds_));
    spdlog::info("server rank {} (id {}) serving {} on {}", membership_->rank(),
                 membership_->node_id(), options_.synchronous ? "sync" : "async",
                 socket_->endpoint());
    UpdateStatus();
    return Status::Ok();
  }

  // A synchronous table whose rounds all closed without an update never
  // trained: the job must not end as if it had (issue 13, item 2).
  Status ModelUpdateOutcome() const {
    if (!options_.synchronous) return Status::Ok();
    for (const auto& r : rounds_) {
      if (r.rounds_failed() > 0 && r.rounds_updated() == 0) {
        return FailedPrecondition(
            "server rank " + std::to_string(membership_->rank()) + ": table " +
            std::to_string(r.table_id()) + " closed " + std::to_string(r.rounds_failed()) +
            " round(s) and none updated the model; last: " + r.last_failure());
      }
    }
    return Status::Ok();
  }

  int port() const override { return socket_->port(); }
  int rank() const override { return membership_->rank(); }

  Status Run(const std::atomic<bool>* stop) override {
    while (!(stop && stop->load()) && !membership_->shutdown_requested()) {
      Socket* coord = coordinator_->socket();
      Received r = socket_->Recv(coord ? 0 : 20);
      if (coord && r.status.code() == StatusCode::kDeadlineExceeded) {
        Socket* socks[2] = {socket_.get(), coord};
        (void)PollReadable(socks, 20);
        DrainCoordinator();
        r = socket_->Recv(0);
      }
      if (r.status.ok()) {
        Handle(r.peer, std::move(r.msg));
      } else if (r.status.code() != StatusCode::kDeadlineExceeded) {
        metrics_.rejected.Increment();
        spdlog::warn("server: rejected message: {}", r.status.ToString());
        if (!r.peer.empty()) Send({r.peer, MakeErrorMessage(MyId(), 0, r.status)});
      }
      if (membership_->epoch() != view_.epoch) OnViewChange();
      if (options_.synchronous) {
        for (size_t t = 0; t < rounds_.size(); ++t) MaybeCloseRound(t);
      }
      if (++loops_ % 64 == 0) UpdateStatus();
      if (federated_) federated_->Tick();
      recovery_.MaybeSnapshot(rounds_, membership_->rank(), view_.num_slots, NumServers());
      if (Status h = membership_->health(); !h.ok()) {
        recovery_.Join();
        UpdateStatus();  // the exit line reads the final snapshot record
        return h.WithContext("server rank " + std::to_string(membership_->rank()));
      }
    }
    spdlog::info("server rank {}: shutting down", membership_->rank());
    recovery_.Join();
    UpdateStatus();
    return ModelUpdateOutcome();
  }

  std::string StatusJson() const override {
    MutexLock lock(&status_mu_);
    return status_json_;
  }

 private:
  int32_t MyId() const { return membership_ ? membership_->node_id() : -1; }

  void Send(const internal::Outgoing& o) {
    if (o.refused) metrics_.rejected.Increment();
    Status s = socket_->Send(o.msg, o.peer);
    if (!s.ok()) spdlog::debug("server: reply failed: {}", s.ToString());
  }
  void Send(const Outbox& out) {
    for (const auto& o : out) Send(o);
  }
  void Reject(const std::string& peer, const Message& req, const Status& s) {
    Send(internal::Refuse(MyId(), peer, req.header, s));
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
    const int old_coordinator = coordinator_->CoordinatorRank();
    view_ = membership_->view();
    UpdateStatus();
    // A dead shard no longer holds up the rounds it was part of.
    Outbox out;
    std::vector<LocalPlan> mine;
    coordinator_->Recombine(&out, &mine);
    Send(out);
    ApplyPlans(mine);
    // A new coordinator needs this shard's pending partials again.
    if (coordinator_->CoordinatorRank() != old_coordinator) {
      for (auto& r : rounds_) {
        if (r.closing()) SendPartial(r);
      }
    }
    AnswerPeeks();  // the honest set may have changed
  }

  void Handle(const std::string& peer, Message msg) {
    const Header& h = msg.header;
    if (h.type == MsgType::kGramPartial) return HandleGramPartial(peer, msg);
    if (h.type != MsgType::kPull && h.type != MsgType::kPush && h.type != MsgType::kHonestPeek) {
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
    if (h.table_id >= rounds_.size()) {
      return Reject(peer, msg, NotFound("unknown table " + std::to_string(h.table_id)));
    }
    Status own = CheckOwnership(msg.key_span());
    if (!own.ok()) return Reject(peer, msg, own);
    if (federated_ && h.table_id == 0) {
      // Live federated mode: the shard's FederatedServer owns table 0.
      Send({peer, federated_->Handle(msg, MyId())});
      return;
    }
    if (options_.synchronous && recovery_.align_pending(h.table_id)) {
      Outbox out;
      const int64_t lost_before = recovery_.updates_lost();
      recovery_.Align(h, membership_->rank(), &rounds_[h.table_id], MyId(), &out);
      if (recovery_.updates_lost() != lost_before && options_.on_updates_lost) {
        options_.on_updates_lost(recovery_.restored_round(), recovery_.updates_lost());
      }
      Send(out);
      AnswerPeeks();  // the version may have moved
    }
    if (h.type == MsgType::kHonestPeek) {
      const Header request = h;
      if (Status s = peeks_.Queue(peer, std::move(msg), view_); !s.ok()) {
        return Send(internal::Refuse(MyId(), peer, request, s));
      }
      return AnswerPeeks();
    }
    if (h.type == MsgType::kPull) {
      Outbox out;
      rounds_[h.table_id].Pull(peer, std::move(msg), options_.synchronous, MyId(), &out);
      return Send(out);
    }
    return HandlePush(peer, msg);
  }

  // Omniscient attacks (ps/internal/honest_peeks.h). The honest set must be
  // the cluster's current one, not a view from before every worker
  // registered.
  void AnswerPeeks() {
    if (peeks_.empty()) return;
    if (membership_->epoch() != view_.epoch) return OnViewChange();  // answers them
    Outbox out;
    peeks_.Answer(view_, rounds_, MyId(), &out);
    Send(out);
  }

  void HandlePush(const std::string& peer, const Message& msg) {
    auto start = Clock::now();
    const Header& h = msg.header;
    SyncRound& t = rounds_[h.table_id];
    if (h.num_keys > 0 && h.dim != t.table().dim()) {
      return Reject(peer, msg,
                    InvalidArgument("push dim " + std::to_string(h.dim) + " but table " +
                                    std::to_string(h.table_id) + " has dim " +
                                    std::to_string(t.table().dim())));
    }
    const bool finite = internal::AllFinite(msg.value_span());
    if (!options_.synchronous) return HandleAsyncPush(peer, msg, finite, start);
    Outbox out;
    const bool joined = t.Push(peer, msg, finite, MyId(), &out);
    Send(out);
    if (!joined) return;
    metrics_.push_latency.Observe(internal::SecondsSince(start));
    AnswerPeeks();
    MaybeCloseRound(h.table_id);
  }

  // Asynchronous mode: applied on arrival; the version counts updates.
  void HandleAsyncPush(const std::string& peer, const Message& msg, bool finite,
                       Clock::time_point start) {
    const Header& h = msg.header;
    SyncRound& t = rounds_[h.table_id];
    if (!finite) {
      metrics_.nonfinite.Increment();
      return Reject(peer, msg, InvalidArgument("non-finite gradient dropped"));
    }
    // Repeated keys need no check: the table applies them in call order.
    auto keys = msg.key_span();
    t.table().Apply(keys, msg.value_span().data());
    metrics_.rows_pushed.Increment(keys.size());
    if (!(h.flags & kFlagMoreParts)) {
      // The push's last (or only) part: now it counts as one update.
      metrics_.staleness.Observe(static_cast<double>(std::max<int64_t>(0, t.version() - h.round)));
      t.Advance();
      metrics_.pushes.Increment();
    }
    Send({peer, internal::PushAck(MyId(), h, t.version())});
    metrics_.push_latency.Observe(internal::SecondsSince(start));
  }

  void MaybeCloseRound(size_t table_id) {
    SyncRound& t = rounds_[table_id];
    const auto now = Clock::now();
    if (t.PlanOverdue(now)) {
      // Phase 2 overdue (coordinator gone and no replacement answered): close
      // with this shard's own plan rather than stall training.
      spdlog::warn("server: table {} round {}: no plan from the coordinator; closing locally",
                   table_id, t.version());
      metrics_.local_fallbacks.Increment();
      ApplyPlans({{t.table_id(), t.version(),
                   coordinator_->Plan(t.table_id(), t.version(), {t.partial()})}});
      return;
    }
    if (t.ReadyToClose(view_.workers, now)) {
      t.StartClose();
      SendPartial(t);
    }
  }

  // Phase 1 done on this shard: the partial goes to the coordinator.
  void SendPartial(const SyncRound& t) {
    Outbox out;
    std::vector<LocalPlan> mine;
    coordinator_->SendPartial(t.table_id(), t.version(), t.partial(), &out, &mine);
    Send(out);
    ApplyPlans(mine);
  }

  void HandleGramPartial(const std::string& peer, const Message& msg) {
    Outbox out;
    std::vector<LocalPlan> mine;
    Status s = coordinator_->OnPartial(peer, msg, rounds_.size(), &out, &mine);
    if (!s.ok()) return Reject(peer, msg, s);
    Send(out);
    ApplyPlans(mine);
  }

  // Shard: plans arrived from the coordinator.
  void DrainCoordinator() {
    std::vector<LocalPlan> mine;
    coordinator_->Drain(rounds_.size(), &mine);
    ApplyPlans(mine);
  }

  // Phase 2 on this shard, for each plan.
  void ApplyPlans(const std::vector<LocalPlan>& plans) {
    for (const auto& p : plans) {
      Outbox out;
      if (!rounds_[p.table].FinishClose(p.round, p.plan, MyId(), &out)) continue;
      recovery_.OnRoundClosed(p.table);
      Send(out);
      AnswerPeeks();  // a closed round refuses its late peeks
      quorum_.Check(rounds_[p.table], view_.workers);
    }
    quorum_.Report(coordinator_->TakeQuorumChanges());
  }

  uint32_t NumServers() const {
    return options_.num_servers ? options_.num_servers
                                : static_cast<uint32_t>(view_.servers.size());
  }

  void UpdateStatus() {
    nlohmann::json j;
    j["role"] = "server";
    j["id"] = MyId();
    j["rank"] = membership_ ? membership_->rank() : -1;
    j["epoch"] = view_.epoch;
    j["mode"] = options_.synchronous ? "sync" : "async";
    j["restored_round"] = recovery_.restored_round();
    j["updates_lost"] = recovery_.updates_lost();
    j["quorum_exclusions"] = quorum_.exclusions();  // decided by this server as coordinator
    j["pid"] = static_cast<int64_t>(getpid());
    j["checkpoints"] = !options_.checkpoint.dir.empty();
    j["snapshots"] = recovery_.snapshots_written();
    j["snapshot_failures"] = recovery_.snapshot_failures();
    j["last_snapshot_round"] = recovery_.last_snapshot_round();
    j["endpoint"] = socket_->endpoint();
    static const nlohmann::json kBuild = nlohmann::json::parse(BuildInfoJson(ProcessBuildInfo()));
    j["build"] = kBuild;
    size_t rows = 0;
    j["tables"] = internal::TablesStatus(rounds_, view_.workers, &rows);
    metrics_.rows.Set(static_cast<double>(rows));
    j["peers"] = internal::PeersStatus(view_);
    MutexLock lock(&status_mu_);
    status_json_ = j.dump();
  }

  ServerOptions options_;
  std::unique_ptr<Socket> socket_;
  std::unique_ptr<MembershipClient> membership_;
  std::unique_ptr<aggregators::Aggregator> aggregator_;
  internal::ServerMetrics metrics_;
  std::vector<SyncRound> rounds_;              // by table id
  std::unique_ptr<FederatedShard> federated_;  // live federated mode only
  std::unique_ptr<internal::RoundCoordinator> coordinator_;
  internal::HonestPeeks peeks_;
  internal::Recovery recovery_;
  internal::QuorumWatch quorum_;
  ClusterView view_;
  // CheckOwnership's cache: whether rank owns_all_rank_ owned every slot in
  // the view of epoch owns_all_epoch_.
  mutable bool owns_all_ = false;
  mutable int64_t owns_all_epoch_ = -1;
  mutable int32_t owns_all_rank_ = -1;
  uint64_t loops_ = 0;
  // /status is read on the HTTP thread, written by the request loop.
  mutable Mutex status_mu_;
  std::string status_json_ GUARDED_BY(status_mu_) = R"({"role":"server"})";
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
