#include "launch/faults/netns.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "launch/process/child_process.h"

namespace phalanx::launch {
namespace {

namespace fs = std::filesystem;

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& a : v) s += (s.empty() ? "" : " ") + a;
  return s;
}

bool PidAlive(long pid) {
  return pid > 0 && (kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
}

// The pid in "phx-<pid>-..." or "px<pid>h<i>", or -1.
long PidOf(const std::string& name) {
  size_t start;
  if (name.rfind("phx-", 0) == 0) {
    start = 4;
  } else if (name.rfind("px", 0) == 0) {
    start = 2;
  } else {
    return -1;
  }
  size_t end = start;
  while (end < name.size() && isdigit(static_cast<unsigned char>(name[end]))) ++end;
  if (end == start || end - start > 9) return -1;
  return std::stol(name.substr(start, end - start));
}

std::string Format(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

}  // namespace

Result<std::string> RunTool(const std::vector<std::string>& argv) {
  auto run = RunCommand(argv, 20'000);
  if (!run.ok()) {
    if (run.status().code() == StatusCode::kDeadlineExceeded) {
      return DeadlineExceeded("'" + Join(argv) + "' did not finish in 20 s");
    }
    return run.status();
  }
  std::string se = std::move(run->err);
  if (run->exit_code != 0) {
    while (!se.empty() && se.back() == '\n') se.pop_back();
    if (run->exit_code == 127 && se.empty()) se = "command not found";
    return Unavailable("'" + Join(argv) + "' failed: " + se);
  }
  return std::move(run->out);
}

Status NetnsAvailable() {
  if (geteuid() != 0) {
    return FailedPrecondition("network namespaces need root (this process runs as uid " +
                              std::to_string(geteuid()) + ")");
  }
  for (const char* tool : {"ip", "nft", "tc"}) {
    auto r = RunTool({"sh", "-c", std::string("command -v ") + tool});
    if (!r.ok()) {
      return FailedPrecondition(std::string("'") + tool +
                                "' is not installed (scripts/setup.sh installs iproute2 and "
                                "nftables)");
    }
  }
  std::string probe = "phx-" + std::to_string(getpid()) + "-probe";
  auto r = RunTool({"ip", "netns", "add", probe});
  if (!r.ok())
    return FailedPrecondition("cannot create a network namespace: " + r.status().message());
  auto n = RunTool({"ip", "netns", "exec", probe, "nft", "list", "ruleset"});
  (void)RunTool({"ip", "netns", "del", probe});
  if (!n.ok()) return FailedPrecondition("nftables does not work here: " + n.status().message());
  return Status::Ok();
}

int CleanupStaleNetns() {
  int removed = 0;
  if (auto list = RunTool({"ip", "netns", "list"}); list.ok()) {
    std::istringstream in(*list);
    std::string line;
    while (std::getline(in, line)) {
      std::string name = line.substr(0, line.find(' '));
      long pid = PidOf(name);
      if (name.rfind("phx-", 0) != 0 || pid < 0 || PidAlive(pid)) continue;
      if (RunTool({"ip", "netns", "del", name}).ok()) ++removed;
    }
  }
  if (auto links = RunTool({"ip", "-o", "link", "show"}); links.ok()) {
    std::istringstream in(*links);
    std::string line;
    while (std::getline(in, line)) {
      // "7: px123h0@if2: <...>" or "6: phx-123-br: <...>"
      auto a = line.find(": ");
      if (a == std::string::npos) continue;
      auto b = line.find_first_of(":@", a + 2);
      std::string name = line.substr(a + 2, b - a - 2);
      long pid = PidOf(name);
      if (pid < 0 || PidAlive(pid)) continue;
      if (RunTool({"ip", "link", "del", name}).ok()) ++removed;
    }
  }
  if (removed > 0) spdlog::info("netns: removed {} stale phx-* objects of dead runs", removed);
  return removed;
}

Result<std::unique_ptr<NetworkSandbox>> NetworkSandbox::Create(
    const std::vector<std::string>& nodes) {
  if (nodes.empty() || nodes.size() > 250) {
    return InvalidArgument("network namespaces hold 1..250 nodes, got " +
                           std::to_string(nodes.size()));
  }
  std::unique_ptr<NetworkSandbox> sb(new NetworkSandbox());
  const std::string pid = std::to_string(getpid());
  sb->prefix_ = "phx-" + pid;
  sb->bridge_ = sb->prefix_ + "-br";

  // Pick a free 10.77.X.0/24 under a lock, so runs started together differ.
  int lock = open("/run/phx-netns.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  if (lock >= 0) flock(lock, LOCK_EX);
  auto unlock = [&] {
    if (lock >= 0) close(lock);
    lock = -1;
  };
  auto fail = [&](Status s) -> Result<std::unique_ptr<NetworkSandbox>> {
    unlock();
    sb->Destroy();
    return s;
  };
  auto addrs = RunTool({"ip", "-4", "-o", "addr", "show"});
  if (!addrs.ok()) return fail(addrs.status());
  int subnet = -1;
  for (int k = 0; k < 250; ++k) {
    int x = static_cast<int>((getpid() + k) % 250);
    if (addrs->find("10.77." + std::to_string(x) + ".") == std::string::npos) {
      subnet = x;
      break;
    }
  }
  if (subnet < 0) return fail(ResourceExhausted("no free 10.77.X.0/24 subnet for the run"));
  const std::string net = "10.77." + std::to_string(subnet) + ".";
  sb->bridge_address_ = net + "254";

  auto run = [&](std::vector<std::string> argv) -> Status {
    auto r = RunTool(argv);
    return r.ok() ? Status::Ok() : r.status();
  };
  PHX_RETURN_IF_ERROR(run({"ip", "link", "add", sb->bridge_, "type", "bridge"}));
  if (auto s = run({"ip", "addr", "add", sb->bridge_address_ + "/24", "dev", sb->bridge_}); !s.ok())
    return fail(s);
  if (auto s = run({"ip", "link", "set", sb->bridge_, "up"}); !s.ok()) return fail(s);
  unlock();  // the subnet is now visible to the next run's scan

  for (size_t i = 0; i < nodes.size(); ++i) {
    Node n;
    n.index = static_cast<int>(i);
    n.ns = sb->prefix_ + "-" + nodes[i];
    n.host_veth = "px" + pid + "h" + std::to_string(i);
    n.address = net + std::to_string(i + 1);
    sb->nodes_[nodes[i]] = n;
    for (auto& cmd : std::vector<std::vector<std::string>>{
             {"ip", "netns", "add", n.ns},
             {"ip", "link", "add", n.host_veth, "type", "veth", "peer", "name", "eth0", "netns",
              n.ns},
             {"ip", "-n", n.ns, "addr", "add", n.address + "/24", "dev", "eth0"},
             {"ip", "-n", n.ns, "link", "set", "eth0", "up"},
             {"ip", "-n", n.ns, "link", "set", "lo", "up"},
             {"ip", "link", "set", n.host_veth, "master", sb->bridge_},
             {"ip", "link", "set", n.host_veth, "up"}}) {
      if (auto s = run(cmd); !s.ok()) return fail(s);
    }
  }
  spdlog::info("netns: {} nodes in namespaces {}-*, bridge {} ({}/24)", nodes.size(), sb->prefix_,
               sb->bridge_, sb->bridge_address_);
  return sb;
}

NetworkSandbox::~NetworkSandbox() { Destroy(); }

void NetworkSandbox::Destroy() {
  if (destroyed_) return;
  destroyed_ = true;
  // Deleting a namespace deletes its rules, qdiscs and both ends of its veth.
  for (auto& [name, n] : nodes_) (void)RunTool({"ip", "netns", "del", n.ns});
  for (auto& [name, n] : nodes_) (void)RunTool({"ip", "link", "del", n.host_veth});
  if (!bridge_.empty()) (void)RunTool({"ip", "link", "del", bridge_});
}

std::string NetworkSandbox::address(const std::string& node) const {
  auto it = nodes_.find(node);
  return it == nodes_.end() ? "" : it->second.address;
}

std::string NetworkSandbox::namespace_of(const std::string& node) const {
  auto it = nodes_.find(node);
  return it == nodes_.end() ? "" : it->second.ns;
}

std::vector<std::string> NetworkSandbox::Wrap(const std::string& node,
                                              const std::vector<std::string>& argv) const {
  std::vector<std::string> out = {"/usr/sbin/ip", "netns", "exec", namespace_of(node)};
  if (!fs::exists(out[0])) out[0] = "/sbin/ip";
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

Status NetworkSandbox::Nft(const std::string& node, const std::string& script) {
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return NotFound("netns: no node '" + node + "'");
  fs::path file = fs::temp_directory_path() / (prefix_ + "-nft.conf");
  {
    std::ofstream out(file);
    out << script;
  }
  auto r = RunTool({"ip", "netns", "exec", it->second.ns, "nft", "-f", file.string()});
  std::error_code ec;
  fs::remove(file, ec);
  return r.ok() ? Status::Ok() : r.status();
}

Status NetworkSandbox::AddLoss(const std::string& tag, const std::string& node, double pct,
                               bool egress, bool ingress) {
  // Per ten thousand, so fractional percentages work.
  long p = std::lround(pct * 100);
  std::string rule = "numgen random mod 10000 < " + std::to_string(p) + " drop";
  std::string t = "phx_" + tag;
  std::string s = "table inet " + t + " {\n";
  if (egress)
    s += "  chain out { type filter hook output priority 0; policy accept; oifname \"eth0\" " +
         rule + "; }\n";
  if (ingress)
    s += "  chain in { type filter hook input priority 0; policy accept; iifname \"eth0\" " + rule +
         "; }\n";
  s += "}\n";
  PHX_RETURN_IF_ERROR(Nft(node, s));
  tables_[tag].push_back(node);
  return Status::Ok();
}

Status NetworkSandbox::AddPartition(const std::string& tag, const std::string& node,
                                    const std::string& peer) {
  std::string t = "phx_" + tag;
  for (auto [a, b] : {std::pair{node, peer}, std::pair{peer, node}}) {
    std::string other = address(b);
    if (other.empty()) return NotFound("netns: no node '" + b + "'");
    std::string s = "table inet " + t +
                    " {\n"
                    "  chain out { type filter hook output priority 0; policy accept; ip daddr " +
                    other +
                    " drop; }\n"
                    "  chain in { type filter hook input priority 0; policy accept; ip saddr " +
                    other + " drop; }\n}\n";
    PHX_RETURN_IF_ERROR(Nft(a, s));
    tables_[tag].push_back(a);
  }
  return Status::Ok();
}

Status NetworkSandbox::SetLinkUp(const std::string& node, bool up) {
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return NotFound("netns: no node '" + node + "'");
  auto r = RunTool({"ip", "link", "set", it->second.host_veth, up ? "up" : "down"});
  return r.ok() ? Status::Ok() : r.status();
}

Status NetworkSandbox::SetBandwidth(const std::string& node, double rate_kbit, bool egress,
                                    bool ingress) {
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return NotFound("netns: no node '" + node + "'");
  // Burst: 10 ms worth of bytes, at least a few full frames.
  long burst = std::max<long>(8192, std::lround(rate_kbit * 1000 / 8 / 100));
  std::vector<std::string> tbf = {
      "tbf",     "rate", Format(rate_kbit) + "kbit", "burst", std::to_string(burst),
      "latency", "200ms"};
  if (egress) {
    std::vector<std::string> cmd = {"ip",    "netns",   "exec", it->second.ns, "tc",
                                    "qdisc", "replace", "dev",  "eth0",        "root"};
    cmd.insert(cmd.end(), tbf.begin(), tbf.end());
    auto r = RunTool(cmd);
    if (!r.ok()) return r.status();
  }
  if (ingress) {
    std::vector<std::string> cmd = {"tc", "qdisc", "replace", "dev", it->second.host_veth, "root"};
    cmd.insert(cmd.end(), tbf.begin(), tbf.end());
    auto r = RunTool(cmd);
    if (!r.ok()) return r.status();
  }
  return Status::Ok();
}

Status NetworkSandbox::ClearBandwidth(const std::string& node) {
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return NotFound("netns: no node '" + node + "'");
  // Deleting a root qdisc that is not there fails; both are tried.
  (void)RunTool(
      {"ip", "netns", "exec", it->second.ns, "tc", "qdisc", "del", "dev", "eth0", "root"});
  (void)RunTool({"tc", "qdisc", "del", "dev", it->second.host_veth, "root"});
  return Status::Ok();
}

Status NetworkSandbox::AddRedirect(const std::string& tag, const std::string& client,
                                   const std::string& listener_ip, int port,
                                   const std::string& proxy_ip, int proxy_port) {
  std::string t = "phx_" + tag;
  std::string s = "table ip " + t +
                  " {\n"
                  "  chain out { type nat hook output priority -100; policy accept; ip daddr " +
                  listener_ip + " tcp dport " + std::to_string(port) + " dnat to " + proxy_ip +
                  ":" + std::to_string(proxy_port) + "; }\n}\n";
  PHX_RETURN_IF_ERROR(Nft(client, s));
  tables_["nat:" + tag].push_back(client);
  return Status::Ok();
}

Result<std::vector<int>> NetworkSandbox::ListeningPorts(const std::string& node) const {
  auto out = RunTool({"ip", "netns", "exec", namespace_of(node), "ss", "-Hltn"});
  if (!out.ok()) return out.status();
  // "LISTEN 0 100 10.77.3.2:46537 0.0.0.0:*": the 4th column is local addr:port.
  std::vector<int> ports;
  std::istringstream in(*out);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream cols(line);
    std::string state, recvq, sendq, local;
    cols >> state >> recvq >> sendq >> local;
    auto colon = local.rfind(':');
    if (colon == std::string::npos) continue;
    ports.push_back(std::atoi(local.c_str() + colon + 1));
  }
  return ports;
}

Status NetworkSandbox::RemoveRules(const std::string& tag) {
  Status first;
  for (auto [key, family] : {std::pair{tag, "inet"}, std::pair{"nat:" + tag, "ip"}}) {
    auto it = tables_.find(key);
    if (it == tables_.end()) continue;
    for (const auto& node : it->second) {
      auto r = RunTool({"ip", "netns", "exec", namespace_of(node), "nft", "delete", "table", family,
                        "phx_" + tag});
      if (!r.ok() && first.ok()) first = r.status();
    }
    tables_.erase(it);
  }
  return first;
}

}  // namespace phalanx::launch
