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
  std::unique_lock<std::mutex> lock(c->mu_);
  bool ok = c->cv_.wait_for(lock, std::chrono::milliseconds(options.register_timeout_ms),
                            [&] { return c->registered_.load() || !c->fatal_.empty(); });
  if (!c->fatal_.empty()) return Unavailable(c->fatal_);
  if (!ok) {
    return DeadlineExceeded("no answer from the scheduler at " + options.scheduler_endpoint +
                            " within " + std::to_string(options.register_timeout_ms) + " ms");
  }
  return c;
}

void MembershipClient::Loop() {
  auto socket_or = Socket::Connect(Socket::Kind::kDealer, options_.scheduler_endpoint);
  if (!socket_or.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    fatal_ = socket_or.status().ToString();
    cv_.notify_all();
    return;
  }
  std::unique_ptr<Socket> sock = std::move(socket_or).value();
  auto send_register = [&] {
    RegisterBody body;
    body.node = options_.self;
    body.requested_rank = rank_.load() >= 0 ? rank_.load() : options_.requested_rank;
    (void)sock->Send(
        MakeControlMessage(MsgType::kRegister, node_id_.load(), 0, EncodeRegister(body)));
  };
  send_register();
  auto last_register = Clock::now();
  auto last_heartbeat = Clock::now();
  const auto heartbeat = std::chrono::milliseconds(options_.heartbeat_ms);

  while (!stop_) {
    Received r = sock->Recv(std::min(50, options_.heartbeat_ms));
    if (r.status.code() == StatusCode::kCancelled) break;  // process is exiting
    auto now = Clock::now();
    if (r.status.ok()) {
      const Message& m = r.msg;
      switch (m.header.type) {
        case MsgType::kRegisterAck: {
          auto ack = DecodeRegisterAck(m.body);
          if (ack.ok()) {
            node_id_ = ack->node_id;
            rank_ = ack->rank;
            registered_ = true;
            std::lock_guard<std::mutex> lock(mu_);
            cv_.notify_all();
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
            std::lock_guard<std::mutex> lock(mu_);
            if (v->epoch < view_.epoch) break;
            view_ = *v;
            cb = view_cb_;
            cv_.notify_all();
          }
          if (cb) cb(*v);
          break;
        }
        case MsgType::kBarrierRelease: {
          auto b = DecodeBarrier(m.body);
          if (b.ok()) {
            std::lock_guard<std::mutex> lock(mu_);
            barrier_released_[b->name]++;
            cv_.notify_all();
          }
          break;
        }
        case MsgType::kShutdown: {
          shutdown_ = true;
          std::lock_guard<std::mutex> lock(mu_);
          cv_.notify_all();
          break;
        }
        case MsgType::kError: {
          Status s = StatusFromError(m);
          if (s.code() == StatusCode::kFailedPrecondition && !left_) {
            // The scheduler does not know us (it restarted): register again.
            spdlog::warn("scheduler forgot this node ({}); re-registering", s.message());
            registered_ = false;
            send_register();
            last_register = now;
          } else {
            spdlog::warn("scheduler error: {}", s.ToString());
          }
          break;
        }
        default:
          break;
      }
    }
    if (!registered_ && now - last_register > std::chrono::milliseconds(1000)) {
      send_register();
      last_register = now;
    }
    // Drain requests from other threads.
    std::deque<std::string> barriers;
    bool leave = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
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
      std::lock_guard<std::mutex> lock(mu_);
      cv_.notify_all();
    }
    if (registered_ && !left_ && now - last_heartbeat >= heartbeat) {
      (void)sock->Send(MakeControlMessage(MsgType::kHeartbeat, node_id_.load(), 0, ""));
      last_heartbeat = now;
    }
  }
}

Result<ClusterView> MembershipClient::WaitForView(int64_t min_epoch, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  bool ok = cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                         [&] { return view_.epoch >= min_epoch || shutdown_.load(); });
  if (!ok) return DeadlineExceeded("no cluster view within " + std::to_string(timeout_ms) + " ms");
  if (view_.epoch < min_epoch) return Cancelled("scheduler shut the cluster down");
  return view_;
}

ClusterView MembershipClient::view() const {
  std::lock_guard<std::mutex> lock(mu_);
  return view_;
}

int64_t MembershipClient::epoch() const {
  std::lock_guard<std::mutex> lock(mu_);
  return view_.epoch;
}

void MembershipClient::SetViewCallback(std::function<void(const ClusterView&)> cb) {
  std::lock_guard<std::mutex> lock(mu_);
  view_cb_ = std::move(cb);
}

Status MembershipClient::Barrier(const std::string& name, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  int64_t before = barrier_released_[name];
  barrier_requests_.push_back(name);
  bool ok = cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                         [&] { return barrier_released_[name] > before || shutdown_.load(); });
  if (!ok) return DeadlineExceeded("barrier '" + name + "' not released in time");
  if (barrier_released_[name] <= before) return Cancelled("cluster shut down during barrier");
  return Status::Ok();
}

void MembershipClient::Leave() {
  std::unique_lock<std::mutex> lock(mu_);
  leave_requested_ = true;
  // Give the thread a moment to send it before the process exits.
  cv_.wait_for(lock, std::chrono::milliseconds(1000), [&] { return left_.load(); });
}

}  // namespace phalanx
