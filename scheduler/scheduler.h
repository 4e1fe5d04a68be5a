#pragma once
// Scheduler: the membership service. It registers servers and workers, hands
// out node ids and ranks, publishes a versioned ClusterView (servers, workers,
// slot -> server table) to every node, detects failures by missed heartbeats,
// runs barriers, and tells servers to shut down when every worker is gone.
//
// Threading: Run() owns the ROUTER socket and all membership state on the
// calling thread; status() may be called from any thread (HTTP handler).

#include <atomic>
#include <memory>
#include <string>

#include "common/control.h"
#include "common/status.h"

namespace phalanx::scheduler {

struct SchedulerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0 = any free port
  int expected_servers = 1;
  int expected_workers = 1;
  uint32_t num_slots = 1024;
  int heartbeat_timeout_ms = 3000;
  // Exit when no node at all has shown up within this time (0 = wait forever).
  int formation_timeout_ms = 0;
  // The job's settings (launch/config/fingerprint.h); a node registering with
  // a different non-empty one is refused. Empty = accept any.
  ConfigFingerprint fingerprint;
};

class Scheduler {
 public:
  static Result<std::unique_ptr<Scheduler>> Create(const SchedulerOptions& options);
  virtual ~Scheduler() = default;
  virtual int port() const = 0;
  virtual std::string endpoint() const = 0;
  // Serves until every worker has left or died (then tells servers to shut
  // down) or *stop becomes true. Returns Aborted if every worker died.
  virtual Status Run(const std::atomic<bool>* stop) = 0;
  // JSON text for /status.
  virtual std::string StatusJson() const = 0;
};

}  // namespace phalanx::scheduler
