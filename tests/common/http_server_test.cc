#include "common/http_server.h"

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>

#include "common/metrics.h"
#include "tests/testutil/loopback_tcp.h"

namespace phalanx {
namespace {

using RawClient = testutil::LoopbackTcp;

struct Reply {
  int status = 0;
  std::string headers;
  std::string body;
};

Reply Parse(const std::string& raw) {
  Reply r;
  if (raw.rfind("HTTP/1.", 0) != 0 || raw.size() < 12) return r;
  r.status = std::stoi(raw.substr(9, 3));
  size_t split = raw.find("\r\n\r\n");
  if (split == std::string::npos) return r;
  r.headers = raw.substr(0, split);
  r.body = raw.substr(split + 4);
  return r;
}

Reply Request(int port, const std::string& method, const std::string& target) {
  RawClient client(port);
  if (!client.connected()) return {};
  client.Send(method + " " + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  return Parse(client.ReadAll());
}

std::map<std::string, HttpHandler> TestHandlers(MetricsRegistry* registry) {
  return {
      {"/metrics",
       [registry] {
         return HttpResponse{200, "text/plain; version=0.0.4", registry->RenderPrometheus()};
       }},
      {"/status",
       [] {
         return HttpResponse{200, "application/json", R"({"ok":true})"};
       }},
      {"/throws", []() -> HttpResponse { throw std::runtime_error("boom"); }},
  };
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.GetCounter("phx_test_total", "A test counter.").Increment(7);
    auto server = HttpServer::Start("127.0.0.1", 0, TestHandlers(&registry_));
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
    ASSERT_GT(server_->port(), 0);
  }

  MetricsRegistry registry_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, ServesMetrics) {
  Reply r = Request(server_->port(), "GET", "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.headers.find("Content-Type: text/plain; version=0.0.4"), std::string::npos)
      << r.headers;
  EXPECT_EQ(r.body,
            "# HELP phx_test_total A test counter.\n# TYPE phx_test_total counter\n"
            "phx_test_total 7\n");
}

TEST_F(HttpServerTest, IgnoresQueryString) {
  Reply r = Request(server_->port(), "GET", "/status?verbose=1");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"ok":true})");
}

TEST_F(HttpServerTest, UnknownPathIs404) {
  EXPECT_EQ(Request(server_->port(), "GET", "/nope").status, 404);
  EXPECT_EQ(Request(server_->port(), "GET", "/").status, 404);
}

TEST_F(HttpServerTest, NonGetIs405) {
  Reply r = Request(server_->port(), "POST", "/metrics");
  EXPECT_EQ(r.status, 405);
  EXPECT_NE(r.headers.find("Allow: GET"), std::string::npos);
  EXPECT_EQ(Request(server_->port(), "DELETE", "/metrics").status, 405);
}

TEST_F(HttpServerTest, ThrowingHandlerIs500AndServerSurvives) {
  EXPECT_EQ(Request(server_->port(), "GET", "/throws").status, 500);
  EXPECT_EQ(Request(server_->port(), "GET", "/status").status, 200);
}

TEST_F(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  RawClient client(server_->port());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(
      client.Send("GET /status HTTP/1.1\r\nHost: x\r\n\r\n"
                  "GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  std::string raw = client.ReadAll();
  size_t first = raw.find("HTTP/1.1 200");
  ASSERT_NE(first, std::string::npos);
  EXPECT_NE(raw.find("HTTP/1.1 200", first + 1), std::string::npos) << raw;
}

TEST_F(HttpServerTest, OversizedHeaderIsRejected) {
  RawClient client(server_->port());
  ASSERT_TRUE(client.connected());
  client.Send("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(64 * 1024, 'a') +
              "\r\n\r\n");
  Reply r = Parse(client.ReadAll());
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(Request(server_->port(), "GET", "/status").status, 200);
}

TEST_F(HttpServerTest, OversizedBodyIsRejected) {
  RawClient client(server_->port());
  ASSERT_TRUE(client.connected());
  client.Send("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n" +
              std::string(1024, 'b'));
  Reply r = Parse(client.ReadAll());
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(Request(server_->port(), "GET", "/status").status, 200);
}

TEST_F(HttpServerTest, GarbageDoesNotCrashServer) {
  const std::string garbage[] = {
      std::string("\x00\x01\x02\xff\xfe\r\n\r\n", 9),
      "NOT HTTP AT ALL\r\n\r\n",
      "GET / HTTP/9.9\r\n\r\n",
      "GET /metrics HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
      "GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      std::string(100000, '\n'),
      "GET",  // then hang up mid-request
  };
  for (const std::string& bytes : garbage) {
    RawClient client(server_->port());
    ASSERT_TRUE(client.connected());
    client.Send(bytes);
    if (bytes == "GET") continue;  // close without reading
    Reply r = Parse(client.ReadAll());
    // Either a 4xx or a closed connection is acceptable; never a 2xx/5xx.
    if (r.status != 0) {
      EXPECT_GE(r.status, 400);
      EXPECT_LT(r.status, 500);
    }
  }
  Reply r = Request(server_->port(), "GET", "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("phx_test_total 7"), std::string::npos);
}

TEST_F(HttpServerTest, StopsQuicklyWithIdleClientConnected) {
  RawClient idle(server_->port());
  ASSERT_TRUE(idle.connected());
  RawClient partial(server_->port());
  ASSERT_TRUE(partial.connected());
  partial.Send("GET /metrics HTTP/1.1\r\nHo");
  // Make sure the server has accepted both before stopping.
  EXPECT_EQ(Request(server_->port(), "GET", "/status").status, 200);
  auto start = std::chrono::steady_clock::now();
  server_.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  // The idle client sees the connection closed rather than hanging.
  EXPECT_EQ(idle.ReadAll(), "");
}

TEST(HttpServerStartTest, BindConflictIsUnavailableWithAddress) {
  auto first = HttpServer::Start("127.0.0.1", 0, {});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  int port = (*first)->port();
  auto second = HttpServer::Start("127.0.0.1", port, {});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << second.status().message();
}

TEST(HttpServerStartTest, RejectsBadPortAndHost) {
  EXPECT_EQ(HttpServer::Start("127.0.0.1", 70000, {}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(HttpServer::Start("no-such-host.invalid", 0, {}).status().code(),
            StatusCode::kUnavailable);
}

TEST(HttpServerStartTest, ResolvesLocalhostName) {
  auto server = HttpServer::Start("localhost", 0, {{"/x", [] { return HttpResponse{}; }}});
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  // localhost may resolve to ::1 first; only check that it bound.
  EXPECT_GT((*server)->port(), 0);
}

TEST(HttpServerStartTest, StartStopManyTimes) {
  for (int i = 0; i < 50; ++i) {
    auto server = HttpServer::Start("127.0.0.1", 0,
                                    {{"/i", [i] {
                                        return HttpResponse{200, "text/plain", std::to_string(i)};
                                      }}});
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    if (i % 10 == 0) {
      Reply r = Request((*server)->port(), "GET", "/i");
      EXPECT_EQ(r.status, 200);
      EXPECT_EQ(r.body, std::to_string(i));
    }
  }
}

TEST(HttpServerStartTest, RebindsSamePortAfterStop) {
  int port = 0;
  {
    auto server = HttpServer::Start("127.0.0.1", 0, {{"/a", [] { return HttpResponse{}; }}});
    ASSERT_TRUE(server.ok());
    port = (*server)->port();
    EXPECT_EQ(Request(port, "GET", "/a").status, 200);  // leaves a TIME_WAIT socket
  }
  auto again = HttpServer::Start("127.0.0.1", port, {});
  EXPECT_TRUE(again.ok()) << again.status().ToString();
}

TEST(HttpServerStartTest, InvalidHandlerStatusIs500) {
  auto server = HttpServer::Start("127.0.0.1", 0, {{"/bad", [] {
                                                      return HttpResponse{42, "text/plain", ""};
                                                    }}});
  ASSERT_TRUE(server.ok());
  EXPECT_EQ(Request((*server)->port(), "GET", "/bad").status, 500);
}

}  // namespace
}  // namespace phalanx
