// Omniscient Byzantine workers: the servers forward the honest workers'
// pushes of a synchronous round to the configured colluders (and to nobody
// else), on a real 2-server cluster.

#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "tests/testutil/process_cluster.h"
#include "worker/client.h"
#include "worker/honest_peek.h"

namespace phalanx {
namespace {

using testutil::ProcessCluster;

constexpr int kRows = 30;
constexpr int kDim = 8;
constexpr int kD = kRows * kDim;

std::vector<float> Gradient(int rank) {
  std::mt19937_64 rng(50 + rank);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> g(kD);
  for (float& x : g) x = n(rng);
  return g;
}

std::vector<uint64_t> Keys() {
  std::vector<uint64_t> keys(kRows);
  for (int k = 0; k < kRows; ++k) keys[k] = static_cast<uint64_t>(k);
  return keys;
}

Result<std::unique_ptr<worker::Client>> Connect(const std::string& endpoint, int rank) {
  worker::ClientOptions o;
  o.scheduler_endpoint = endpoint;
  o.requested_rank = rank;
  o.request_timeout_ms = 30000;
  return worker::Client::Create(o);
}

struct Honest {
  int32_t id = -1;
  Status status;
};

void HonestWorker(const std::string& endpoint, int rank, Honest* out) {
  auto c = Connect(endpoint, rank);
  if (!c.ok()) {
    out->status = c.status();
    return;
  }
  out->id = (*c)->id();
  auto keys = Keys();
  auto g = Gradient(rank);
  out->status = (*c)->Push(0, keys, kDim, g.data(), 0);
  if (!out->status.ok()) return;
  std::vector<float> after(kD);
  out->status = (*c)->Pull(0, keys, kDim, 1, after.data());
  (*c)->Leave();
}

std::vector<std::string> Sets(bool omniscient) {
  return {"cluster.mode=sync",
          "tables.dense_row_dim=" + std::to_string(kDim),
          "byzantine.ranks=[3]",
          "byzantine.attack=mimic",
          std::string("byzantine.omniscient=") + (omniscient ? "true" : "false"),
          "cluster.round_timeout_ms=30000"};
}

TEST(OmniscientTest, ByzantineWorkerReadsExactlyTheHonestPushesOfTheRound) {
  ProcessCluster cluster("omniscient", 2, 4, Sets(true));
  ASSERT_FALSE(cluster.endpoint().empty());
  std::vector<Honest> honest(3);
  std::vector<std::thread> threads;
  // The attacker connects first so that the cluster can form.
  std::unique_ptr<worker::Client> byz;
  std::thread attacker([&] {
    auto c = Connect(cluster.endpoint(), 3);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    byz = std::move(*c);
  });
  for (int r = 0; r < 3; ++r) threads.emplace_back(HonestWorker, cluster.endpoint(), r, &honest[r]);
  attacker.join();
  ASSERT_TRUE(byz);
  auto peek = worker::HonestPeek::Create(byz->view(), byz->id(), 30000, WireLimits{});
  ASSERT_TRUE(peek.ok()) << peek.status().ToString();
  int h = 0;
  // Blocks until all three honest workers pushed round 0 on both shards.
  auto keys = Keys();
  auto got = (*peek)->Fetch(0, keys, kDim, 0, &h);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(h, 3);
  // Match each column to the rank whose gradient it equals, bit for bit.
  std::vector<bool> matched(3, false);
  for (int j = 0; j < 3; ++j) {
    std::vector<float> col(got->begin() + j * kD, got->begin() + (j + 1) * kD);
    bool found = false;
    for (int r = 0; r < 3; ++r) {
      if (!matched[r] && col == Gradient(r)) {
        matched[r] = found = true;
        break;
      }
    }
    EXPECT_TRUE(found) << "column " << j << " is no honest worker's gradient";
  }
  // The attacker pushes (a mimic: honest column 0) so the round can close.
  std::vector<float> lie(got->begin(), got->begin() + kD);
  ASSERT_TRUE(byz->Push(0, keys, kDim, lie.data(), 0).ok());
  for (auto& t : threads) t.join();
  for (auto& r : honest) EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  // A peek at a closed round is refused.
  auto late = (*peek)->Fetch(0, keys, kDim, 0, &h);
  EXPECT_EQ(late.status().code(), StatusCode::kAborted) << late.status().ToString();
  byz->Leave();
}

TEST(OmniscientTest, HonestWorkersAndNonOmniscientRunsCannotPeek) {
  for (bool omniscient : {true, false}) {
    ProcessCluster cluster(std::string("peek-refused-") + (omniscient ? "on" : "off"), 1, 4,
                           Sets(omniscient));
    ASSERT_FALSE(cluster.endpoint().empty());
    std::vector<std::unique_ptr<worker::Client>> clients(4);
    std::vector<std::thread> threads;
    for (int r = 0; r < 4; ++r) {
      threads.emplace_back([&, r] {
        auto c = Connect(cluster.endpoint(), r);
        if (c.ok()) clients[r] = std::move(*c);
      });
    }
    for (auto& t : threads) t.join();
    for (auto& c : clients) ASSERT_TRUE(c);
    auto keys = Keys();
    int h = 0;
    // Off: nobody may peek. On: only the Byzantine rank 3, never honest rank 0.
    for (int r : {0, 3}) {
      auto peek =
          worker::HonestPeek::Create(clients[r]->view(), clients[r]->id(), 10000, WireLimits{});
      ASSERT_TRUE(peek.ok());
      if (r == 3 && omniscient) continue;  // allowed: it would wait for the honest pushes
      auto got = (*peek)->Fetch(0, keys, kDim, 0, &h);
      ASSERT_FALSE(got.ok());
      EXPECT_EQ(got.status().code(),
                omniscient ? StatusCode::kUnauthenticated : StatusCode::kFailedPrecondition)
          << got.status().ToString();
    }
    for (auto& c : clients) c->Leave();
  }
}

}  // namespace
}  // namespace phalanx
