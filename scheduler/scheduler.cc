#include "scheduler/scheduler.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/control.h"
#include "common/metrics.h"
#include "common/mutex.h"
#include "common/transport.h"

namespace phalanx::scheduler {
namespace {

using Clock = std::chrono::steady_clock;

struct Member {
  NodeInfo info;
  std::string peer;  // ROUTER routing id
  Clock::time_point last_seen;
  bool left = false;
};

class SchedulerImpl final : public Scheduler {
 public:
  SchedulerImpl(const SchedulerOptions& o, std::unique_ptr<Socket> s)
      : options_(o),
        socket_(std::move(s)),
        views_(MetricsRegistry::Global().GetCounter("phalanx_cluster_views_total",
                                                    "Cluster views published")),
        deaths_(MetricsRegistry::Global().GetCounter("phalanx_node_failures_total",
                                                     "Nodes declared dead by missed heartbeats")),
        rejected_(MetricsRegistry::Global().GetCounter(
            "phalanx_rejected_messages_total", "Messages from unknown senders or malformed")),
        config_refusals_(MetricsRegistry::Global().GetCounter(
            "phalanx_scheduler_config_refusals_total",
            "Registrations refused because the node's config differs from the job's")),
        epoch_gauge_(MetricsRegistry::Global().GetGauge("phalanx_cluster_epoch",
                                                        "Current cluster view epoch")) {}

  int port() const override { return socket_->port(); }
  std::string endpoint() const override { return socket_->endpoint(); }

  Status Run(const std::atomic<bool>* stop) override {
    auto start = Clock::now();
    while (!stop || !stop->load()) {
      Received r = socket_->Recv(50);
      auto now = Clock::now();
      if (r.status.ok()) {
        Handle(r.peer, r.msg, now);
      } else if (r.status.code() != StatusCode::kDeadlineExceeded) {
        rejected_.Increment();
        spdlog::warn("scheduler: rejected message: {}", r.status.ToString());
        if (!r.peer.empty()) (void)socket_->Send(MakeErrorMessage(0, 0, r.status), r.peer);
      }
      CheckHeartbeats(now);
      CheckFormed(now);
      if (formed_ && AllWorkersGone()) {
        // Let servers finish answering, then stop them.
        for (auto& [id, m] : members_) {
          if (m.info.role == Role::kServer && m.info.alive) {
            (void)socket_->Send(MakeControlMessage(MsgType::kShutdown, 0, 0, ""), m.peer);
          }
        }
        bool any_left = false;
        for (auto& [id, m] : members_) any_left |= m.info.role == Role::kWorker && m.left;
        spdlog::info("scheduler: all workers done; shutting the cluster down");
        return any_left ? Status::Ok() : Aborted("every worker died");
      }
      if (!formed_ && options_.formation_timeout_ms > 0 &&
          now - start > std::chrono::milliseconds(options_.formation_timeout_ms)) {
        return DeadlineExceeded(
            "cluster did not form: " + std::to_string(CountRole(Role::kServer)) + "/" +
            std::to_string(options_.expected_servers) + " servers, " +
            std::to_string(CountRole(Role::kWorker)) + "/" +
            std::to_string(options_.expected_workers) + " workers registered");
      }
    }
    return Cancelled("scheduler stopped");
  }

  std::string StatusJson() const override {
    MutexLock lock(&status_mu_);
    return status_json_;
  }

 private:
  int CountRole(Role role) const {
    int n = 0;
    for (const auto& [id, m] : members_) n += m.info.role == role ? 1 : 0;
    return n;
  }

  bool AllWorkersGone() const {
    for (const auto& [id, m] : members_) {
      if (m.info.role == Role::kWorker && m.info.alive) return false;
    }
    return true;
  }

  void Handle(const std::string& peer, const Message& msg, Clock::time_point now) {
    if (msg.header.type == MsgType::kRegister) return HandleRegister(peer, msg, now);
    auto it = peers_.find(peer);
    if (it == peers_.end() || members_.count(it->second) == 0 || msg.header.sender != it->second) {
      rejected_.Increment();
      (void)socket_->Send(
          MakeErrorMessage(0, msg.header.request_id, FailedPrecondition("unregistered node")),
          peer);
      return;
    }
    Member& m = members_[it->second];
    m.last_seen = now;
    switch (msg.header.type) {
      case MsgType::kHeartbeat:
        // The answer lets nodes notice a scheduler that is gone.
        (void)socket_->Send(MakeControlMessage(MsgType::kHeartbeat, 0, 0, ""), peer);
        break;
      case MsgType::kLeave:
        spdlog::info("scheduler: {} {} (rank {}) left", RoleName(m.info.role), m.info.id,
                     m.info.rank);
        m.left = true;
        m.info.alive = false;
        Publish();
        CheckBarriers();
        break;
      case MsgType::kBarrier: {
        auto b = DecodeBarrier(msg.body);
        if (!b.ok()) {
          rejected_.Increment();
          break;
        }
        barriers_[b->name].insert(m.info.id);
        CheckBarriers();
        break;
      }
      default:
        rejected_.Increment();
        (void)socket_->Send(
            MakeErrorMessage(0, msg.header.request_id,
                             InvalidArgument(std::string("scheduler does not handle ") +
                                             MsgTypeName(msg.header.type))),
            peer);
    }
  }

  void HandleRegister(const std::string& peer, const Message& msg, Clock::time_point now) {
    auto body = DecodeRegister(msg.body);
    if (!body.ok()) {
      rejected_.Increment();
      (void)socket_->Send(MakeErrorMessage(0, 0, body.status()), peer);
      return;
    }
    NodeInfo info = body->node;
    if (info.role == Role::kScheduler) {
      (void)socket_->Send(MakeErrorMessage(0, 0, InvalidArgument("a scheduler cannot register")),
                          peer);
      return;
    }
    // A node started with another job's config would mix rows of other shapes
    // or meaning into this job. Nodes built by hand (tests) send none.
    if (!options_.fingerprint.empty() && !body->fingerprint.empty()) {
      std::string diff = FingerprintMismatch(options_.fingerprint, body->fingerprint);
      if (!diff.empty()) {
        config_refusals_.Increment();
        spdlog::warn("scheduler: refused a {} from {}: {}", RoleName(info.role), info.host, diff);
        (void)socket_->Send(
            MakeErrorMessage(0, 0, InvalidArgument("config differs from the job's: " + diff)),
            peer);
        return;
      }
    }
    // A node that saw views from a scheduler before us (we restarted): continue
    // its epochs and rebuild the cluster from re-registrations.
    if (msg.header.round > 0) {
      if (msg.header.round > epoch_) epoch_ = msg.header.round;
      if (!formed_ && !reforming_) {
        reforming_ = true;
        reform_started_ = now;
        spdlog::info("scheduler: nodes re-register after a restart (epoch {}); rebuilding the view",
                     epoch_);
      }
    }
    // A repeated register from the same peer (lost ack) gets the same answer.
    if (auto it = peers_.find(peer); it != peers_.end() && members_.count(it->second)) {
      Member& m = members_[it->second];
      m.last_seen = now;
      if (!m.info.alive && !m.left) {
        m.info.alive = true;
        Publish();
      }
      SendAck(m);
      if (formed_) SendView(m);
      return;
    }
    const int32_t want_id = body->node.id;
    // The same node on a new connection (its id and rank are known here and it
    // did not leave): update its address, keep its id and rank.
    if (auto it = members_.find(want_id);
        want_id > 0 && it != members_.end() && it->second.info.role == info.role &&
        it->second.info.rank == body->requested_rank && !it->second.left) {
      Member& m = it->second;
      peers_.erase(m.peer);
      m.peer = peer;
      peers_[peer] = want_id;
      m.last_seen = now;
      m.info.host = info.host;
      m.info.data_port = info.data_port;
      m.info.http_port = info.http_port;
      bool revived = !m.info.alive;
      m.info.alive = true;
      spdlog::info("scheduler: {} {} (rank {}) reconnected", RoleName(info.role), want_id,
                   m.info.rank);
      SendAck(m);
      if (formed_) {
        if (revived) {
          Publish();
        } else {
          SendView(m);
        }
      }
      return;
    }
    auto& ranks = info.role == Role::kServer ? server_ranks_ : worker_ranks_;
    int expected =
        info.role == Role::kServer ? options_.expected_servers : options_.expected_workers;
    int rank = -1;
    int req = body->requested_rank;
    // Reuse a requested rank if it is free (its holder died or never came).
    if (req >= 0 && (ranks.count(req) == 0 || !members_[ranks[req]].info.alive)) {
      rank = req;
    }
    if (rank < 0) {
      for (int r = 0; r < expected; ++r) {
        if (ranks.count(r) == 0) {
          rank = r;
          break;
        }
      }
    }
    if (rank < 0 && info.role == Role::kWorker) {
      // A new worker past the expected count, or a replacement: take a dead rank or append.
      for (auto& [r, id] : ranks) {
        if (!members_[id].info.alive && !members_[id].left) {
          rank = r;
          break;
        }
      }
      if (rank < 0) rank = static_cast<int>(ranks.size());
    }
    if (rank < 0) {
      // Servers: only a dead server's rank can be taken over.
      for (auto& [r, id] : ranks) {
        if (!members_[id].info.alive) {
          rank = r;
          break;
        }
      }
    }
    if (rank < 0) {
      rejected_.Increment();
      (void)socket_->Send(MakeErrorMessage(0, 0, ResourceExhausted("no free server rank")), peer);
      return;
    }
    if (auto old = ranks.find(rank); old != ranks.end()) members_.erase(old->second);
    Member m;
    m.info = info;
    // Re-registering after our restart: keep the node's id when it is free,
    // so servers keep recognising workers before the new view reaches them.
    if (want_id > 0 && members_.count(want_id) == 0) {
      m.info.id = want_id;
      next_id_ = std::max(next_id_, want_id + 1);
    } else {
      m.info.id = next_id_++;
    }
    m.info.rank = rank;
    m.info.alive = true;
    m.peer = peer;
    m.last_seen = now;
    ranks[rank] = m.info.id;
    peers_[peer] = m.info.id;
    members_[m.info.id] = m;
    spdlog::info("scheduler: registered {} id {} rank {} at {}:{}", RoleName(info.role), m.info.id,
                 rank, info.host, info.data_port);
    SendAck(members_[m.info.id]);
    if (formed_) {
      Publish();
    } else {
      CheckFormed(now);
    }
  }

  // The cluster forms once every server rank and every expected worker
  // registered. After a restart of this scheduler it re-forms as soon as every
  // server rank is back and at least one worker, once the other workers had a
  // heartbeat timeout to come back (some may have finished meanwhile).
  void CheckFormed(Clock::time_point now) {
    if (formed_) return;
    const bool servers = static_cast<int>(server_ranks_.size()) >= options_.expected_servers;
    const bool workers = static_cast<int>(worker_ranks_.size()) >= options_.expected_workers;
    const bool grace_over =
        reforming_ && !worker_ranks_.empty() &&
        now - reform_started_ > std::chrono::milliseconds(options_.heartbeat_timeout_ms);
    if (!servers || !(workers || grace_over)) return;
    formed_ = true;
    spdlog::info("scheduler: cluster {} with {} servers and {} workers",
                 reforming_ ? "re-formed" : "formed", server_ranks_.size(), worker_ranks_.size());
    Publish();
  }

  void SendAck(const Member& m) {
    RegisterAck ack{m.info.id, m.info.rank};
    (void)socket_->Send(MakeControlMessage(MsgType::kRegisterAck, 0, 0, EncodeRegisterAck(ack)),
                        m.peer);
  }

  ClusterView BuildView() {
    ClusterView v;
    v.epoch = ++epoch_;
    v.num_slots = options_.num_slots;
    // Index = rank; a rank nobody holds (yet) is a dead placeholder.
    auto fill = [&](const std::map<int, int32_t>& ranks, Role role, int at_least,
                    std::vector<NodeInfo>* out) {
      int n = std::max(at_least, ranks.empty() ? 0 : ranks.rbegin()->first + 1);
      out->resize(static_cast<size_t>(n));
      for (int r = 0; r < n; ++r) {
        NodeInfo& ni = (*out)[static_cast<size_t>(r)];
        ni.rank = r;
        ni.role = role;
        ni.alive = false;
      }
      for (auto& [r, id] : ranks) (*out)[static_cast<size_t>(r)] = members_[id].info;
    };
    fill(server_ranks_, Role::kServer, options_.expected_servers, &v.servers);
    fill(worker_ranks_, Role::kWorker, 0, &v.workers);
    v.slot_owner.resize(options_.num_slots);
    // Slots are dealt round-robin over server ranks; a replacement server takes
    // over its predecessor's rank and thus its slots.
    for (uint32_t s = 0; s < options_.num_slots; ++s) {
      v.slot_owner[s] = static_cast<int32_t>(s % v.servers.size());
    }
    return v;
  }

  void SendView(const Member& m) {
    (void)socket_->Send(MakeControlMessage(MsgType::kClusterView, 0, 0, EncodeClusterView(view_)),
                        m.peer);
  }

  void Publish() {
    if (!formed_) return;
    view_ = BuildView();
    views_.Increment();
    epoch_gauge_.Set(static_cast<double>(view_.epoch));
    for (auto& [id, m] : members_) {
      if (m.info.alive) SendView(m);
    }
    UpdateStatus();
  }

  void CheckHeartbeats(Clock::time_point now) {
    bool changed = false;
    for (auto& [id, m] : members_) {
      if (m.info.alive &&
          now - m.last_seen > std::chrono::milliseconds(options_.heartbeat_timeout_ms)) {
        m.info.alive = false;
        deaths_.Increment();
        changed = true;
        spdlog::warn("scheduler: {} {} (rank {}) missed heartbeats; marked dead",
                     RoleName(m.info.role), id, m.info.rank);
      }
    }
    if (changed) {
      Publish();
      CheckBarriers();
    }
  }

  void CheckBarriers() {
    for (auto it = barriers_.begin(); it != barriers_.end();) {
      bool all = true;
      for (auto& [id, m] : members_) {
        if (m.info.role == Role::kWorker && m.info.alive && !it->second.count(id)) all = false;
      }
      if (all && formed_) {
        BarrierBody b{it->first, 0};
        for (int32_t id : it->second) {
          auto m = members_.find(id);
          if (m != members_.end() && m->second.info.alive) {
            (void)socket_->Send(
                MakeControlMessage(MsgType::kBarrierRelease, 0, 0, EncodeBarrier(b)),
                m->second.peer);
          }
        }
        it = barriers_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void UpdateStatus() {
    nlohmann::json j;
    j["role"] = "scheduler";
    j["id"] = 0;
    j["epoch"] = view_.epoch;
    j["formed"] = formed_;
    auto nodes = nlohmann::json::array();
    for (auto& [id, m] : members_) {
      nodes.push_back({{"id", id},
                       {"role", RoleName(m.info.role)},
                       {"rank", m.info.rank},
                       {"host", m.info.host},
                       {"data_port", m.info.data_port},
                       {"http_port", m.info.http_port},
                       {"alive", m.info.alive},
                       {"left", m.left}});
    }
    j["peers"] = nodes;
    MutexLock lock(&status_mu_);
    status_json_ = j.dump();
  }

  SchedulerOptions options_;
  std::unique_ptr<Socket> socket_;
  std::map<int32_t, Member> members_;
  std::map<std::string, int32_t> peers_;
  std::map<int, int32_t> server_ranks_;
  std::map<int, int32_t> worker_ranks_;
  std::map<std::string, std::set<int32_t>> barriers_;
  int32_t next_id_ = 1;
  int64_t epoch_ = 0;
  bool formed_ = false;
  bool reforming_ = false;  // nodes re-registered after this scheduler restarted
  Clock::time_point reform_started_;
  ClusterView view_;
  Counter& views_;
  Counter& deaths_;
  Counter& rejected_;
  Counter& config_refusals_;
  Gauge& epoch_gauge_;
  // The /status page is served from the HTTP server's thread.
  mutable Mutex status_mu_;
  std::string status_json_ GUARDED_BY(status_mu_) =
      R"({"role":"scheduler","epoch":0,"formed":false,"peers":[]})";
};

}  // namespace

Result<std::unique_ptr<Scheduler>> Scheduler::Create(const SchedulerOptions& options) {
  if (options.expected_servers < 1 || options.expected_workers < 1) {
    return InvalidArgument("scheduler needs at least one server and one worker");
  }
  // A restarted scheduler binds its predecessor's port, which the kernel may
  // hold for a moment after a crash: retry with backoff for up to 10 s.
  auto deadline = Clock::now() + std::chrono::seconds(10);
  auto backoff = std::chrono::milliseconds(50);
  while (true) {
    auto sock = Socket::Bind(Socket::Kind::kRouter, TcpEndpoint(options.host, options.port),
                             ControlOnlyLimits());
    if (sock.ok()) {
      return std::unique_ptr<Scheduler>(new SchedulerImpl(options, std::move(sock).value()));
    }
    if (options.port == 0 || Clock::now() + backoff > deadline) return sock.status();
    spdlog::warn("scheduler: {}; retrying", sock.status().ToString());
    std::this_thread::sleep_for(backoff);
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::milliseconds(1000));
  }
}

}  // namespace phalanx::scheduler
