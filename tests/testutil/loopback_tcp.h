#pragma once
// A blocking loopback TCP connection with receive and send deadlines, for tests
// that speak raw bytes to a server (HTTP edge cases, slow clients): a broken
// server then fails the test instead of hanging it.
// Owned by the test thread that made it.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

namespace phalanx::testutil {

class LoopbackTcp {
 public:
  explicit LoopbackTcp(int port, int timeout_ms = 5000) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~LoopbackTcp() {
    if (fd_ >= 0) ::close(fd_);
  }
  LoopbackTcp(const LoopbackTcp&) = delete;
  LoopbackTcp& operator=(const LoopbackTcp&) = delete;

  bool connected() const { return connected_; }

  // Sends everything; false if the peer hung up first.
  bool Send(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  // Everything until the server closes the connection or the deadline passes.
  std::string ReadAll() {
    std::string out;
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

  // "closed": the server hung up; "open": nothing arrived within the deadline;
  // "data": a byte arrived (and was consumed).
  std::string State() {
    char c;
    ssize_t n = ::recv(fd_, &c, 1, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) return "closed";
    return n < 0 ? "open" : "data";
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

}  // namespace phalanx::testutil
