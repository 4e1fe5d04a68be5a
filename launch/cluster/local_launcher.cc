#include "launch/cluster/local_launcher.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "launch/report/plot.h"
#include "common/transport.h"
#include "launch/child_process.h"
#include "launch/faults/fault_proxy.h"
#include "launch/faults/fault_schedule.h"
#include "launch/cli/federated_live.h"
#include "launch/faults/netns.h"

namespace phalanx::launch {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Child {
  std::string name;  // "scheduler", "server-0", "worker-3"
  pid_t pid = -1;
  int stdout_fd = -1;   // read end, or -1
  std::string partial;  // unfinished line
  bool exited = false;
  int status = 0;
  bool killed_by_fault = false;  // SIGKILLed by the schedule: not a failure
  std::vector<std::string> args;
  std::string log_path;
  int restarts = 0;
};

// Starts a cluster node: stdout to a pipe (when capture) and stderr to
// log_path, in our process group (Ctrl-C reaches it too; the launcher still
// sends SIGTERM explicitly), killed with the launcher.
Result<Child> Spawn(const std::string& name, const std::vector<std::string>& args,
                    const std::string& log_path, bool capture) {
  ChildOptions options;
  options.log_path = log_path;
  options.capture_stdout = capture;
  options.die_with_parent = true;
  PHX_ASSIGN_OR_RETURN(StartedChild started, StartChild(args, options));
  Child c;
  c.name = name;
  c.pid = started.pid;
  c.stdout_fd = started.stdout_fd;
  c.args = args;
  c.log_path = log_path;
  return c;
}

void KillAll(std::vector<Child>& children, int sig) {
  for (auto& c : children) {
    if (!c.exited) kill(c.pid, sig);
  }
}

// Reaps exited children without blocking.
void Reap(std::vector<Child>& children) {
  for (auto& c : children) {
    if (c.exited) continue;
    int st = 0;
    if (waitpid(c.pid, &st, WNOHANG) == c.pid) {
      c.exited = true;
      c.status = st;
    }
  }
}

void StopAll(std::vector<Child>& children) {
  KillAll(children, SIGTERM);
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < deadline) {
    Reap(children);
    bool all = true;
    for (auto& c : children) all &= c.exited;
    if (all) return;
    usleep(20000);
  }
  KillAll(children, SIGKILL);
  for (auto& c : children) {
    if (!c.exited) {
      waitpid(c.pid, &c.status, 0);
      c.exited = true;
    }
  }
}

std::string DescribeExit(int st) {
  if (WIFEXITED(st)) return "exit code " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return std::string("signal ") + strsignal(WTERMSIG(st));
  return "unknown status";
}

bool Failed(const Child& c) {
  return !c.killed_by_fault && (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0);
}

std::string CsvQuote(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

// Host and port of "tcp://host:port".
std::pair<std::string, int> SplitEndpoint(const std::string& ep) {
  std::string rest = ep.rfind("tcp://", 0) == 0 ? ep.substr(6) : ep;
  auto colon = rest.rfind(':');
  if (colon == std::string::npos) return {rest, 0};
  return {rest.substr(0, colon), std::atoi(rest.c_str() + colon + 1)};
}

// Reads complete lines available on fd; returns false at EOF.
bool ReadLines(Child& c, std::vector<std::string>* lines) {
  char buf[65536];
  ssize_t n = read(c.stdout_fd, buf, sizeof(buf));
  if (n <= 0) return n < 0 && errno == EAGAIN;
  c.partial.append(buf, static_cast<size_t>(n));
  size_t pos;
  while ((pos = c.partial.find('\n')) != std::string::npos) {
    lines->push_back(c.partial.substr(0, pos));
    c.partial.erase(0, pos + 1);
  }
  return true;
}

std::string Tail(const std::string& path, size_t max_lines) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string l;
  while (std::getline(in, l)) lines.push_back(l);
  std::string out;
  size_t from = lines.size() > max_lines ? lines.size() - max_lines : 0;
  for (size_t i = from; i < lines.size(); ++i) out += "    " + lines[i] + "\n";
  return out;
}

struct Row {
  int round = 0;
  double wall = 0;
  double loss_sum = 0;
  int loss_n = 0;
  double accuracy = -1;
  double rows_per_s = 0;
  double staleness = -1;  // federated mode: mean staleness of worker 0's clients' updates
};

// Applies a validated fault schedule during a run: owns the network sandbox
// and the fault proxy, remembers what is active, and logs every event.
// Launcher thread only.
class FaultRunner {
 public:
  FaultRunner(const JobConfig& config, FaultSchedule schedule, Clock::time_point start)
      : config_(config), schedule_(std::move(schedule)), start_(start) {}

  // Decides what can run here and sets up namespaces and the proxy.
  Status Prepare(bool require_network) {
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

  bool netns() const { return sandbox_ != nullptr; }
  std::string host_of(const std::string& node) const {
    return sandbox_ ? sandbox_->address(node) : config_.cluster.host;
  }
  std::string proxy_host() const {
    return sandbox_ ? sandbox_->bridge_address() : config_.cluster.host;
  }
  // Per-process overrides and the namespace wrapper.
  std::vector<std::string> Command(const NodeRef& node, std::vector<std::string> args) const {
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
  // The server's ZeroMQ port: of the ports listening in its namespace (data
  // and HTTP), the one that greets a new connection first (ZMTP sends its
  // signature, 0xFF..., at once; HTTP waits for a request). Servers publish
  // their port only after the cluster formed, which is too late here. 0 when
  // not (yet) found.
  int FindDataPort(const NodeRef& node) const {
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
  bool needs_server_ports() const {
    for (const auto& l : proxied_) {
      if (l.listener.role == Role::kServer) return true;
    }
    return false;
  }

  // Routes node -> scheduler links through the proxy: returns the endpoint
  // node must be given as --scheduler.
  Result<std::string> SchedulerEndpointFor(const NodeRef& node, const std::string& endpoint) {
    Link l{node, {Role::kScheduler, 0}};
    if (!proxied_.count(l)) return endpoint;
    auto [host, port] = SplitEndpoint(endpoint);
    if (!routes_.count(l)) {
      PHX_ASSIGN_OR_RETURN(int id, proxy_->AddRoute(proxy_host(), 0, host, port));
      routes_[l] = id;
    }
    return TcpEndpoint(proxy_host(), proxy_->port(routes_[l]));
  }

  // Worker -> server links: a route per link and a DNAT rule in the worker's
  // namespace, set up before the worker starts (so its first connection
  // already goes through the proxy).
  Status RouteServerLinks(const std::map<int, std::pair<std::string, int>>& servers) {
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

  // Replacements scheduled but not started yet: the job is not over.
  bool restarts_pending() const { return !restarts_.empty(); }

  // Starts and ends what is due. `spawn` starts a replacement for a child.
  void Tick(int round, std::vector<Child>& children, const std::function<void(Child&)>& restart) {
    double now = Elapsed();
    round_ = round;
    for (const auto& f : schedule_.faults) {
      if (refused_.count(f.index) || f.kind == FaultKind::kStraggler) continue;
      double t = f.in_rounds ? round : now;
      if (!started_.count(f.index) && t >= f.at) {
        started_.insert(f.index);
        Start(f, children);
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
      for (auto& c : children) {
        if (c.name == it->second.second && c.killed_by_fault && c.restarts == 0) {
          c.restarts = 1;  // the old entry stays for the record
          std::string name = c.name;
          restart(c);  // may grow `children`: c is not used after this
          Record(*it->second.first, "restart", "replacement for " + name + " started");
          break;
        }
      }
      it = restarts_.erase(it);
    }
  }

  // At the end of the run: how many bytes the proxy carried on each proxy
  // fault's links (evidence that the links really went through it).
  void Finish() {
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

  const std::vector<AppliedFault>& log() const { return log_; }

 private:
  double Elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

  void Record(const Fault& f, const std::string& event, const std::string& detail) {
    AppliedFault a{Elapsed(), round_, f.index, FaultKindName(f.kind), f.node.name(), event, detail};
    spdlog::info("fault {} faults[{}] at {:.1f}s round {}: {}", event, f.index, a.time_s, a.round,
                 detail);
    log_.push_back(a);
  }

  void Fail(const Fault& f, const Status& s) {
    Record(f, "error", s.ToString());
    spdlog::error("fault faults[{}] ({}) could not be applied: {}", f.index, f.Describe(),
                  s.ToString());
  }

  std::string Tag(const Fault& f) const { return "f" + std::to_string(f.index); }

  bool Covers(const Fault& f, const Link& l) const {
    bool has_node = l.client == f.node || l.listener == f.node;
    if (!has_node) return false;
    if (!f.peer) return true;
    return l.client == *f.peer || l.listener == *f.peer;
  }

  // Recomputes every route's toxics from the active faults.
  void UpdateProxy() {
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

  void Start(const Fault& f, std::vector<Child>& children) {
    Status s;
    switch (f.kind) {
      case FaultKind::kByzantine:
        // The worker was started with the attack from this round on.
        Record(f, "start", f.Describe());
        return;
      case FaultKind::kStraggler:
        return;
      case FaultKind::kKill: {
        for (auto& c : children) {
          if (c.name != f.node.name() || c.exited || c.killed_by_fault) continue;
          kill(c.pid, SIGKILL);
          c.killed_by_fault = true;
          Record(f, "start", f.Describe() + " (pid " + std::to_string(c.pid) + ")");
          if (f.restart_after_s) {
            restarts_.emplace_back(Elapsed() + *f.restart_after_s, std::pair{&f, c.name});
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
        if (!f.via_proxy)
          s = sandbox_->SetBandwidth(f.node.name(), f.rate_kbit, f.egress, f.ingress);
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

  void End(const Fault& f) {
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

}  // namespace

Result<LaunchResult> LaunchLocal(const LaunchOptions& options, const std::atomic<bool>* stop) {
  PHX_ASSIGN_OR_RETURN(JobConfig config, LoadConfig(options.config_path, options.overrides));
  PHX_RETURN_IF_ERROR(ValidateFederatedJob(config));  // before any process starts
  PHX_ASSIGN_OR_RETURN(FaultSchedule schedule, BuildFaultSchedule(config));
  // Fail early, before any process starts, when the data is missing.
  if (config.data.dataset != "libsvm" && !fs::exists(config.data.path)) {
    return NotFound("data set folder '" + config.data.path + "' not found; run scripts/setup.sh");
  }
  std::error_code ec;
  fs::create_directories(fs::path(options.out_dir) / "logs", ec);
  if (ec)
    return Unavailable("cannot create output folder " + options.out_dir + ": " + ec.message());
  {
    std::ifstream in(options.config_path);
    std::ofstream out(fs::path(options.out_dir) / "config.toml");
    out << in.rdbuf();
    for (const auto& o : options.overrides) out << "# --set " << o << "\n";
  }
  const std::string logs = (fs::path(options.out_dir) / "logs").string();
  std::vector<std::string> common = {"--config", options.config_path};
  for (const auto& o : options.overrides) {
    common.push_back("--set");
    common.push_back(o);
  }
  auto start = Clock::now();
  FaultRunner faults(config, std::move(schedule), start);
  PHX_RETURN_IF_ERROR(faults.Prepare(options.require_network_faults));
  // Every process: the binary, its role arguments, the shared config, then
  // its own overrides (address in its namespace, behavioural faults).
  auto args_for = [&](const NodeRef& node, std::vector<std::string> head) {
    head.insert(head.begin(), options.self_exe);
    head.insert(head.end(), common.begin(), common.end());
    return faults.Command(node, head);
  };

  std::vector<Child> children;
  auto fail = [&](Status s) -> Result<LaunchResult> {
    StopAll(children);
    return s;
  };

  // Scheduler first: it prints the endpoint it bound.
  PHX_ASSIGN_OR_RETURN(
      Child sched, Spawn("scheduler", args_for({Role::kScheduler, 0}, {"scheduler", "--port", "0"}),
                         logs + "/scheduler.log", true));
  children.push_back(sched);
  std::string endpoint;
  while (endpoint.empty()) {
    pollfd p{children[0].stdout_fd, POLLIN, 0};
    if (poll(&p, 1, 200) > 0) {
      std::vector<std::string> lines;
      if (!ReadLines(children[0], &lines)) {
        return fail(Internal("scheduler exited at start:\n" + Tail(logs + "/scheduler.log", 10)));
      }
      for (const auto& l : lines) {
        if (l.rfind("PHX_ENDPOINT ", 0) == 0) endpoint = l.substr(13);
      }
    }
    Reap(children);
    if (children[0].exited) {
      return fail(Internal("scheduler exited at start (" + DescribeExit(children[0].status) +
                           "):\n" + Tail(logs + "/scheduler.log", 10)));
    }
    if (Clock::now() - start > std::chrono::seconds(30)) {
      return fail(DeadlineExceeded("scheduler did not report its endpoint"));
    }
    if (stop && stop->load()) return fail(Cancelled("interrupted"));
  }
  // A restarted scheduler binds the same port, so nodes (and proxy routes)
  // find it where it was.
  const int scheduler_port = SplitEndpoint(endpoint).second;
  for (int s = 0; s < config.cluster.servers; ++s) {
    NodeRef node{Role::kServer, s};
    auto ep = faults.SchedulerEndpointFor(node, endpoint);
    if (!ep.ok()) return fail(ep.status());
    auto c = Spawn(node.name(),
                   args_for(node, {"server", "--scheduler", *ep, "--rank", std::to_string(s)}),
                   logs + "/server-" + std::to_string(s) + ".log", false);
    if (!c.ok()) return fail(c.status());
    children.push_back(*c);
  }
  if (faults.needs_server_ports()) {
    // Worker -> server links through the proxy: learn the servers' data
    // ports before any worker connects.
    std::map<int, std::pair<std::string, int>> servers;
    while (static_cast<int>(servers.size()) < config.cluster.servers) {
      for (int r = 0; r < config.cluster.servers; ++r) {
        if (servers.count(r)) continue;
        NodeRef node{Role::kServer, r};
        if (int port = faults.FindDataPort(node); port > 0) {
          servers[r] = {faults.host_of(node.name()), port};
        }
      }
      usleep(100000);
      Reap(children);
      for (auto& c : children) {
        if (c.exited) {
          return fail(Internal(c.name + " exited at start (" + DescribeExit(c.status) + "):\n" +
                               Tail(c.log_path, 10)));
        }
      }
      if (Clock::now() - start > std::chrono::seconds(60)) {
        return fail(DeadlineExceeded("servers did not open their ports within 60 s"));
      }
      if (stop && stop->load()) return fail(Cancelled("interrupted"));
    }
    if (Status s = faults.RouteServerLinks(servers); !s.ok()) return fail(s);
  }
  for (int w = 0; w < config.cluster.workers; ++w) {
    NodeRef node{Role::kWorker, w};
    auto ep = faults.SchedulerEndpointFor(node, endpoint);
    if (!ep.ok()) return fail(ep.status());
    auto c = Spawn(node.name(),
                   args_for(node, {"worker", "--scheduler", *ep, "--rank", std::to_string(w)}),
                   logs + "/worker-" + std::to_string(w) + ".log", true);
    if (!c.ok()) return fail(c.status());
    children.push_back(*c);
  }
  // A replacement: the same command line (servers add --restore, the
  // scheduler binds its old port), a fresh log.
  auto restart = [&](Child& old) {
    std::vector<std::string> args = old.args;
    if (old.name == "scheduler") {
      for (size_t i = 0; i + 1 < args.size(); ++i) {
        if (args[i] == "--port") args[i + 1] = std::to_string(scheduler_port);
      }
    } else if (old.name.rfind("server", 0) == 0) {
      args.push_back("--restore");
    }
    int n = 1;
    for (auto& c : children) n += c.name == old.name && c.restarts > 0 ? 1 : 0;
    std::string log = logs + "/" + old.name + ".restart" + std::to_string(n - 1) + ".log";
    bool capture = old.name.rfind("server", 0) != 0;
    auto c = Spawn(old.name, args, log, capture);
    if (!c.ok()) {
      spdlog::error("cannot restart {}: {}", old.name, c.status().ToString());
      return;
    }
    children.push_back(*c);
  };
  if (!options.quiet) {
    std::printf("phalanx: %s, %d servers, %d workers, %s, aggregator %s; logs in %s\n",
                config.model.kind.c_str(), config.cluster.servers, config.cluster.workers,
                config.cluster.mode.c_str(), config.aggregator.name.c_str(), logs.c_str());
    std::fflush(stdout);
  }

  std::map<int, Row> rows;  // by round
  double final_acc = -1;
  int last_round = 0;
  double last_loss = 0;
  bool tty = isatty(1);
  Clock::time_point servers_alone_since{};
  auto last_print = Clock::now() - std::chrono::seconds(10);

  while (true) {
    if (stop && stop->load()) {
      StopAll(children);
      return Cancelled("interrupted; stopped every process");
    }
    std::vector<pollfd> fds;
    std::vector<size_t> idx;
    for (size_t i = 0; i < children.size(); ++i) {
      if (children[i].stdout_fd >= 0) {
        fds.push_back({children[i].stdout_fd, POLLIN, 0});
        idx.push_back(i);
      }
    }
    if (!fds.empty())
      poll(fds.data(), fds.size(), 100);
    else
      usleep(100000);
    for (size_t k = 0; k < fds.size(); ++k) {
      if (!(fds[k].revents & (POLLIN | POLLHUP))) continue;
      Child& c = children[idx[k]];
      std::vector<std::string> lines;
      if (!ReadLines(c, &lines)) {
        close(c.stdout_fd);
        c.stdout_fd = -1;
      }
      for (const auto& l : lines) {
        bool progress = l.rfind("PHX_PROGRESS ", 0) == 0;
        bool result = l.rfind("PHX_RESULT ", 0) == 0;
        if (!progress && !result) continue;
        auto j = nlohmann::json::parse(l.substr(progress ? 13 : 11), nullptr, false);
        if (j.is_discarded()) continue;
        if (result) {
          final_acc = j.value("final_test_accuracy", -1.0);
          continue;
        }
        int round = j.value("round", 0);
        Row& r = rows[round];
        r.round = round;
        r.loss_sum += j.value("loss", 0.0);
        r.loss_n++;
        if (j.value("rank", -1) == 0) {
          r.wall = j.value("wall", 0.0);
          r.rows_per_s = j.value("rows_per_s", 0.0);
          if (j.contains("test_accuracy")) r.accuracy = j["test_accuracy"].get<double>();
          r.staleness = j.value("staleness_mean", -1.0);
        }
        if (round >= last_round) {
          last_round = round;
          last_loss = r.loss_sum / r.loss_n;
        }
      }
    }
    Reap(children);
    faults.Tick(last_round, children, restart);
    // A failed child stops the job, except workers when failures are tolerated.
    for (auto& c : children) {
      if (!c.exited || !Failed(c)) continue;
      bool is_worker = c.name.rfind("worker", 0) == 0;
      if (is_worker && config.cluster.tolerate_worker_failures) continue;
      std::string log = logs + "/" + c.name + ".log";
      return fail(Aborted(c.name + " failed (" + DescribeExit(c.status) + "); last lines of " +
                          log + ":\n" + Tail(log, 12)));
    }
    bool all_done = !faults.restarts_pending();
    for (auto& c : children) all_done &= c.exited;
    // Backstop: once every worker is gone the job is over; the scheduler and
    // servers get a grace period to exit on their own, then are stopped (a
    // scheduler restarted after the workers finished never hears them leave).
    bool only_services_left = !all_done && !faults.restarts_pending();
    for (auto& c : children) {
      if (c.name.rfind("worker", 0) == 0) only_services_left &= c.exited;
    }
    if (only_services_left) {
      if (servers_alone_since == Clock::time_point{}) servers_alone_since = Clock::now();
      if (Clock::now() - servers_alone_since > std::chrono::seconds(5)) {
        spdlog::warn("scheduler/servers still running after every worker exited; stopping them");
        StopAll(children);
        for (auto& c : children) {
          if (c.name.rfind("worker", 0) != 0) c.status = 0;  // stopped by us, not failed
        }
        all_done = true;
      }
    }
    if (!options.quiet &&
        (Clock::now() - last_print > std::chrono::milliseconds(tty ? 250 : 5000))) {
      double acc = -1;
      for (auto it = rows.rbegin(); it != rows.rend(); ++it) {
        if (it->second.accuracy >= 0) {
          acc = it->second.accuracy;
          break;
        }
      }
      double el = std::chrono::duration<double>(Clock::now() - start).count();
      double rps = rows.empty() ? 0 : rows.rbegin()->second.rows_per_s;
      std::printf("%sround %5d/%d  loss %.4f  test acc %s  rows/s %.3g  %.1fs%s", tty ? "\r" : "",
                  last_round, config.train.rounds, last_loss,
                  acc >= 0 ? fmt::format("{:.4f}", acc).c_str() : "  -   ", rps, el,
                  tty ? "   " : "\n");
      std::fflush(stdout);
      last_print = Clock::now();
    }
    if (all_done) break;
  }
  if (!options.quiet && tty) std::printf("\n");
  double wall = std::chrono::duration<double>(Clock::now() - start).count();

  // metrics.csv, summary.json, training.png
  fs::path out(options.out_dir);
  {
    std::ofstream csv(out / "metrics.csv");
    csv << "round,wall_seconds,train_loss,test_accuracy,rows_per_second,staleness_mean\n";
    for (auto& [round, r] : rows) {
      csv << round << "," << r.wall << "," << (r.loss_n ? r.loss_sum / r.loss_n : 0) << ",";
      if (r.accuracy >= 0) csv << r.accuracy;
      csv << "," << r.rows_per_s << ",";
      if (r.staleness >= 0) csv << r.staleness;
      csv << "\n";
    }
  }
  LaunchResult res;
  res.final_test_accuracy = final_acc;
  res.rounds = last_round;
  res.wall_seconds = wall;
  faults.Finish();
  res.faults = faults.log();
  {
    std::ofstream csv(out / "faults.csv");
    csv << "time_s,round,index,kind,node,event,detail,proxied_bytes\n";
    for (const auto& f : res.faults) {
      csv << fmt::format("{:.3f}", f.time_s) << "," << f.round << "," << f.index << "," << f.kind
          << "," << f.node << "," << f.event << "," << CsvQuote(f.detail) << ",";
      if (f.proxied_bytes >= 0) csv << f.proxied_bytes;
      csv << "\n";
    }
  }
  // Replacement servers report what their snapshot missed: a line
  // "PHX_RESTORED {...}" holding "updates_lost", or the server's log line
  // "... table 0: restored at round R, the cluster is at round C: N update(s) lost".
  for (auto& c : children) {
    if (c.log_path.find(".restart") == std::string::npos) continue;
    std::ifstream in(c.log_path);
    std::string line;
    int64_t lost = -1;
    while (std::getline(in, line)) {
      if (auto pos = line.find("PHX_RESTORED "); pos != std::string::npos) {
        auto j = nlohmann::json::parse(line.substr(pos + 13), nullptr, false);
        if (j.is_object() && j.contains("updates_lost") && j["updates_lost"].is_number()) {
          lost = j["updates_lost"].get<int64_t>();
        }
      } else if (auto end = line.find(" update(s) lost");
                 end != std::string::npos && line.find("table 0:") != std::string::npos) {
        auto colon = line.rfind(": ", end);
        if (colon != std::string::npos) lost = std::atoll(line.c_str() + colon + 2);
      }
    }
    if (lost >= 0) res.updates_lost = std::max<int64_t>(res.updates_lost, 0) + lost;
  }
  nlohmann::json fault_json = nlohmann::json::array();
  for (const auto& f : res.faults) {
    fault_json.push_back({{"time_s", f.time_s},
                          {"round", f.round},
                          {"index", f.index},
                          {"kind", f.kind},
                          {"node", f.node},
                          {"event", f.event},
                          {"detail", f.detail},
                          {"proxied_bytes", f.proxied_bytes}});
  }
  int failed_workers = 0;
  for (auto& c : children) failed_workers += c.name.rfind("worker", 0) == 0 && Failed(c);
  nlohmann::json summary{{"final_test_accuracy", final_acc},
                         {"rounds", last_round},
                         {"wall_seconds", wall},
                         {"final_train_loss", last_loss},
                         {"servers", config.cluster.servers},
                         {"workers", config.cluster.workers},
                         {"failed_workers", failed_workers},
                         {"mode", config.cluster.mode},
                         {"model", config.model.kind},
                         {"dataset", config.data.dataset},
                         {"aggregator", config.aggregator.name},
                         {"config", options.config_path},
                         {"overrides", options.overrides},
                         {"faults", fault_json},
                         {"updates_lost", res.updates_lost >= 0 ? nlohmann::json(res.updates_lost)
                                                                : nlohmann::json(nullptr)}};
  std::ofstream(out / "summary.json") << summary.dump(2) << "\n";
  PlotSpec plot;
  plot.csv_path = (out / "metrics.csv").string();
  plot.output_path = (out / "training.png").string();
  plot.title =
      config.model.kind + " on " + config.data.dataset + " (" + config.aggregator.name + ")";
  plot.x_column = "round";
  plot.series = {{"train_loss", "train loss", PlotAxis::kLeft, ""},
                 {"test_accuracy", "test accuracy", PlotAxis::kRight, ""}};
  plot.y_label = "loss";
  plot.y2_label = "accuracy";
  Status ps = PlotLines(plot);
  if (!ps.ok()) spdlog::warn("plot not written: {}", ps.ToString());
  if (final_acc < 0) {
    return Internal("training finished without a final accuracy; see " + logs + "/worker-0.log");
  }
  return res;
}

}  // namespace phalanx::launch
