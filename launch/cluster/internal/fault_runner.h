#pragma once
// FaultRunner: applies a validated fault schedule (launch/faults/) during a
// local run: owns the network sandbox and the fault proxy, remembers what is
// active, kills and restarts nodes through the Supervisor, and logs every
// event. Launcher thread only.

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "launch/cluster/local_launcher.h"
#include "launch/config/config.h"
#include "launch/faults/fault_proxy.h"
#include "launch/faults/fault_schedule.h"
#include "launch/faults/netns.h"

namespace phalanx::launch {

class Supervisor;

namespace internal {

// Host and port of "tcp://host:port".
std::pair<std::string, int> SplitEndpoint(const std::string& endpoint);

class FaultRunner {
 public:
  using Clock = std::chrono::steady_clock;

  FaultRunner(const JobConfig& config, FaultSchedule schedule,
              std::chrono::steady_clock::time_point start);

  // Decides what can run here and sets up namespaces and the proxy.
  Status Prepare(bool require_network);

  bool netns() const { return sandbox_ != nullptr; }
  std::string host_of(const std::string& node) const {
    return sandbox_ ? sandbox_->address(node) : config_.cluster.host;
  }
  std::string proxy_host() const {
    return sandbox_ ? sandbox_->bridge_address() : config_.cluster.host;
  }
  // Per-process overrides and the namespace wrapper.
  std::vector<std::string> Command(const NodeRef& node, std::vector<std::string> args) const;
  // The server's ZeroMQ port: of the ports listening in its namespace (data
  // and HTTP), the one that greets a new connection first (ZMTP sends its
  // signature, 0xFF..., at once; HTTP waits for a request). Servers publish
  // their port only after the cluster formed, which is too late here. 0 when
  // not (yet) found.
  int FindDataPort(const NodeRef& node) const;
  bool needs_server_ports() const;

  // Routes node -> scheduler links through the proxy: returns the endpoint
  // node must be given as --scheduler.
  Result<std::string> SchedulerEndpointFor(const NodeRef& node, const std::string& endpoint);

  // Worker -> server links: a route per link and a DNAT rule in the worker's
  // namespace, set up before the worker starts (so its first connection
  // already goes through the proxy).
  Status RouteServerLinks(const std::map<int, std::pair<std::string, int>>& servers);

  // Replacements scheduled but not started yet: the job is not over.
  bool restarts_pending() const { return !restarts_.empty(); }

  // Starts and ends what is due; kills and restarts go through `nodes`.
  void Tick(int round, Supervisor& nodes);

  // At the end of the run: how many bytes the proxy carried on each proxy
  // fault's links (evidence that the links really went through it).
  void Finish();

  const std::vector<AppliedFault>& log() const { return log_; }

  // A node the restart policy replaced (not a scheduled fault): logged as
  // kind "crash", event "restart", index -1, beside the schedule's events.
  void RecordPolicyRestart(const std::string& node, const std::string& detail);

 private:
  double Elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

  void Record(const Fault& f, const std::string& event, const std::string& detail);

  void Fail(const Fault& f, const Status& s);

  std::string Tag(const Fault& f) const { return "f" + std::to_string(f.index); }

  bool Covers(const Fault& f, const Link& l) const;

  // Recomputes every route's toxics from the active faults.
  void UpdateProxy();

  void Start(const Fault& f, Supervisor& nodes);

  void End(const Fault& f);

  const JobConfig& config_;
  FaultSchedule schedule_;
  Clock::time_point start_;
  std::unique_ptr<NetworkSandbox> sandbox_;
  std::unique_ptr<FaultProxy> proxy_;
  std::set<Link> proxied_;
  std::map<Link, int> routes_;
  std::set<int> refused_, started_, ended_, active_;
  std::vector<std::pair<double, std::pair<const Fault*, std::string>>> restarts_;
  std::vector<AppliedFault> log_;
  int round_ = 0;
};

}  // namespace internal
}  // namespace phalanx::launch
