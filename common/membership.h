#pragma once
// MembershipClient: a node's link to the scheduler. It registers the node,
// sends heartbeats, receives cluster views and the shutdown notice, and runs
// barriers. It owns one background thread, which alone touches its ZeroMQ
// socket; the public methods are thread-safe and talk to that thread through a
// mutex-guarded queue.
//
// Losing the scheduler: the scheduler answers every heartbeat. When it says it
// does not know this node (it restarted) or stays silent for
// scheduler_silence_ms, the client re-registers with its old node id, rank
// and newest epoch (in the header's round field, so the restarted scheduler
// continues the epochs), retrying with exponential backoff (100 ms .. 2 s)
// while the node keeps serving on its last view. After register_timeout_ms
// without hearing from the scheduler, health() turns Unavailable and the
// owner should stop with that error: a bound, never an endless wait.

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "common/control.h"
#include "common/mutex.h"
#include "common/status.h"

namespace phalanx {

struct Message;

struct MembershipOptions {
  std::string scheduler_endpoint;  // tcp://host:port
  NodeInfo self;                   // role, host, ports (id/rank filled on ack)
  int requested_rank = -1;
  // Sent with every registration; the scheduler refuses a node whose
  // fingerprint differs from the job's (Start then fails InvalidArgument).
  ConfigFingerprint config_fingerprint;
  int heartbeat_ms = 300;
  int register_timeout_ms = 30000;
  // Silence after which the scheduler is presumed gone (0 = 10 heartbeats, at least 2 s).
  int scheduler_silence_ms = 0;
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
  // Ok while the scheduler is reachable or within register_timeout_ms of
  // losing it; then Unavailable naming the endpoint and how long it was silent.
  Status health() const;
  // Times this node registered again after losing the scheduler.
  int64_t reregistrations() const { return reregistrations_.load(); }
  // Blocks until every live worker entered barrier `name`.
  Status Barrier(const std::string& name, int timeout_ms);
  // Tells the scheduler this node is done (workers at the end of training).
  void Leave();

 private:
  explicit MembershipClient(const MembershipOptions& options);
  // The membership thread: Loop and the steps it is made of. LoopState holds
  // that thread's socket, timers and backoff (membership.cc).
  struct LoopState;
  void Loop();
  void SendRegister(LoopState& st);
  // Start over with registration (the scheduler forgot us or went silent).
  void Reregister(LoopState& st, const std::string& why);
  void OnMessage(LoopState& st, const Message& m);
  // Silence from the scheduler: re-register, and after register_timeout_ms
  // mark the link lost; else retry a pending registration.
  void CheckScheduler(LoopState& st);
  // Barrier and leave requests from other threads, then the heartbeat.
  void SendPending(LoopState& st);

  MembershipOptions options_;
  std::atomic<int32_t> node_id_{-1};
  std::atomic<int32_t> rank_{-1};
  std::atomic<bool> stop_{false};
  std::atomic<bool> shutdown_{false};
  std::atomic<bool> registered_{false};
  std::atomic<bool> left_{false};
  std::atomic<bool> lost_{false};
  std::atomic<int64_t> reregistrations_{0};

  mutable Mutex mu_;
  CondVar cv_;
  ClusterView view_ GUARDED_BY(mu_);
  std::deque<std::string> barrier_requests_ GUARDED_BY(mu_);
  std::map<std::string, int64_t> barrier_released_ GUARDED_BY(mu_);  // name -> count
  bool leave_requested_ GUARDED_BY(mu_) = false;
  std::function<void(const ClusterView&)> view_cb_ GUARDED_BY(mu_);
  Status fatal_ GUARDED_BY(mu_);  // why Start cannot succeed
  std::string lost_reason_ GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace phalanx
