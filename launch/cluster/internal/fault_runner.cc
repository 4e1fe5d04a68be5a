#include "launch/cluster/internal/fault_runner.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/transport.h"
#include "launch/cluster/supervisor.h"

namespace phalanx::launch::internal {
std::pair<std::string, int> SplitEndpoint(const std::string& ep) {
  std::string rest = ep.rfind("tcp://", 0) == 0 ? ep.substr(6) : ep;
  auto colon = rest.rfind(':');
  if (colon == std::string::npos) return {rest, 0};
  return {rest.substr(0, colon), std::atoi(rest.c_str() + colon + 1)};
}

FaultRunner::FaultRunner(const JobConfig& config, FaultSchedule schedule,
                         std::chrono::steady_clock::time_point start)
    : config_(config), schedule_(std::move(schedule)), start_(start) {}

Status FaultRunner::Prepare(bool require_network) {
  std::vector<const Fault*> netns_faults;
  for (const auto& f : schedule_.faults) {
    if (schedule_.NeedsNetns(config_, f)) netns_faults.push_back(&f);
  }
  if (!netns_faults.empty()) {
    Status avail = NetnsAvailable();
    if (!avail.ok()) {
      std::string list;
      for (const Fault* f : netns_faults) {
        list += fmt::format("\n  faults[{}]: {}", f->index, f->Describe());
      }
      std::string msg = "network faults need root, iproute2/nftables and network namespaces (" +
                        avail.message() + "); cannot apply:" + list;
      if (require_network) return FailedPrecondition(msg + "\nrefusing the whole run");
      spdlog::error(
          "{}\nthese entries are REFUSED; the run goes on without them "
          "(--require-network-faults refuses the whole run instead)",
          msg);
      for (const Fault* f : netns_faults) {
        refused_.insert(f->index);
        Record(*f, "refused", avail.message());
      }
    } else {
      CleanupStaleNetns();
      std::vector<std::string> names;
      for (const auto& n : ClusterNodes(config_)) names.push_back(n.name());
      PHX_ASSIGN_OR_RETURN(sandbox_, NetworkSandbox::Create(names));
    }
  }
  for (const auto& f : schedule_.faults) {
    if (refused_.count(f.index) || !f.uses_proxy()) continue;
    for (const auto& l : schedule_.ProxiedLinks(config_, f)) proxied_.insert(l);
  }
  if (!proxied_.empty()) {
    PHX_ASSIGN_OR_RETURN(proxy_, FaultProxy::Start());
  }
  for (const auto& f : schedule_.faults) {
    if (f.kind == FaultKind::kStraggler) Record(f, "start", f.Describe());
  }
  return Status::Ok();
}

std::vector<std::string> FaultRunner::Command(const NodeRef& node,
                                              std::vector<std::string> args) const {
  if (sandbox_) {
    args.push_back("--set");
    args.push_back("cluster.host=" + sandbox_->address(node.name()));
  }
  for (const auto& o : schedule_.OverridesFor(config_, node)) {
    args.push_back("--set");
    args.push_back(o);
  }
  return sandbox_ ? sandbox_->Wrap(node.name(), args) : args;
}

int FaultRunner::FindDataPort(const NodeRef& node) const {
  auto ports = sandbox_->ListeningPorts(node.name());
  if (!ports.ok()) return 0;
  for (int port : *ports) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return 0;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    timeval tv{0, 300000};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    unsigned char first = 0;
    bool zmq = inet_pton(AF_INET, host_of(node.name()).c_str(), &a.sin_addr) == 1 &&
               connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
               read(s, &first, 1) == 1 && first == 0xFF;
    close(s);
    if (zmq) return port;
  }
  return 0;
}

bool FaultRunner::needs_server_ports() const {
  for (const auto& l : proxied_) {
    if (l.listener.role == Role::kServer) return true;
  }
  return false;
}

Result<std::string> FaultRunner::SchedulerEndpointFor(const NodeRef& node,
                                                      const std::string& endpoint) {
  Link l{node, {Role::kScheduler, 0}};
  if (!proxied_.count(l)) return endpoint;
  auto [host, port] = SplitEndpoint(endpoint);
  if (!routes_.count(l)) {
    PHX_ASSIGN_OR_RETURN(int id, proxy_->AddRoute(proxy_host(), 0, host, port));
    routes_[l] = id;
  }
  return TcpEndpoint(proxy_host(), proxy_->port(routes_[l]));
}

Status FaultRunner::RouteServerLinks(const std::map<int, std::pair<std::string, int>>& servers) {
  for (const auto& l : proxied_) {
    if (l.listener.role != Role::kServer) continue;
    auto it = servers.find(l.listener.rank);
    if (it == servers.end()) return Internal("no data port for " + l.listener.name());
    PHX_ASSIGN_OR_RETURN(int id,
                         proxy_->AddRoute(proxy_host(), 0, it->second.first, it->second.second));
    routes_[l] = id;
    PHX_RETURN_IF_ERROR(sandbox_->AddRedirect("r" + std::to_string(id), l.client.name(),
                                              it->second.first, it->second.second, proxy_host(),
                                              proxy_->port(id)));
  }
  return Status::Ok();
}

void FaultRunner::Tick(int round, Supervisor& nodes) {
  double now = Elapsed();
  round_ = round;
  for (const auto& f : schedule_.faults) {
    if (refused_.count(f.index) || f.kind == FaultKind::kStraggler) continue;
    double t = f.in_rounds ? round : now;
    if (!started_.count(f.index) && t >= f.at) {
      started_.insert(f.index);
      Start(f, nodes);
    }
    if (started_.count(f.index) && !ended_.count(f.index) && f.until && t >= *f.until) {
      ended_.insert(f.index);
      End(f);
    }
  }
  for (auto it = restarts_.begin(); it != restarts_.end();) {
    if (now < it->first) {
      ++it;
      continue;
    }
    const std::string& name = it->second.second;
    if (nodes.RestartKilled(name)) {
      Record(*it->second.first, "restart", "replacement for " + name + " started");
    }
    it = restarts_.erase(it);
  }
}

void FaultRunner::Finish() {
  if (!proxy_) return;
  for (const auto& f : schedule_.faults) {
    if (refused_.count(f.index) || !f.uses_proxy()) continue;
    uint64_t bytes = 0;
    int n = 0;
    for (const auto& [link, id] : routes_) {
      if (!Covers(f, link)) continue;
      auto st = proxy_->stats(id);
      bytes += st.bytes_up + st.bytes_down;
      ++n;
    }
    Record(f, "traffic", fmt::format("{} bytes through {} proxy routes", bytes, n));
    log_.back().proxied_bytes = static_cast<int64_t>(bytes);
  }
}

void FaultRunner::Fail(const Fault& f, const Status& s) {
  Record(f, "error", s.ToString());
  spdlog::error("fault faults[{}] ({}) could not be applied: {}", f.index, f.Describe(),
                s.ToString());
}

void FaultRunner::Record(const Fault& f, const std::string& event, const std::string& detail) {
  AppliedFault a{Elapsed(), round_, f.index, FaultKindName(f.kind), f.node.name(), event, detail};
  spdlog::info("fault {} faults[{}] at {:.1f}s round {}: {}", event, f.index, a.time_s, a.round,
               detail);
  log_.push_back(a);
}

void FaultRunner::RecordPolicyRestart(const std::string& node, const std::string& detail) {
  AppliedFault a{Elapsed(), round_, -1, "crash", node, "restart", detail};
  spdlog::info("restart policy at {:.1f}s round {}: {}", a.time_s, a.round, detail);
  log_.push_back(a);
}

bool FaultRunner::Covers(const Fault& f, const Link& l) const {
  bool has_node = l.client == f.node || l.listener == f.node;
  if (!has_node) return false;
  if (!f.peer) return true;
  return l.client == *f.peer || l.listener == *f.peer;
}

void FaultRunner::UpdateProxy() {
  if (!proxy_) return;
  for (const auto& [link, id] : routes_) {
    Toxics up, down;
    bool refuse = false;
    for (const auto& f : schedule_.faults) {
      if (!active_.count(f.index) || !Covers(f, link)) continue;
      // Seen from f.node: its egress is "up" when it is the client.
      bool node_is_client = link.client == f.node;
      bool up_on = node_is_client ? f.egress : f.ingress;
      bool down_on = node_is_client ? f.ingress : f.egress;
      for (auto [on, t] : {std::pair{up_on, &up}, std::pair{down_on, &down}}) {
        if (!on) continue;
        if (f.kind == FaultKind::kDelay) {
          t->delay_ms += f.delay_ms;
          t->jitter_ms += f.jitter_ms;
        } else if (f.kind == FaultKind::kBandwidth && f.via_proxy) {
          t->rate_kbit = t->rate_kbit > 0 ? std::min(t->rate_kbit, f.rate_kbit) : f.rate_kbit;
        } else if (f.kind == FaultKind::kPartition) {
          t->stall = true;  // traffic DNATed to the proxy misses the nft rules
        }
      }
      if (f.kind == FaultKind::kReset && f.until) refuse = true;
    }
    proxy_->SetToxics(id, up, down);
    proxy_->SetRefuse(id, refuse);
  }
}

void FaultRunner::Start(const Fault& f, Supervisor& nodes) {
  Status s;
  switch (f.kind) {
    case FaultKind::kByzantine:
      // The worker was started with the attack from this round on.
      Record(f, "start", f.Describe());
      return;
    case FaultKind::kStraggler:
      return;
    case FaultKind::kKill: {
      if (auto killed = nodes.KillByFault(f.node.name())) {
        Record(f, "start", f.Describe() + " (" + *killed + ")");
        if (f.restart_after_s) {
          restarts_.emplace_back(Elapsed() + *f.restart_after_s, std::pair{&f, f.node.name()});
        }
        return;
      }
      Record(f, "skipped", f.node.name() + " is not running");
      return;
    }
    case FaultKind::kLoss:
      s = sandbox_->AddLoss(Tag(f), f.node.name(), f.loss_pct, f.egress, f.ingress);
      break;
    case FaultKind::kBandwidth:
      if (!f.via_proxy) s = sandbox_->SetBandwidth(f.node.name(), f.rate_kbit, f.egress, f.ingress);
      break;
    case FaultKind::kPartition:
      if (sandbox_) {
        s = f.peer ? sandbox_->AddPartition(Tag(f), f.node.name(), f.peer->name())
                   : sandbox_->SetLinkUp(f.node.name(), false);
      }
      break;
    case FaultKind::kReset:
      if (proxy_) {
        for (const auto& [link, id] : routes_) {
          if (Covers(f, link)) proxy_->ResetConnections(id);
        }
      }
      break;
    case FaultKind::kDelay:
      break;
  }
  if (!s.ok()) {
    Fail(f, s);
    return;
  }
  active_.insert(f.index);
  UpdateProxy();
  Record(f, "start", f.Describe());
}

void FaultRunner::End(const Fault& f) {
  if (!active_.count(f.index)) return;
  active_.erase(f.index);
  Status s;
  if (f.kind == FaultKind::kLoss || (f.kind == FaultKind::kPartition && f.peer)) {
    s = sandbox_->RemoveRules(Tag(f));
  } else if (f.kind == FaultKind::kPartition) {
    s = sandbox_->SetLinkUp(f.node.name(), true);
  } else if (f.kind == FaultKind::kBandwidth && !f.via_proxy) {
    s = sandbox_->ClearBandwidth(f.node.name());
  }
  UpdateProxy();
  if (!s.ok()) {
    Fail(f, s);
    return;
  }
  Record(f, "end", f.Describe());
}

}  // namespace phalanx::launch::internal
