#pragma once
// ZeroMQ transport for Phalanx messages (ZeroMQ types stay in transport.cc).
//
// A Socket is either a ROUTER (a server's or the scheduler's bound endpoint;
// every received message names its peer) or a DEALER (a client connection).
// Sending hands payload Buffers to ZeroMQ without copying them. Receiving
// decodes and validates each message; malformed input comes back as a
// non-OK status together with the peer so the owner can answer or count it.
//
// Thread-safety: a Socket belongs to the one thread that created it (ZeroMQ's
// rule). Different sockets may be used from different threads.

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/message.h"
#include "common/status.h"

namespace phalanx {

struct Received {
  std::string peer;  // ROUTER only: the sender's routing id
  Status status;     // OK, or why the bytes were rejected
  Message msg;
};

class Socket {
 public:
  enum class Kind { kRouter, kDealer };

  // Binds `endpoint` (e.g. "tcp://127.0.0.1:0" for a free port).
  static Result<std::unique_ptr<Socket>> Bind(Kind kind, const std::string& endpoint,
                                              const WireLimits& limits = {});
  // Connects to `endpoint`; the connection is made in the background.
  static Result<std::unique_ptr<Socket>> Connect(Kind kind, const std::string& endpoint,
                                                 const WireLimits& limits = {});
  virtual ~Socket() = default;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  // The bound endpoint with the real port, e.g. "tcp://127.0.0.1:40123".
  virtual std::string endpoint() const = 0;
  virtual int port() const = 0;

  // Sends a message; `peer` is required for ROUTER sockets. Unavailable when
  // the peer is unknown or gone, DeadlineExceeded when the queue stays full.
  virtual Status Send(const Message& msg, const std::string& peer = "") = 0;
  // Sends raw frames, bypassing encoding (tests and fuzzing only).
  virtual Status SendRaw(const std::vector<std::string>& frames, const std::string& peer = "") = 0;

  // Waits up to timeout_ms for one message. DeadlineExceeded (in the result's
  // status, with an empty peer) when none arrived. With timeout_ms <= 0 it
  // only takes a message that is already queued (no poll system call).
  virtual Received Recv(int timeout_ms) = 0;

 protected:
  Socket() = default;
};

// Waits until one of `sockets` is readable or timeout_ms passes. Returns one
// flag per socket.
Result<std::vector<bool>> PollReadable(std::span<Socket* const> sockets, int timeout_ms);

// True for 127.0.0.0/8, ::1 and "localhost": traffic that never leaves the host.
bool IsLoopbackHost(const std::string& host);

// "tcp://host:port".
std::string TcpEndpoint(const std::string& host, int port);

}  // namespace phalanx
