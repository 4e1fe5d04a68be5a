#include "common/http_client.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>

namespace phalanx {
namespace {

using Clock = std::chrono::steady_clock;

// Closes the socket on every return path.
struct Socket {
  int fd = -1;
  ~Socket() {
    if (fd >= 0) close(fd);
  }
};

// Waits until fd is ready for `events`; false at the deadline.
bool WaitReady(int fd, short events, Clock::time_point deadline) {
  pollfd p{fd, events, 0};
  for (auto now = Clock::now(); now < deadline; now = Clock::now()) {
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    const int r = poll(&p, 1, static_cast<int>(wait.count()));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
  return false;
}

Status Connect(const std::string& host, int port, Clock::time_point deadline, Socket* s) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string where = host + ":" + std::to_string(port);
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0 || !found) {
    return Unavailable("cannot resolve " + where);
  }
  s->fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  const int r = s->fd < 0 ? -1 : connect(s->fd, found->ai_addr, found->ai_addrlen);
  freeaddrinfo(found);
  if (s->fd < 0) return Unavailable("socket failed");
  if (r != 0 && errno != EINPROGRESS) return Unavailable("cannot connect to " + where);
  if (r != 0) {
    if (!WaitReady(s->fd, POLLOUT, deadline)) return DeadlineExceeded("connect to " + where);
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return Unavailable("cannot connect to " + where);
  }
  return Status::Ok();
}

}  // namespace

Result<HttpReply> HttpGet(const std::string& host, int port, const std::string& path,
                          int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  Socket s;
  PHX_RETURN_IF_ERROR(Connect(host, port, deadline, &s));
  const std::string request =
      "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n";
  for (size_t sent = 0; sent < request.size();) {
    if (!WaitReady(s.fd, POLLOUT, deadline)) return DeadlineExceeded("sending GET " + path);
    const ssize_t n = send(s.fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) return Unavailable("send failed");
    if (n > 0) sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buf[8192];
  while (true) {
    if (!WaitReady(s.fd, POLLIN, deadline)) return DeadlineExceeded("reply to GET " + path);
    const ssize_t n = recv(s.fd, buf, sizeof(buf), 0);
    if (n == 0) break;
    if (n < 0 && errno != EAGAIN && errno != EINTR) break;  // reset: parse what came
    if (n > 0) raw.append(buf, static_cast<size_t>(n));
  }
  const size_t split = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.", 0) != 0 || raw.size() < 12 || split == std::string::npos) {
    return Unavailable("not an HTTP reply from " + host + ":" + std::to_string(port));
  }
  HttpReply reply;
  reply.status = std::atoi(raw.c_str() + 9);
  reply.body = raw.substr(split + 4);
  return reply;
}

}  // namespace phalanx
