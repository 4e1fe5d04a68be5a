// ps::Server behaviour in one process (tests/testutil/inprocess_cluster.h):
// a scheduler and servers on threads, workers as worker::Clients or raw
// sockets.

#include "ps/server.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "tests/testutil/inprocess_cluster.h"

namespace phalanx::ps {
namespace {

using testutil::InProcessCluster;
using testutil::InProcessClusterOptions;
using worker::PullResult;

constexpr uint32_t kDim = 2;

InProcessClusterOptions Options(int servers, int workers, bool synchronous) {
  InProcessClusterOptions o;
  o.servers = servers;
  o.workers = workers;
  o.server.synchronous = synchronous;
  o.server.round_timeout_ms = 20000;
  TableOptions t;
  t.dim = kDim;
  t.init = InitKind::kZeros;
  t.optimizer.learning_rate = 1.0f;
  o.server.tables = {t};
  return o;
}

// Sends `request` on `s` and returns the status its answer carries (Ok for a
// data reply), or why none came within 10 s.
Status Ask(Socket& s, const Message& request) {
  PHX_RETURN_IF_ERROR(s.Send(request));
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < until) {
    Received r = s.Recv(200);
    if (r.status.code() == StatusCode::kDeadlineExceeded) continue;
    PHX_RETURN_IF_ERROR(r.status);
    if (r.msg.header.request_id != request.header.request_id) return Internal("wrong request id");
    return r.msg.header.type == MsgType::kError ? StatusFromError(r.msg) : Status::Ok();
  }
  return DeadlineExceeded("no answer");
}

Message KeyOneRequest(MsgType type, int32_t sender, uint64_t id, uint32_t table) {
  return MakeDataMessage(
      type, sender, id, 0, table, kDim, Buffer::FromVector(std::vector<uint64_t>{1}),
      type == MsgType::kPush ? Buffer::FromVector(std::vector<float>{1, 1}) : Buffer());
}

TEST(ServerTest, SyncRoundOverTwoWorkersClosesAndAPullSeesTheUpdate) {
  InProcessCluster cluster(Options(1, 2, true));
  auto clients = cluster.ConnectWorkers();
  ASSERT_TRUE(clients.ok()) << clients.status().ToString();
  auto& w = *clients;
  const std::vector<uint64_t> keys = {11, 12};
  const std::vector<float> g0 = {1, 2, 3, 4};
  const std::vector<float> g1 = {3, 6, 5, 8};
  // The pull of version 1 waits for the round, which needs both pushes. A
  // client belongs to one thread (its ZeroMQ sockets do): worker 0 pushes and
  // then pulls on its own thread, worker 1 pushes from this one.
  std::vector<float> rows(keys.size() * kDim, -1.0f);
  auto pull = std::async(std::launch::async, [&] {
    PullResult pr;
    Status s = w[0]->Push(0, keys, kDim, g0.data(), 0);
    if (s.ok()) s = w[0]->Pull(0, keys, kDim, 1, rows.data(), &pr);
    return std::make_pair(s, pr.version);
  });
  ASSERT_TRUE(w[1]->Push(0, keys, kDim, g1.data(), 0).ok());
  auto [status, version] = pull.get();
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(version, 1);
  // Zeros minus lr 1 * the mean of the two gradients.
  EXPECT_EQ(rows, (std::vector<float>{-2, -4, -4, -6}));
}

// Two shards: each sends its partial to the round coordinator (the lower
// rank), which answers both with the plan; every key moves by the mean.
TEST(ServerTest, RoundAcrossTwoShardsGoesThroughTheCoordinator) {
  InProcessCluster cluster(Options(2, 2, true));
  auto clients = cluster.ConnectWorkers();
  ASSERT_TRUE(clients.ok()) << clients.status().ToString();
  auto& w = *clients;
  std::vector<uint64_t> keys(32);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = i;
  std::vector<float> g0(keys.size() * kDim, 1.0f);
  std::vector<float> g1(keys.size() * kDim, 3.0f);
  auto push1 =
      std::async(std::launch::async, [&] { return w[1]->Push(0, keys, kDim, g1.data(), 0); });
  ASSERT_TRUE(w[0]->Push(0, keys, kDim, g0.data(), 0).ok());
  ASSERT_TRUE(push1.get().ok());
  std::vector<float> rows(keys.size() * kDim);
  PullResult pr;
  Status s = w[0]->Pull(0, keys, kDim, 1, rows.data(), &pr);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(pr.version, 1);  // the smallest version among both shards
  EXPECT_EQ(rows, std::vector<float>(keys.size() * kDim, -2.0f));
  for (int i = 0; i < 2; ++i) {
    // Both shards hold some of the keys and closed the round (/status is
    // refreshed every 64 turns of the request loop).
    nlohmann::json table;
    for (int tries = 0; tries < 100; ++tries) {
      table = nlohmann::json::parse(cluster.server(i)->StatusJson())["tables"][0];
      if (table["version"].get<int>() == 1) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_GT(table["rows"].get<int>(), 0) << i;
    EXPECT_EQ(table["version"].get<int>(), 1) << i;
  }
}

TEST(ServerTest, SecondPushOfTheSameRoundIsRefused) {
  InProcessCluster cluster(Options(1, 2, true));
  auto clients = cluster.ConnectWorkers();
  ASSERT_TRUE(clients.ok()) << clients.status().ToString();
  const std::vector<uint64_t> keys = {1};
  const std::vector<float> g = {1, 1};
  ASSERT_TRUE((*clients)[0]->Push(0, keys, kDim, g.data(), 0).ok());
  Status again = (*clients)[0]->Push(0, keys, kDim, g.data(), 0);
  EXPECT_EQ(again.code(), StatusCode::kAlreadyExists) << again.ToString();
}

TEST(ServerTest, PushFromAnUnregisteredNodeIsRefused) {
  InProcessCluster cluster(Options(1, 1, true));
  auto clients = cluster.ConnectWorkers();
  ASSERT_TRUE(clients.ok()) << clients.status().ToString();
  auto raw = cluster.ConnectRaw(0);
  ASSERT_TRUE(raw.ok()) << raw.status().ToString();
  Status s = Ask(**raw, KeyOneRequest(MsgType::kPush, /*sender=*/9999, 42, 0));
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated) << s.ToString();
}

TEST(ServerTest, UnknownTableAndOffPeeksAreRefused) {
  InProcessCluster cluster(Options(1, 1, true));
  auto clients = cluster.ConnectWorkers();
  ASSERT_TRUE(clients.ok()) << clients.status().ToString();
  auto raw = cluster.ConnectRaw(0);
  ASSERT_TRUE(raw.ok()) << raw.status().ToString();
  const int32_t me = (*clients)[0]->id();
  Status s = Ask(**raw, KeyOneRequest(MsgType::kPull, me, 1, /*table=*/7));
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  s = Ask(**raw, KeyOneRequest(MsgType::kHonestPeek, me, 2, 0));
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_TRUE(Ask(**raw, KeyOneRequest(MsgType::kPull, me, 3, 0)).ok());
}

TEST(ServerTest, AsyncPushIsAppliedAtOnce) {
  InProcessCluster cluster(Options(1, 1, false));
  auto clients = cluster.ConnectWorkers();
  ASSERT_TRUE(clients.ok()) << clients.status().ToString();
  auto& w = (*clients)[0];
  const std::vector<uint64_t> keys = {5};
  const std::vector<float> g = {1, -1};
  ASSERT_TRUE(w->Push(0, keys, kDim, g.data(), 0).ok());
  std::vector<float> rows(kDim);
  PullResult pr;
  ASSERT_TRUE(w->Pull(0, keys, kDim, 0, rows.data(), &pr).ok());
  EXPECT_EQ(pr.version, 1);
  EXPECT_EQ(rows, (std::vector<float>{-1, 1}));
}

}  // namespace
}  // namespace phalanx::ps

namespace phalanx::ps {
namespace {

TEST(ServerStartTest, RuleThatCannotRunOnTheConfiguredWorkersIsRefusedBeforeRegistering) {
  for (auto [name, f] : {std::pair<const char*, int>{"krum", 3}, {"bulyan", 1}}) {
    ServerOptions o;
    o.scheduler_endpoint = "tcp://127.0.0.1:1";  // never reached: refused first
    o.register_timeout_ms = 500;
    o.tables.push_back(TableOptions{});
    o.aggregator.name = name;
    o.aggregator.f = f;
    o.num_workers = 4;
    auto s = Server::Create(o);
    ASSERT_FALSE(s.ok()) << name;
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument) << s.status().ToString();
    EXPECT_NE(s.status().ToString().find(name), std::string::npos) << s.status().ToString();
  }
}

}  // namespace
}  // namespace phalanx::ps
