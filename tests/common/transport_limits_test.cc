// A control-only socket (the scheduler's) makes ZeroMQ refuse any frame larger
// than a control body before buffering it, instead of accepting frames up to
// the 2 GiB value limit of a data socket.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/message.h"
#include "common/transport.h"

namespace phalanx {
namespace {

// Every message (well-formed or not) the router receives within `ms`.
std::vector<Received> Drain(Socket& router, int ms) {
  std::vector<Received> got;
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < until) {
    Received r = router.Recv(50);
    if (r.status.code() != StatusCode::kDeadlineExceeded) got.push_back(std::move(r));
  }
  return got;
}

TEST(TransportLimitsTest, ControlOnlySocketDropsAPeerSendingAnOversizedFrame) {
  auto router = Socket::Bind(Socket::Kind::kRouter, "tcp://127.0.0.1:0", ControlOnlyLimits());
  ASSERT_TRUE(router.ok()) << router.status().ToString();
  const std::string header = EncodeHeader(Header{});
  auto big = Socket::Connect(Socket::Kind::kDealer, (*router)->endpoint());
  ASSERT_TRUE(big.ok());
  // 8 MiB: over the 4 MiB control-body limit, far under a data socket's.
  ASSERT_TRUE((*big)->SendRaw({header, std::string(8 << 20, 'x')}).ok());
  std::vector<Received> from_big = Drain(**router, 700);
  EXPECT_TRUE(from_big.empty()) << "the oversized frame reached the application";

  auto small = Socket::Connect(Socket::Kind::kDealer, (*router)->endpoint());
  ASSERT_TRUE(small.ok());
  ASSERT_TRUE((*small)->SendRaw({header, "x"}).ok());
  std::vector<Received> from_small = Drain(**router, 700);
  EXPECT_EQ(from_small.size(), 1u) << "the router must keep serving other peers";
}

TEST(TransportLimitsTest, ControlOnlyLimitsRefuseDataPayloads) {
  WireLimits l = ControlOnlyLimits();
  EXPECT_EQ(l.max_keys, 0u);
  EXPECT_EQ(l.max_values, 0u);
  EXPECT_GT(l.max_body_bytes, 0u);
}

}  // namespace
}  // namespace phalanx
