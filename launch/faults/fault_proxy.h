#pragma once
// FaultProxy: a TCP proxy with fault "toxics", in the spirit of Toxiproxy.
// Each route listens on its own port and forwards every accepted connection
// to a fixed target; per direction it can delay data (fixed + uniform jitter,
// order kept, as on a real link), throttle bandwidth and stall (a partition:
// nothing is forwarded, data waits, and flows again afterwards); per route it
// can reset every open connection (RST) and reset new ones while refusing.
//
// Threading: one Boost.Asio io_context thread, owned by the proxy, does all
// I/O; the public methods are thread-safe (they post to that thread and, for
// the setters, return once the change is in place). Destruction closes every
// connection and joins the thread. No Asio types leak from this header.

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"

namespace phalanx::launch {

// What one direction of a route does to the bytes that pass.
struct Toxics {
  double delay_ms = 0;   // every chunk waits this long ...
  double jitter_ms = 0;  // ... plus uniform [0, jitter_ms]
  double rate_kbit = 0;  // bandwidth limit; 0 = none
  bool stall = false;    // forward nothing until cleared
};

struct ProxyStats {
  uint64_t accepted = 0;
  uint64_t resets = 0;      // connections reset by ResetConnections or refusal
  uint64_t bytes_up = 0;    // client -> target
  uint64_t bytes_down = 0;  // target -> client
  int open = 0;
};

class FaultProxy {
 public:
  static Result<std::unique_ptr<FaultProxy>> Start();
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  // Listens on listen_host:listen_port (0 = any free port) and forwards to
  // target_host:target_port. Returns the route id; port() gives the port.
  Result<int> AddRoute(const std::string& listen_host, int listen_port,
                       const std::string& target_host, int target_port);
  int port(int route) const;
  // Up = client -> target, down = target -> client. Applies to data read from
  // now on (data already queued keeps its due time).
  void SetToxics(int route, const Toxics& up, const Toxics& down);
  // Resets (RST) every open connection of the route.
  void ResetConnections(int route);
  // While on, new connections are reset as soon as they are accepted.
  void SetRefuse(int route, bool on);
  ProxyStats stats(int route) const;

  class Impl;

 private:
  explicit FaultProxy(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace phalanx::launch
