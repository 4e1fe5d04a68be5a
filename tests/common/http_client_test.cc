#include "common/http_client.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "common/http_server.h"

namespace phalanx {
namespace {

// A loopback TCP socket bound to a free port (listening when `listen_too`);
// returns the descriptor and sets *port.
int BoundSocket(bool listen_too, int* port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return -1;
  if (listen_too && listen(fd, 4) != 0) return -1;
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

class HttpClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server =
        HttpServer::Start("127.0.0.1", 0,
                          {{"/status",
                            [] {
                              return HttpResponse{200, "application/json", R"({"ok":true})"};
                            }},
                           {"/big", [] {
                              return HttpResponse{200, "text/plain", std::string(200000, 'x')};
                            }}});
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
  }
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpClientTest, GetsStatusAndBody) {
  auto r = HttpGet("127.0.0.1", server_->port(), "/status", 5000);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, R"({"ok":true})");
}

TEST_F(HttpClientTest, ResolvesNames) {
  auto r = HttpGet("localhost", server_->port(), "/status", 5000);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
}

TEST_F(HttpClientTest, ReadsLargeBodies) {
  auto r = HttpGet("127.0.0.1", server_->port(), "/big", 5000);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->body.size(), 200000u);
}

TEST_F(HttpClientTest, ReportsErrorStatus) {
  auto r = HttpGet("127.0.0.1", server_->port(), "/nope", 5000);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 404);
}

TEST(HttpClient, RefusedConnectionIsUnavailable) {
  // A port that was just free: nothing listens there.
  int port = 0;
  int fd = BoundSocket(false, &port);
  ASSERT_GE(fd, 0);
  close(fd);
  auto r = HttpGet("127.0.0.1", port, "/status", 2000);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
}

TEST(HttpClient, SilentServerHitsTheDeadline) {
  // Listens (the kernel completes the handshake) but never answers.
  int port = 0;
  int fd = BoundSocket(true, &port);
  ASSERT_GE(fd, 0);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = HttpGet("127.0.0.1", port, "/status", 300);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  close(fd);
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded) << r.status().ToString();
  EXPECT_LT(ms, 3000);
}

}  // namespace
}  // namespace phalanx
