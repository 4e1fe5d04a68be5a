#pragma once
// NetworkSandbox: puts each node of a local run in its own network namespace,
// so that faults act on real traffic between real network stacks. Layout:
// a bridge `phx-<pid>-br` in the root namespace holding 10.77.X.254/24 (X is
// a free /24, chosen under a lock so parallel runs do not collide); per node
// a namespace `phx-<pid>-<node>` with a veth pair: `eth0` inside, holding
// 10.77.X.(i+1)/24, and `px<pid>h<i>` on the bridge. Processes start with
// `ip netns exec`. Faults: loss = nftables `numgen random mod 100 < P drop`
// in the node's namespace; partition = nftables drops of the peer's address
// in both namespaces, or the node's bridge-side veth taken down; bandwidth =
// tbf on both ends of the veth; redirect = DNAT in a client's namespace so
// its connections to a listener go through the fault proxy instead.
//
// Every rule lives in its own nftables table (`phx_<tag>`), so removing a
// fault removes exactly its rules. The destructor deletes every namespace,
// link and rule; CleanupStale() removes what a crashed run (whose pid is
// gone) left behind. Needs root and iproute2 + nftables. Launcher thread only.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace phalanx::launch {

// Runs a command (argv[0] looked up in PATH), returning its stdout, or
// Unavailable with its stderr when it fails.
Result<std::string> RunTool(const std::vector<std::string>& argv);

// OK when this process can create network namespaces (root, `ip netns`
// works); otherwise FailedPrecondition saying why.
Status NetnsAvailable();

// Deletes phx-* namespaces, bridges and veths whose creating pid is dead.
// Returns how many objects were removed.
int CleanupStaleNetns();

class NetworkSandbox {
 public:
  // Creates the bridge and one namespace per node name ("scheduler",
  // "server-0", ...). On failure, whatever was created is removed again.
  static Result<std::unique_ptr<NetworkSandbox>> Create(const std::vector<std::string>& nodes);
  ~NetworkSandbox();
  NetworkSandbox(const NetworkSandbox&) = delete;
  NetworkSandbox& operator=(const NetworkSandbox&) = delete;

  const std::string& bridge_address() const { return bridge_address_; }
  std::string address(const std::string& node) const;  // "" when unknown
  std::string namespace_of(const std::string& node) const;
  // `ip netns exec <ns> argv...`
  std::vector<std::string> Wrap(const std::string& node,
                                const std::vector<std::string>& argv) const;

  // Drops pct% of node's packets (egress and/or ingress on its eth0).
  Status AddLoss(const std::string& tag, const std::string& node, double pct, bool egress,
                 bool ingress);
  // Drops traffic between node and peer (both namespaces).
  Status AddPartition(const std::string& tag, const std::string& node, const std::string& peer);
  // Takes node's bridge-side veth down (up = false) or up again.
  Status SetLinkUp(const std::string& node, bool up);
  // tbf on node's egress (eth0) and/or ingress (the bridge side of its veth).
  Status SetBandwidth(const std::string& node, double rate_kbit, bool egress, bool ingress);
  Status ClearBandwidth(const std::string& node);
  // In client's namespace: TCP to listener_ip:port goes to proxy_ip:proxy_port.
  Status AddRedirect(const std::string& tag, const std::string& client,
                     const std::string& listener_ip, int port, const std::string& proxy_ip,
                     int proxy_port);
  // TCP ports listening in node's namespace (`ss -ltn`).
  Result<std::vector<int>> ListeningPorts(const std::string& node) const;
  // Removes the nftables tables `tag` made in every namespace.
  Status RemoveRules(const std::string& tag);

  void Destroy();

 private:
  NetworkSandbox() = default;
  Status Nft(const std::string& node, const std::string& script);

  std::string prefix_;  // phx-<pid>
  std::string bridge_;
  std::string bridge_address_;
  struct Node {
    int index = 0;
    std::string ns;
    std::string host_veth;
    std::string address;
  };
  std::map<std::string, Node> nodes_;
  std::map<std::string, std::vector<std::string>> tables_;  // tag -> nodes holding phx_<tag>
  bool destroyed_ = false;
};

}  // namespace phalanx::launch
