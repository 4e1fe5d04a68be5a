#pragma once
// FaultSchedule: the validated form of a job's `[[faults]]` entries, which the
// local launcher applies while the job runs. Plain value types, built once on
// the launcher's thread and read-only afterwards.
//
// Kinds (node names are "scheduler", "server-N", "worker-N"):
//   byzantine  worker N pushes `attack` from `at_round` on (to the end of the
//              run): per-process --set overrides of [byzantine] for N only.
//   straggler  worker N sleeps `step_delay_ms` per step for the whole run
//              (train.step_delay_ms for N only).
//   kill       SIGKILL `node` at the given time; with `restart_after_s` a
//              replacement with the same rank starts that much later (servers
//              with --restore, the scheduler on its old port).
//   delay      `delay_ms` (+ uniform [0, jitter_ms]) on node's links, through
//              the launcher's TCP fault proxy.
//   reset      connections of node's links are reset (RST) when the fault
//              starts, and new ones are reset until it ends (fault proxy).
//   loss       `loss_pct` % of node's packets dropped (nftables, netns).
//   bandwidth  node's link limited to `rate_kbit` (tbf in netns, or the proxy
//              with via = "proxy").
//   partition  node cut off from `peer` (nftables drop in both namespaces),
//              or from everyone when peer is empty (its veth taken down).
// Network faults take `peer` (the other end; empty = every link of node) and
// `direction` (in | out | both, seen from node). Times: `at_round` /
// `until_round` or `at_s` / `until_s` (seconds since launch), one unit per
// entry; a network fault without an end lasts to the end of the run.

#include <optional>
#include <string>
#include <vector>

#include "launch/config/config.h"
#include "common/control.h"
#include "common/status.h"

namespace phalanx::launch {

enum class FaultKind {
  kByzantine,
  kStraggler,
  kKill,
  kDelay,
  kReset,
  kLoss,
  kBandwidth,
  kPartition
};
const char* FaultKindName(FaultKind kind);

struct NodeRef {
  Role role = Role::kWorker;
  int rank = 0;  // 0 for the scheduler

  std::string name() const;  // "scheduler", "server-1", "worker-3"
  bool operator==(const NodeRef& o) const { return role == o.role && rank == o.rank; }
  bool operator<(const NodeRef& o) const { return role != o.role ? role < o.role : rank < o.rank; }
};

// Parses "scheduler" / "server-N" / "worker-N" (InvalidArgument otherwise).
Result<NodeRef> ParseNodeRef(const std::string& text);

// Every node of the cluster, scheduler first, then servers and workers.
std::vector<NodeRef> ClusterNodes(const JobConfig& config);

// A TCP connection class between two nodes: `client` connects to `listener`
// (worker -> server data port, server/worker -> scheduler).
struct Link {
  NodeRef client;
  NodeRef listener;
  bool operator<(const Link& o) const {
    return client == o.client ? listener < o.listener : client < o.client;
  }
  bool operator==(const Link& o) const { return client == o.client && listener == o.listener; }
};

struct Fault {
  int index = 0;  // position in [[faults]]
  FaultKind kind = FaultKind::kKill;
  NodeRef node;
  std::optional<NodeRef> peer;  // network faults; nullopt = every link of node
  bool in_rounds = false;       // times below are rounds (else seconds)
  double at = 0;
  std::optional<double> until;  // network faults; nullopt = to the end of the run
  std::string attack;
  std::optional<double> restart_after_s;
  int step_delay_ms = 0;
  double delay_ms = 0;
  double jitter_ms = 0;
  double loss_pct = 0;
  double rate_kbit = 0;
  bool egress = true;   // node -> others
  bool ingress = true;  // others -> node
  bool via_proxy = false;

  bool network() const;          // delay, reset, loss, bandwidth, partition
  bool uses_proxy() const;       // delay, reset, bandwidth via proxy
  bool behaviour() const;        // byzantine, straggler: set up at launch
  std::string Describe() const;  // "loss 10% on worker-3 (both)"
};

struct FaultSchedule {
  std::vector<Fault> faults;

  // --set overrides for `node`'s process (byzantine, straggler entries).
  std::vector<std::string> OverridesFor(const JobConfig& config, const NodeRef& node) const;
  // The TCP links a proxy fault acts on (see Link).
  std::vector<Link> ProxiedLinks(const JobConfig& config, const Fault& fault) const;
  // Whether a fault needs root and network namespaces: loss, bandwidth
  // (tbf), partition, and proxy faults on worker -> server links, which are
  // redirected to the proxy by DNAT inside the worker's namespace. Proxy
  // faults on scheduler links only need the proxy.
  bool NeedsNetns(const JobConfig& config, const Fault& fault) const;
};

// Validates config.faults against the cluster: unknown kinds, nodes that do
// not exist, times in the past, an end before its start, missing or stray
// parameters, overlapping network faults of one kind on the same link.
// InvalidArgument names the entry ("faults[2]: ...").
Result<FaultSchedule> BuildFaultSchedule(const JobConfig& config);

}  // namespace phalanx::launch
