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
  bool ok = c->cv_.WaitFor(
      &c->mu_, std::chrono::milliseconds(options.register_timeout_ms),
      [&]() REQUIRES(c->mu_) { return c->registered_.load() || !c->fatal_.empty(); });
  if (!c->fatal_.empty()) return Unavailable(c->fatal_);
  if (!ok) {
    return DeadlineExceeded("no answer from the scheduler at " + options.scheduler_endpoint +
                            " within " + std::to_string(options.register_timeout_ms) + " ms");
  }
  return c;
}

void MembershipClient::Loop() {
  auto socket_or =
      Socket::Connect(Socket::Kind::kDealer, options_.scheduler_endpoint, ControlOnlyLimits());
  if (!socket_or.ok()) {
    MutexLock lock(&mu_);
    fatal_ = socket_or.status().ToString();
    cv_.SignalAll();
    return;
  }
  std::unique_ptr<Socket> sock = std::move(socket_or).value();
  const auto silence = std::chrono::milliseconds(options_.scheduler_silence_ms > 0
                                                     ? options_.scheduler_silence_ms
                                                     : std::max(2000, 10 * options_.heartbeat_ms));
  const auto give_up = std::chrono::milliseconds(options_.register_timeout_ms);
  auto send_register = [&] {
    RegisterBody body;
    body.node = options_.self;
    // Re-registering: ask for the same id and rank, and tell a restarted
    // scheduler the newest epoch seen so its views continue from there.
    body.node.id = node_id_.load();
    body.requested_rank = rank_.load() >= 0 ? rank_.load() : options_.requested_rank;
    Message m = MakeControlMessage(MsgType::kRegister, node_id_.load(), 0, EncodeRegister(body));
    m.header.round = epoch();
    (void)sock->Send(m);
  };
  send_register();
  auto last_register = Clock::now();
  auto last_heartbeat = Clock::now();
  auto last_heard = Clock::now();  // any message from the scheduler
  auto backoff = std::chrono::milliseconds(100);
  bool ever_registered = false;
  bool silent = false;
  const auto heartbeat = std::chrono::milliseconds(options_.heartbeat_ms);

  // Start over with registration (the scheduler forgot us or went silent).
  auto reregister = [&](Clock::time_point now, const std::string& why) {
    if (left_) return;
    if (registered_) {
      spdlog::warn("{}; re-registering as id {} rank {}", why, node_id_.load(), rank_.load());
      backoff = std::chrono::milliseconds(100);
    }
    registered_ = false;
    if (now - last_register >= backoff) {
      send_register();
      last_register = now;
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::milliseconds(2000));
    }
  };

  while (!stop_) {
    Received r = sock->Recv(std::min(50, options_.heartbeat_ms));
    if (r.status.code() == StatusCode::kCancelled) break;  // process is exiting
    auto now = Clock::now();
    if (r.status.ok()) {
      last_heard = now;
      if (silent) {
        spdlog::info("scheduler at {} is back", options_.scheduler_endpoint);
        silent = false;
      }
      const Message& m = r.msg;
      switch (m.header.type) {
        case MsgType::kRegisterAck: {
          auto ack = DecodeRegisterAck(m.body);
          if (ack.ok()) {
            if (ever_registered && !registered_) {
              reregistrations_++;
              spdlog::info("re-registered with the scheduler: id {} rank {}", ack->node_id,
                           ack->rank);
            }
            node_id_ = ack->node_id;
            rank_ = ack->rank;
            registered_ = true;
            ever_registered = true;
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
          if (s.code() == StatusCode::kFailedPrecondition && !left_ && ever_registered) {
            // The scheduler does not know us (it restarted).
            reregister(now, "scheduler forgot this node (" + s.message() + ")");
          } else {
            spdlog::warn("scheduler error: {}", s.ToString());
          }
          break;
        }
        default:
          break;  // kHeartbeat answers only refresh last_heard
      }
    }
    if (ever_registered && !left_ && now - last_heard > silence) {
      if (!silent) {
        silent = true;
        spdlog::warn(
            "no answer from the scheduler at {} for {} ms; serving on, re-registering",
            options_.scheduler_endpoint,
            std::chrono::duration_cast<std::chrono::milliseconds>(now - last_heard).count());
      }
      reregister(now, "scheduler silent");
      if (now - last_heard > give_up && !lost_) {
        MutexLock lock(&mu_);
        lost_reason_ = "lost the scheduler at " + options_.scheduler_endpoint + ": no answer for " +
                       std::to_string(options_.register_timeout_ms) +
                       " ms (cluster.register_timeout_ms)";
        lost_ = true;
        spdlog::error("{}", lost_reason_);
        cv_.SignalAll();
      }
    } else if (!registered_ && !left_) {
      // First registration, or re-registration after an error: retry with backoff.
      if (now - last_register >= backoff) {
        send_register();
        last_register = now;
        backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::milliseconds(2000));
      }
    }
    // Drain requests from other threads.
    std::deque<std::string> barriers;
    bool leave = false;
    {
      MutexLock lock(&mu_);
      barriers.swap(barrier_requests_);
      leave = leave_requested_ && !left_;
    }
    for (const auto& name : barriers) {
      BarrierBody b{name, 0};
      (void)sock->Send(MakeControlMessage(MsgType::kBarrier, node_id_.load(), 0, EncodeBarrier(b)));
    }
    if (leave) {
      (void)sock->Send(MakeControlMessage(MsgType::kLeave, node_id_.load(), 0, ""));
      left_ = true;
      MutexLock lock(&mu_);
      cv_.SignalAll();
    }
    if (registered_ && !left_ && now - last_heartbeat >= heartbeat) {
      (void)sock->Send(MakeControlMessage(MsgType::kHeartbeat, node_id_.load(), 0, ""));
      last_heartbeat = now;
    }
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
