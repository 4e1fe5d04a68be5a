#pragma once
// MembershipClient: a node's link to the scheduler. It registers the node,
// sends heartbeats, receives cluster views and the shutdown notice, and runs
// barriers. It owns one background thread, which alone touches its ZeroMQ
// socket; the public methods are thread-safe and talk to that thread through a
// mutex-guarded queue. If the scheduler restarts and forgets the node, the
// client re-registers with its old rank.

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/control.h"
#include "common/status.h"

namespace phalanx {

struct MembershipOptions {
  std::string scheduler_endpoint;  // tcp://host:port
  NodeInfo self;                   // role, host, ports (id/rank filled on ack)
  int requested_rank = -1;
  int heartbeat_ms = 300;
  int register_timeout_ms = 30000;
};

class MembershipClient {
 public:
  // Starts the thread and registers. Returns once registered, or
  // DeadlineExceeded naming the scheduler endpoint after register_timeout_ms.
  static Result<std::unique_ptr<MembershipClient>> Start(const MembershipOptions& options);
  ~MembershipClient();
  MembershipClient(const MembershipClient&) = delete;
  MembershipClient& operator=(const MembershipClient&) = delete;

  int32_t node_id() const { return node_id_.load(); }
  int32_t rank() const { return rank_.load(); }

  // Blocks until a view with epoch >= min_epoch arrives (DeadlineExceeded after timeout_ms).
  Result<ClusterView> WaitForView(int64_t min_epoch, int timeout_ms);
  // The newest view (epoch 0 before the first).
  ClusterView view() const;
  int64_t epoch() const;
  // Called on the client thread whenever a new view arrives.
  void SetViewCallback(std::function<void(const ClusterView&)> cb);

  bool shutdown_requested() const { return shutdown_.load(); }
  // Blocks until every live worker entered barrier `name`.
  Status Barrier(const std::string& name, int timeout_ms);
  // Tells the scheduler this node is done (workers at the end of training).
  void Leave();

 private:
  explicit MembershipClient(const MembershipOptions& options);
  void Loop();
  Status SendRegister();

  MembershipOptions options_;
  std::atomic<int32_t> node_id_{-1};
  std::atomic<int32_t> rank_{-1};
  std::atomic<bool> stop_{false};
  std::atomic<bool> shutdown_{false};
  std::atomic<bool> registered_{false};
  std::atomic<bool> left_{false};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  ClusterView view_;                                 // guarded by mu_
  std::deque<std::string> barrier_requests_;         // guarded by mu_
  std::map<std::string, int64_t> barrier_released_;  // name -> count, guarded by mu_
  bool leave_requested_ = false;                     // guarded by mu_
  std::function<void(const ClusterView&)> view_cb_;  // guarded by mu_
  std::string fatal_;                                // guarded by mu_
  std::thread thread_;
};

}  // namespace phalanx
