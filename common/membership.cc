#include "common/membership.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <map>

#include "common/transport.h"

namespace phalanx {

using Clock = std::chrono::steady_clock;

MembershipClient::MembershipClient(const MembershipOptions& options) : options_(options) {}

MembershipClient::~MembershipClient() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

Result<std::unique_ptr<MembershipClient>> MembershipClient::Start(
    const MembershipOptions& options) {
  std::unique_ptr<MembershipClient> c(new MembershipClient(options));
  c->thread_ = std::thread([p = c.get()] { p->Loop(); });
  MutexLock lock(&c->mu_);
  bool ok =
      c->cv_.WaitFor(&c->mu_, std::chrono::milliseconds(options.register_timeout_ms),
                     [&]() REQUIRES(c->mu_) { return c->registered_.load() || !c->fatal_.ok(); });
  if (!c->fatal_.ok()) return c->fatal_;
  if (!ok) {
    return DeadlineExceeded("no answer from the scheduler at " + options.scheduler_endpoint +
                            " within " + std::to_string(options.register_timeout_ms) + " ms");
  }
  return c;
}

struct MembershipClient::LoopState {
  std::unique_ptr<Socket> sock;
  std::chrono::milliseconds silence{0};  // re-register after this long without a word
  std::chrono::milliseconds give_up{0};  // then lose the scheduler after this long
  std::chrono::milliseconds heartbeat{0};
  Clock::time_point now = Clock::now();
  Clock::time_point last_register = now;
  Clock::time_point last_heartbeat = now;
  Clock::time_point last_heard = now;  // any message from the scheduler
  std::chrono::milliseconds backoff{100};
  bool ever_registered = false;
  bool silent = false;
  bool refused = false;  // the scheduler said no: stop registering
};

void MembershipClient::SendRegister(LoopState& st) {
  RegisterBody body;
  body.node = options_.self;
  // Re-registering: ask for the same id and rank, and tell a restarted
  // scheduler the newest epoch seen so its views continue from there.
  body.node.id = node_id_.load();
  body.requested_rank = rank_.load() >= 0 ? rank_.load() : options_.requested_rank;
  body.fingerprint = options_.config_fingerprint;
  Message m = MakeControlMessage(MsgType::kRegister, node_id_.load(), 0, EncodeRegister(body));
  m.header.round = epoch();
  (void)st.sock->Send(m);
}

void MembershipClient::Reregister(LoopState& st, const std::string& why) {
  if (left_ || st.refused) return;
  if (registered_) {
    spdlog::warn("{}; re-registering as id {} rank {}", why, node_id_.load(), rank_.load());
    st.backoff = std::chrono::milliseconds(100);
  }
  registered_ = false;
  if (st.now - st.last_register >= st.backoff) {
    SendRegister(st);
    st.last_register = st.now;
    st.backoff =
        std::min<std::chrono::milliseconds>(st.backoff * 2, std::chrono::milliseconds(2000));
  }
}

void MembershipClient::OnMessage(LoopState& st, const Message& m) {
  switch (m.header.type) {
    case MsgType::kRegisterAck: {
      auto ack = DecodeRegisterAck(m.body);
      if (ack.ok()) {
        if (st.ever_registered && !registered_) {
          reregistrations_++;
          spdlog::info("re-registered with the scheduler: id {} rank {}", ack->node_id, ack->rank);
        }
        node_id_ = ack->node_id;
        rank_ = ack->rank;
        registered_ = true;
        st.ever_registered = true;
        MutexLock lock(&mu_);
        cv_.SignalAll();
      }
      break;
    }
    case MsgType::kClusterView: {
      auto v = DecodeClusterView(m.body);
      if (!v.ok()) {
        spdlog::warn("bad cluster view from scheduler: {}", v.status().ToString());
        break;
      }
      std::function<void(const ClusterView&)> cb;
      {
        MutexLock lock(&mu_);
        if (v->epoch < view_.epoch) break;
        view_ = *v;
        cb = view_cb_;
        cv_.SignalAll();
      }
      if (cb) cb(*v);
      break;
    }
    case MsgType::kBarrierRelease: {
      auto b = DecodeBarrier(m.body);
      if (b.ok()) {
        MutexLock lock(&mu_);
        barrier_released_[b->name]++;
        cv_.SignalAll();
      }
      break;
    }
    case MsgType::kShutdown: {
      shutdown_ = true;
      MutexLock lock(&mu_);
      cv_.SignalAll();
      break;
    }
    case MsgType::kError: {
      Status s = StatusFromError(m);
      if (s.code() == StatusCode::kFailedPrecondition && !left_ && st.ever_registered) {
        // The scheduler does not know us (it restarted).
        Reregister(st, "scheduler forgot this node (" + s.message() + ")");
      } else if (s.code() == StatusCode::kInvalidArgument && !registered_) {
        // The scheduler refused this registration (another job's config, a
        // malformed body): asking again would get the same answer.
        st.refused = true;
        spdlog::error("the scheduler at {} refused this node: {}", options_.scheduler_endpoint,
                      s.message());
        MutexLock lock(&mu_);
        if (st.ever_registered) {
          lost_reason_ =
              "refused by the scheduler at " + options_.scheduler_endpoint + ": " + s.message();
          lost_ = true;
        } else {
          fatal_ = s.WithContext("refused by the scheduler at " + options_.scheduler_endpoint);
        }
        cv_.SignalAll();
      } else {
        spdlog::warn("scheduler error: {}", s.ToString());
      }
      break;
    }
    default:
      break;  // kHeartbeat answers only refresh last_heard
  }
}

void MembershipClient::CheckScheduler(LoopState& st) {
  if (st.ever_registered && !left_ && st.now - st.last_heard > st.silence) {
    if (!st.silent) {
      st.silent = true;
      spdlog::warn(
          "no answer from the scheduler at {} for {} ms; serving on, re-registering",
          options_.scheduler_endpoint,
          std::chrono::duration_cast<std::chrono::milliseconds>(st.now - st.last_heard).count());
    }
    Reregister(st, "scheduler silent");
    if (st.now - st.last_heard > st.give_up && !lost_) {
      MutexLock lock(&mu_);
      lost_reason_ = "lost the scheduler at " + options_.scheduler_endpoint + ": no answer for " +
                     std::to_string(options_.register_timeout_ms) +
                     " ms (cluster.register_timeout_ms)";
      lost_ = true;
      spdlog::error("{}", lost_reason_);
      cv_.SignalAll();
    }
  } else if (!registered_ && !left_ && !st.refused) {
    // First registration, or re-registration after an error: retry with backoff.
    if (st.now - st.last_register >= st.backoff) {
      SendRegister(st);
      st.last_register = st.now;
      st.backoff =
          std::min<std::chrono::milliseconds>(st.backoff * 2, std::chrono::milliseconds(2000));
    }
  }
}

void MembershipClient::SendPending(LoopState& st) {
  std::deque<std::string> barriers;
  bool leave = false;
  {
    MutexLock lock(&mu_);
    barriers.swap(barrier_requests_);
    leave = leave_requested_ && !left_;
  }
  for (const auto& name : barriers) {
    BarrierBody b{name, 0};
    (void)st.sock->Send(
        MakeControlMessage(MsgType::kBarrier, node_id_.load(), 0, EncodeBarrier(b)));
  }
  if (leave) {
    (void)st.sock->Send(MakeControlMessage(MsgType::kLeave, node_id_.load(), 0, ""));
    left_ = true;
    MutexLock lock(&mu_);
    cv_.SignalAll();
  }
  if (registered_ && !left_ && st.now - st.last_heartbeat >= st.heartbeat) {
    (void)st.sock->Send(MakeControlMessage(MsgType::kHeartbeat, node_id_.load(), 0, ""));
    st.last_heartbeat = st.now;
  }
}

void MembershipClient::Loop() {
  auto socket_or =
      Socket::Connect(Socket::Kind::kDealer, options_.scheduler_endpoint, ControlOnlyLimits());
  if (!socket_or.ok()) {
    MutexLock lock(&mu_);
    fatal_ = Unavailable(socket_or.status().ToString());
    cv_.SignalAll();
    return;
  }
  LoopState st;
  st.sock = std::move(socket_or).value();
  st.silence = std::chrono::milliseconds(options_.scheduler_silence_ms > 0
                                             ? options_.scheduler_silence_ms
                                             : std::max(2000, 10 * options_.heartbeat_ms));
  st.give_up = std::chrono::milliseconds(options_.register_timeout_ms);
  st.heartbeat = std::chrono::milliseconds(options_.heartbeat_ms);
  SendRegister(st);
  st.last_register = st.last_heartbeat = st.last_heard = Clock::now();

  while (!stop_) {
    Received r = st.sock->Recv(std::min(50, options_.heartbeat_ms));
    if (r.status.code() == StatusCode::kCancelled) break;  // process is exiting
    st.now = Clock::now();
    if (r.status.ok()) {
      st.last_heard = st.now;
      if (st.silent) {
        spdlog::info("scheduler at {} is back", options_.scheduler_endpoint);
        st.silent = false;
      }
      OnMessage(st, r.msg);
    }
    CheckScheduler(st);
    SendPending(st);
  }
}

Status MembershipClient::health() const {
  if (!lost_.load()) return Status::Ok();
  MutexLock lock(&mu_);
  return Unavailable(lost_reason_);
}

Result<ClusterView> MembershipClient::WaitForView(int64_t min_epoch, int timeout_ms) {
  MutexLock lock(&mu_);
  bool ok = cv_.WaitFor(&mu_, std::chrono::milliseconds(timeout_ms), [&]() REQUIRES(mu_) {
    return view_.epoch >= min_epoch || shutdown_.load();
  });
  if (!ok) return DeadlineExceeded("no cluster view within " + std::to_string(timeout_ms) + " ms");
  if (view_.epoch < min_epoch) return Cancelled("scheduler shut the cluster down");
  return view_;
}

ClusterView MembershipClient::view() const {
  MutexLock lock(&mu_);
  return view_;
}

int64_t MembershipClient::epoch() const {
  MutexLock lock(&mu_);
  return view_.epoch;
}

void MembershipClient::SetViewCallback(std::function<void(const ClusterView&)> cb) {
  MutexLock lock(&mu_);
  view_cb_ = std::move(cb);
}

Status MembershipClient::Barrier(const std::string& name, int timeout_ms) {
  MutexLock lock(&mu_);
  int64_t before = barrier_released_[name];
  barrier_requests_.push_back(name);
  bool ok = cv_.WaitFor(&mu_, std::chrono::milliseconds(timeout_ms), [&]() REQUIRES(mu_) {
    return barrier_released_[name] > before || shutdown_.load();
  });
  if (!ok) return DeadlineExceeded("barrier '" + name + "' not released in time");
  if (barrier_released_[name] <= before) return Cancelled("cluster shut down during barrier");
  return Status::Ok();
}

void MembershipClient::Leave() {
  MutexLock lock(&mu_);
  leave_requested_ = true;
  // Give the thread a moment to send it before the process exits.
  cv_.WaitFor(&mu_, std::chrono::milliseconds(1000), [&] { return left_.load(); });
}

}  // namespace phalanx
