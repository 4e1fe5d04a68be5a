// Slow and idle HTTP clients (slowloris) must not lock the monitoring page
// out: request deadlines, idle timeouts and eviction at the connection cap.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/http_client.h"
#include "common/http_server.h"
#include "tests/testutil/loopback_tcp.h"

namespace phalanx {
namespace {

using Clock = std::chrono::steady_clock;

using Conn = testutil::LoopbackTcp;

std::map<std::string, HttpHandler> MetricsPage() {
  return {{"/metrics", [] { return HttpResponse{200, "text/plain", "phalanx_up 1\n"}; }}};
}

// One complete GET over a fresh connection: true when it was answered 200.
bool GetMetrics(int port) {
  auto reply = HttpGet("127.0.0.1", port, "/metrics", 3000);
  return reply.ok() && reply->status == 200;
}

TEST(HttpSlowClientsTest, MetricsAnswersUnder200SlowConnections) {
  auto server = HttpServer::Start("127.0.0.1", 0, MetricsPage());
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  const int port = (*server)->port();
  // 200 slowloris connections: a request line and then a header every
  // 100 ms, never the blank line that ends the request.
  std::vector<std::unique_ptr<Conn>> slow;
  for (int i = 0; i < 200; ++i) {
    slow.push_back(std::make_unique<Conn>(port, 100));
    ASSERT_TRUE(slow.back()->connected());
    slow.back()->Send("GET /metrics HTTP/1.1\r\n");
  }
  std::atomic<bool> stop{false};
  std::thread trickle([&] {
    while (!stop) {
      for (auto& c : slow) c->Send("X-a: b\r\n");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  int answered = 0;
  for (int i = 0; i < 20; ++i) answered += GetMetrics(port) ? 1 : 0;
  stop = true;
  trickle.join();
  EXPECT_EQ(answered, 20);
}

TEST(HttpSlowClientsTest, TricklingRequestIsCutAtItsDeadline) {
  HttpLimits limits;
  limits.request_deadline_ms = 300;
  auto server = HttpServer::Start("127.0.0.1", 0, MetricsPage(), limits);
  ASSERT_TRUE(server.ok());
  Conn c((*server)->port(), 100);
  ASSERT_TRUE(c.Send("GET /metrics HTTP/1.1\r\n"));
  auto start = Clock::now();
  std::string state = "open";
  // A byte every 100 ms keeps an idle timeout from firing, not a deadline.
  while (state == "open" && Clock::now() - start < std::chrono::seconds(5)) {
    c.Send("X");
    state = c.State();
  }
  EXPECT_EQ(state, "closed");
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
}

TEST(HttpSlowClientsTest, IdleKeepAliveConnectionIsDroppedAfterIdleTimeout) {
  HttpLimits limits;
  limits.idle_timeout_ms = 200;
  auto server = HttpServer::Start("127.0.0.1", 0, MetricsPage(), limits);
  ASSERT_TRUE(server.ok());
  Conn c((*server)->port(), 2000);
  ASSERT_TRUE(c.Send("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n"));  // keep-alive
  auto start = Clock::now();
  std::string reply = c.ReadAll();  // the reply, then the close at the idle timeout
  EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply;
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(1500));
}

TEST(HttpSlowClientsTest, AtTheCapIdleConnectionsGoFirst) {
  HttpLimits limits;
  limits.max_connections = 2;
  auto server = HttpServer::Start("127.0.0.1", 0, MetricsPage(), limits);
  ASSERT_TRUE(server.ok());
  const int port = (*server)->port();
  Conn idle(port, 300);
  ASSERT_TRUE(idle.connected());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  Conn busy(port, 300);  // mid-request, newer but doing real work
  ASSERT_TRUE(busy.Send("GET /metrics HTTP/1.1\r\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(GetMetrics(port));
  EXPECT_EQ(idle.State(), "closed");
  EXPECT_EQ(busy.State(), "open");
  // The request in progress still completes.
  ASSERT_TRUE(busy.Send("Host: t\r\nConnection: close\r\n\r\n"));
  EXPECT_EQ(busy.ReadAll().rfind("HTTP/1.1 200", 0), 0u);
}

TEST(HttpSlowClientsTest, RejectsNonPositiveLimits) {
  HttpLimits limits;
  limits.max_connections = 0;
  EXPECT_EQ(HttpServer::Start("127.0.0.1", 0, MetricsPage(), limits).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace phalanx
