// Real TCP through the fault proxy on loopback: bytes arrive intact and in
// order, delays are at least what was configured (a lower bound, so a loaded
// machine cannot make it fail), and resets reach the client.

#include "launch/faults/fault_proxy.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

namespace phalanx::launch {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Echoes every connection's bytes back until EOF; one thread per connection.
class EchoServer {
 public:
  EchoServer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(fd_, 16);
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      while (true) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        workers_.emplace_back([c] {
          char buf[65536];
          ssize_t n;
          while ((n = read(c, buf, sizeof(buf))) > 0) {
            ssize_t off = 0;
            while (off < n) {
              ssize_t w = write(c, buf + off, static_cast<size_t>(n - off));
              if (w <= 0) break;
              off += w;
            }
          }
          close(c);
        });
      }
    });
  }
  ~EchoServer() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
    for (auto& t : workers_) t.join();
  }
  int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
  std::thread thread_;
  std::vector<std::thread> workers_;
};

int Connect(int port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{10, 0};  // no test waits forever
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  int one = 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(s);
    return -1;
  }
  return s;
}

// Reads exactly n bytes; false on EOF or error (errno kept).
bool ReadAll(int s, char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(s, buf + got, n - got);
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

// Sends `msg` and waits for its echo; returns the round trip in ms (-1 on error).
double RoundTrip(int s, const std::string& msg) {
  auto t0 = Clock::now();
  if (write(s, msg.data(), msg.size()) != static_cast<ssize_t>(msg.size())) return -1;
  std::string back(msg.size(), '\0');
  if (!ReadAll(s, back.data(), back.size()) || back != msg) return -1;
  return Ms(Clock::now() - t0);
}

struct ProxyFixture : ::testing::Test {
  void SetUp() override {
    auto p = FaultProxy::Start();
    ASSERT_TRUE(p.ok());
    proxy = std::move(*p);
    auto r = proxy->AddRoute("127.0.0.1", 0, "127.0.0.1", echo.port());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    route = *r;
    port = proxy->port(route);
    ASSERT_GT(port, 0);
  }
  EchoServer echo;
  std::unique_ptr<FaultProxy> proxy;
  int route = 0;
  int port = 0;
};

TEST_F(ProxyFixture, ForwardsBytesIntactAndInOrder) {
  Toxics jittery;
  jittery.jitter_ms = 3;  // chunks get different delays but must not reorder
  proxy->SetToxics(route, jittery, jittery);
  int s = Connect(port);
  ASSERT_GE(s, 0);
  std::vector<char> data(1 << 20);
  std::mt19937 rng(7);
  for (auto& c : data) c = static_cast<char>(rng());
  std::thread writer([&] {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t w = write(s, data.data() + off, std::min<size_t>(8192, data.size() - off));
      if (w <= 0) return;
      off += static_cast<size_t>(w);
    }
  });
  std::vector<char> back(data.size());
  bool ok = ReadAll(s, back.data(), back.size());
  writer.join();
  close(s);
  ASSERT_TRUE(ok);
  EXPECT_TRUE(back == data);
  auto st = proxy->stats(route);
  EXPECT_EQ(st.accepted, 1u);
  EXPECT_EQ(st.bytes_up, data.size());
  EXPECT_EQ(st.bytes_down, data.size());
}

TEST_F(ProxyFixture, DelayIsAtLeastTheConfiguredOnePerDirection) {
  int s = Connect(port);
  ASSERT_GE(s, 0);
  ASSERT_GE(RoundTrip(s, "warm-up"), 0);
  Toxics up, down;
  up.delay_ms = 60;
  proxy->SetToxics(route, up, down);
  for (int i = 0; i < 3; ++i) {
    double rtt = RoundTrip(s, "ping" + std::to_string(i));
    ASSERT_GE(rtt, 0);
    EXPECT_GE(rtt, 60.0) << "one-way delay of 60 ms not applied";
  }
  down.delay_ms = 40;
  down.jitter_ms = 10;  // adds [0, 10]: never below the fixed part
  proxy->SetToxics(route, up, down);
  for (int i = 0; i < 3; ++i) {
    double rtt = RoundTrip(s, "pong" + std::to_string(i));
    ASSERT_GE(rtt, 0);
    EXPECT_GE(rtt, 100.0) << "delays of both directions must add up";
  }
  close(s);
}

TEST_F(ProxyFixture, ThrottleBoundsTheRate) {
  Toxics up, down;
  down.rate_kbit = 400;  // 50 000 bytes/s back to the client
  proxy->SetToxics(route, up, down);
  int s = Connect(port);
  ASSERT_GE(s, 0);
  std::string msg(20000, 'x');
  double ms = RoundTrip(s, msg);
  close(s);
  ASSERT_GE(ms, 0);
  // 20 000 bytes at 50 000 B/s, less the first 5 ms slice, take >= 395 ms.
  EXPECT_GE(ms, 350.0);
}

TEST_F(ProxyFixture, StallHoldsDataUntilCleared) {
  int s = Connect(port);
  ASSERT_GE(s, 0);
  ASSERT_GE(RoundTrip(s, "before"), 0);
  Toxics stalled;
  stalled.stall = true;
  proxy->SetToxics(route, stalled, Toxics{});
  ASSERT_EQ(write(s, "held", 4), 4);
  pollfd p{s, POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 300), 0) << "data crossed a stalled direction";
  proxy->SetToxics(route, Toxics{}, Toxics{});
  char buf[4];
  ASSERT_TRUE(ReadAll(s, buf, 4));
  EXPECT_EQ(std::string(buf, 4), "held");
  close(s);
}

TEST_F(ProxyFixture, ResetIsVisibleToTheClient) {
  int s = Connect(port);
  ASSERT_GE(s, 0);
  ASSERT_GE(RoundTrip(s, "hello"), 0);
  proxy->ResetConnections(route);
  char buf[16];
  ssize_t n = read(s, buf, sizeof(buf));
  int err = errno;
  EXPECT_EQ(n, -1);
  EXPECT_EQ(err, ECONNRESET) << strerror(err);
  close(s);
  EXPECT_EQ(proxy->stats(route).resets, 1u);

  // While refusing, new connections are reset at once ...
  proxy->SetRefuse(route, true);
  s = Connect(port);
  ASSERT_GE(s, 0);
  n = read(s, buf, sizeof(buf));
  err = errno;
  EXPECT_EQ(n, -1);
  EXPECT_EQ(err, ECONNRESET) << strerror(err);
  close(s);
  // ... and served again afterwards.
  proxy->SetRefuse(route, false);
  s = Connect(port);
  ASSERT_GE(s, 0);
  EXPECT_GE(RoundTrip(s, "again"), 0);
  close(s);
}

TEST(FaultProxyTest, DeadTargetResetsTheClient) {
  // A port nobody listens on: bind, read the port, close.
  int tmp = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(tmp, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(tmp, reinterpret_cast<sockaddr*>(&a), &len);
  int dead_port = ntohs(a.sin_port);
  close(tmp);
  auto proxy = FaultProxy::Start();
  ASSERT_TRUE(proxy.ok());
  auto r = (*proxy)->AddRoute("127.0.0.1", 0, "127.0.0.1", dead_port);
  ASSERT_TRUE(r.ok());
  int s = Connect((*proxy)->port(*r));
  ASSERT_GE(s, 0);
  char buf[4];
  ssize_t n = read(s, buf, sizeof(buf));
  int err = errno;
  EXPECT_EQ(n, -1);
  EXPECT_EQ(err, ECONNRESET) << strerror(err);
  close(s);
}

TEST(FaultProxyTest, RefusesBadAddresses) {
  auto proxy = FaultProxy::Start();
  ASSERT_TRUE(proxy.ok());
  auto r = (*proxy)->AddRoute("not-an-ip", 0, "127.0.0.1", 80);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  r = (*proxy)->AddRoute("127.0.0.1", 0, "127.0.0.1", 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace phalanx::launch
