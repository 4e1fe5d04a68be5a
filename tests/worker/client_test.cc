// worker::Client against real servers: deduplication, routing over several
// shards and the scatter of replies into the caller's output, checked value
// by value (async mode, SGD with learning rate 1 and momentum 0.5: a row's
// first push of g moves it by exactly -g, while two separate steps of g1 and
// g2 would move it by -(1.5 g1 + g2), so summing repeats is observable).

#include "worker/client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <map>
#include <vector>

#include "common/control.h"
#include "tests/testutil/process_cluster.h"

namespace phalanx {
namespace {

using testutil::ProcessCluster;

constexpr uint32_t kTable = 1;  // the embedding table
constexpr uint32_t kDim = 16;

class ClientClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = std::make_unique<ProcessCluster>(
        "client", 2, 1,
        std::vector<std::string>{"cluster.mode=async", "optimizer.kind=sgd",
                                 "optimizer.learning_rate=1.0", "optimizer.momentum=0.5",
                                 "model.embedding_dim=16"});
    ASSERT_FALSE(cluster_->endpoint().empty());
    worker::ClientOptions o;
    o.scheduler_endpoint = cluster_->endpoint();
    o.request_timeout_ms = 20000;
    o.checksum = ChecksumMode::kAlways;  // exercise the checksummed path too
    auto c = worker::Client::Create(o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(c).value();
    ASSERT_EQ(client_->view().servers.size(), 2u);
  }

  std::vector<float> Pull(const std::vector<uint64_t>& keys, bool unique) {
    std::vector<float> out(keys.size() * kDim, -1.0f);
    Status s = client_->Pull(kTable, keys, kDim, 0, out.data(), nullptr, unique);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }

  std::unique_ptr<ProcessCluster> cluster_;
  std::unique_ptr<worker::Client> client_;
};

TEST_F(ClientClusterTest, RepeatedKeysArePulledOnceAndSummedOnPush) {
  std::vector<uint64_t> distinct;
  for (uint64_t k = 0; k < 300; ++k) distinct.push_back(k * 7919 + 3);
  // Repeats scattered through the request, some several times.
  std::vector<uint64_t> keys = distinct;
  for (int i = 0; i < 100; ++i)
    keys.insert(keys.begin() + (i * 37) % keys.size(), distinct[i % 13]);

  const std::vector<float> base = Pull(distinct, true);
  std::map<uint64_t, const float*> row_of;
  for (size_t i = 0; i < distinct.size(); ++i) row_of[distinct[i]] = base.data() + i * kDim;
  // A pull with repeats fills every position with its key's row.
  const std::vector<float> got = Pull(keys, false);
  for (size_t i = 0; i < keys.size(); ++i) {
    for (uint32_t c = 0; c < kDim; ++c) {
      ASSERT_EQ(got[i * kDim + c], row_of[keys[i]][c]) << "position " << i;
    }
  }

  // Push with repeats: each key moves by minus the sum of its rows.
  std::vector<float> grads(keys.size() * kDim);
  std::map<uint64_t, std::vector<double>> sum;
  for (size_t i = 0; i < keys.size(); ++i) {
    auto& s = sum[keys[i]];
    s.resize(kDim, 0.0);
    for (uint32_t c = 0; c < kDim; ++c) {
      grads[i * kDim + c] = 0.001f * static_cast<float>((i % 11) + c);
      s[c] += grads[i * kDim + c];
    }
  }
  ASSERT_TRUE(client_->Push(kTable, keys, kDim, grads.data(), 0, false).ok());
  const std::vector<float> after = Pull(distinct, true);
  for (size_t i = 0; i < distinct.size(); ++i) {
    for (uint32_t c = 0; c < kDim; ++c) {
      EXPECT_NEAR(after[i * kDim + c], base[i * kDim + c] - sum[distinct[i]][c], 1e-5)
          << "key " << distinct[i];
    }
  }
}

TEST_F(ClientClusterTest, UniqueKeysRouteToBothShardsAndComeBackInOrder) {
  std::vector<uint64_t> keys;
  for (uint64_t k = 0; k < 5000; ++k) keys.push_back(k * 104729 + 11);
  const std::vector<float> base = Pull(keys, true);
  // The same rows pulled one by one agree with the batched scatter.
  for (size_t i = 0; i < keys.size(); i += 499) {
    const std::vector<float> one = Pull({keys[i]}, true);
    for (uint32_t c = 0; c < kDim; ++c) ASSERT_EQ(one[c], base[i * kDim + c]) << "key " << i;
  }
  std::vector<float> grads(keys.size() * kDim);
  for (size_t i = 0; i < grads.size(); ++i) grads[i] = 1e-4f * static_cast<float>(i % 97);
  ASSERT_TRUE(client_->Push(kTable, keys, kDim, grads.data(), 0, true, true).ok());
  const std::vector<float> after = Pull(keys, true);
  for (size_t i = 0; i < after.size(); ++i) {
    ASSERT_NEAR(after[i], base[i] - grads[i], 1e-6) << "value " << i;
  }
  // An empty pull completes at once.
  EXPECT_TRUE(client_->Pull(kTable, {}, kDim, 0, nullptr).ok());
}

// Requests larger than max_part_bytes go out as parts (pulls always, pushes
// with split_pushes): the caller sees the same rows, a split push moves each
// row by exactly one step and each shard's version by exactly one.
TEST_F(ClientClusterTest, PartedRequestsAgreeWithWholeOnes) {
  worker::ClientOptions o;
  o.scheduler_endpoint = cluster_->endpoint();
  o.request_timeout_ms = 20000;
  o.max_part_bytes = 20 * kDim * sizeof(float) + 7;  // 20 rows per part
  o.split_pushes = true;
  auto c = worker::Client::Create(o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  std::unique_ptr<worker::Client> parted = std::move(c).value();

  std::vector<uint64_t> keys;
  for (uint64_t k = 0; k < 1000; ++k) keys.push_back(k * 15485863 + 5);
  // Keys of shard 0 only (the one-shard paths), and all keys with repeats.
  const ClusterView view = parted->view();
  std::vector<uint64_t> shard0;
  for (uint64_t k : keys) {
    if (view.slot_owner[SlotOfKey(k, view.num_slots)] == 0) shard0.push_back(k);
  }
  ASSERT_GT(shard0.size(), 100u);
  std::vector<uint64_t> repeated = keys;
  for (int i = 0; i < 50; ++i) repeated.push_back(keys[(i * 31) % keys.size()]);

  for (const auto* ks : {&keys, &shard0, &repeated}) {
    const std::vector<float> whole = Pull(*ks, ks != &repeated);
    std::vector<float> got(ks->size() * kDim, -1.0f);
    ASSERT_TRUE(parted->Pull(kTable, *ks, kDim, 0, got.data(), nullptr, ks != &repeated).ok());
    ASSERT_EQ(got, whole);
  }

  // Fresh keys for the two-shard push: a row's second step would carry momentum.
  std::vector<uint64_t> fresh;
  for (uint64_t k = 0; k < 1000; ++k) fresh.push_back(k * 15485863 + 6);
  for (const auto* ks : {&shard0, &fresh}) {
    worker::PullResult before_v, after_v;
    const std::vector<float> before = Pull(*ks, true);
    std::vector<float> tmp(ks->size() * kDim);
    ASSERT_TRUE(parted->Pull(kTable, *ks, kDim, 0, tmp.data(), &before_v, true).ok());
    std::vector<float> grads(ks->size() * kDim);
    for (size_t i = 0; i < grads.size(); ++i) grads[i] = 1e-3f * static_cast<float>(i % 89);
    Status st = parted->Push(kTable, *ks, kDim, grads.data(), 0, /*all_servers=*/true, true);
    ASSERT_TRUE(st.ok()) << st.ToString();
    const std::vector<float> after = Pull(*ks, true);
    // First push of a row with momentum: exactly -g, once.
    for (size_t i = 0; i < after.size(); ++i) {
      ASSERT_NEAR(after[i], before[i] - grads[i], 1e-6)
          << "value " << i << " of " << after.size() << " moved by " << after[i] - before[i];
    }
    ASSERT_TRUE(parted->Pull(kTable, *ks, kDim, 0, tmp.data(), &after_v, true).ok());
    EXPECT_EQ(after_v.version, before_v.version + 1) << "one split push = one version";
  }
}

// A synchronous round takes one push per worker: a push split into parts is
// refused with an error that says why.
TEST(ClientSyncTest, SplitPushIsRefusedBySynchronousServers) {
  ProcessCluster cluster("client-sync", 1, 1,
                         std::vector<std::string>{"cluster.mode=sync", "optimizer.kind=sgd",
                                                  "model.embedding_dim=16"});
  ASSERT_FALSE(cluster.endpoint().empty());
  worker::ClientOptions o;
  o.scheduler_endpoint = cluster.endpoint();
  o.request_timeout_ms = 20000;
  o.max_part_bytes = 10 * kDim * sizeof(float);
  o.split_pushes = true;
  auto c = worker::Client::Create(o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  std::vector<uint64_t> keys;
  for (uint64_t k = 0; k < 100; ++k) keys.push_back(k + 1);
  std::vector<float> grads(keys.size() * kDim, 0.01f);
  Status st = (*c)->Push(kTable, keys, kDim, grads.data(), 0, true, true);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.ToString().find("asynchronous"), std::string::npos) << st.ToString();
}

// Push lends the caller's arrays to ZeroMQ. A push that fails while its
// message is still queued (a frozen server that reads nothing) must still
// return, having made ZeroMQ let go of the arrays, and the next push must
// work once the server is back.
TEST(ClientLendTest, PushToAFrozenServerReturnsAndTheNextOneWorks) {
  ProcessCluster cluster(
      "client-lend", 1, 1,
      std::vector<std::string>{"cluster.mode=async", "optimizer.kind=sgd",
                               "optimizer.learning_rate=1.0", "cluster.heartbeat_timeout_ms=60000",
                               "model.embedding_dim=16"});
  ASSERT_FALSE(cluster.endpoint().empty());
  worker::ClientOptions o;
  o.scheduler_endpoint = cluster.endpoint();
  o.request_timeout_ms = 1000;
  o.max_part_bytes = 0;  // one 32 MB message: more than the loopback socket buffers hold
  auto c = worker::Client::Create(o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  worker::Client& client = **c;

  std::vector<uint64_t> keys;
  for (uint64_t k = 0; k < 500000; ++k) keys.push_back(k + 1);
  std::vector<float> grads(keys.size() * kDim, 0.5f);
  cluster.server(0).Signal(SIGSTOP);
  const auto start = std::chrono::steady_clock::now();
  Status st = client.Push(kTable, keys, kDim, grads.data(), 0, true, true);
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  cluster.server(0).Signal(SIGCONT);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kDeadlineExceeded) << st.ToString();
  EXPECT_LT(took, 10.0);
  // The caller owns its arrays again: writing them cannot reach the server.
  std::fill(grads.begin(), grads.end(), 1e30f);

  // The sockets were reset; the next push reconnects and lands.
  std::vector<uint64_t> one = {7};
  std::vector<float> before(kDim), after(kDim), g(kDim, 0.25f);
  ASSERT_TRUE(client.Pull(kTable, one, kDim, 0, before.data()).ok());
  Status again = client.Push(kTable, one, kDim, g.data(), 0, true, true);
  ASSERT_TRUE(again.ok()) << again.ToString();
  ASSERT_TRUE(client.Pull(kTable, one, kDim, 0, after.data()).ok());
  for (uint32_t d = 0; d < kDim; ++d) EXPECT_FLOAT_EQ(after[d], before[d] - 0.25f);
}

}  // namespace
}  // namespace phalanx
