// FederatedShard (ps/federated_shard.h): per-shard FederatedServers over
// slices of the dense model equal one unsharded server given the same arrival
// order (the exactness claim of live federated mode), the PushAck version
// contract, and refusal of malformed requests.
#include "ps/federated_shard.h"

#include <gtest/gtest.h>

#include <random>

namespace phalanx::ps {
namespace {

constexpr uint32_t kDim = 4;
constexpr int64_t kClients = 12;

std::unique_ptr<EmbeddingTable> MakeTable() {
  TableOptions t;
  t.dim = kDim;
  t.seed = 7;
  t.init_scale = 0.05f;
  auto r = EmbeddingTable::Create(t);
  EXPECT_TRUE(r.ok());
  return std::move(r).value();
}

// A shard over `keys` of one table, initialised by a first pull.
struct Shard {
  std::unique_ptr<EmbeddingTable> table = MakeTable();
  std::unique_ptr<FederatedShard> shard;
  std::vector<uint64_t> keys;
};

Shard MakeShard(const aggregators::FederatedOptions& o, std::vector<uint64_t> keys) {
  Shard s;
  s.keys = std::move(keys);
  FederatedShardOptions fo;
  fo.enabled = true;
  fo.server = o;
  fo.clients = kClients;
  auto r = FederatedShard::Create(fo, s.table.get());
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  s.shard = std::move(r).value();
  return s;
}

Message PullMsg(const std::vector<uint64_t>& keys, int64_t client) {
  std::vector<uint64_t> k = keys;
  Message m = MakeDataMessage(MsgType::kPull, 1, 1, 0, 0, 0, Buffer::FromVector(std::move(k)),
                              Buffer(), false);
  m.header.client = static_cast<int32_t>(client);
  return m;
}

Message PushMsg(const std::vector<uint64_t>& keys, std::vector<float> values, int64_t client,
                int64_t base) {
  std::vector<uint64_t> k = keys;
  Message m = MakeDataMessage(MsgType::kPush, 1, 2, base, 0, kDim, Buffer::FromVector(std::move(k)),
                              Buffer::FromVector(std::move(values)), false);
  m.header.client = static_cast<int32_t>(client);
  return m;
}

// Values of `keys` (rows of kDim) and the version, from a pull.
std::vector<float> Pull(Shard& s, int64_t* version = nullptr, int64_t client = -1) {
  Message r = s.shard->Handle(PullMsg(s.keys, client), 0);
  EXPECT_EQ(r.header.type, MsgType::kPullResponse) << r.body;
  if (version) *version = r.header.round;
  auto v = r.value_span();
  return {v.begin(), v.end()};
}

// The rows of `full` (over keys 0..n-1) that `keys` names.
std::vector<float> Rows(const std::vector<float>& full, const std::vector<uint64_t>& keys) {
  std::vector<float> out;
  for (uint64_t k : keys)
    out.insert(out.end(), full.begin() + k * kDim, full.begin() + (k + 1) * kDim);
  return out;
}

class ShardExactnessTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ShardExactnessTest, TwoSlicesEqualOneServer) {
  aggregators::FederatedOptions o;
  o.algorithm = GetParam();
  o.buffer_size = 3;
  o.weights = o.algorithm == "async" ? "identical" : "";
  std::vector<uint64_t> all, even, odd;
  for (uint64_t k = 0; k < 10; ++k) {
    all.push_back(k);
    (k % 2 ? odd : even).push_back(k);
  }
  Shard whole = MakeShard(o, all), a = MakeShard(o, even), b = MakeShard(o, odd);
  // Every client starts from the model it pulled; arrivals in a fixed order.
  std::vector<std::vector<float>> base(kClients);
  std::vector<int64_t> base_version(kClients);
  for (int64_t c = 0; c < kClients; ++c) base[c] = Pull(whole, &base_version[c], c);
  std::mt19937 rng(3);
  std::normal_distribution<float> noise(0.0f, 0.1f);
  for (int t = 0; t < 40; ++t) {
    const int64_t c = (t * 5) % kClients;
    std::vector<float> update(all.size() * kDim);
    for (size_t j = 0; j < update.size(); ++j) {
      const float delta = noise(rng);
      // fedasync clients send θ⁺; the others send Δ.
      update[j] = o.algorithm == "fedasync" ? base[c][j] + delta : delta;
    }
    Message rw = whole.shard->Handle(PushMsg(all, update, c, base_version[c]), 0);
    Message ra = a.shard->Handle(PushMsg(even, Rows(update, even), c, base_version[c]), 0);
    Message rb = b.shard->Handle(PushMsg(odd, Rows(update, odd), c, base_version[c]), 0);
    ASSERT_EQ(rw.header.type, MsgType::kPushAck) << rw.body;
    EXPECT_EQ(ra.header.round, rw.header.round);
    EXPECT_EQ(rb.header.round, rw.header.round);
    base[c] = Pull(whole, &base_version[c], c);
  }
  std::vector<float> w = Pull(whole), sa = Pull(a), sb = Pull(b);
  EXPECT_EQ(sa, Rows(w, even));
  EXPECT_EQ(sb, Rows(w, odd));
  EXPECT_EQ(a.shard->version(), whole.shard->version());
  EXPECT_GT(whole.shard->version(), 5);
  Shard fresh = MakeShard(o, all);
  EXPECT_NE(w, Pull(fresh));  // the model moved
}

INSTANTIATE_TEST_SUITE_P(Rules, ShardExactnessTest,
                         ::testing::Values("fedbuff", "fedasync", "async"));

TEST(FederatedShardTest, PushAckNamesTheVersionThatHoldsTheUpdate) {
  aggregators::FederatedOptions o;
  o.algorithm = "fedbuff";
  o.buffer_size = 2;
  Shard s = MakeShard(o, {0, 1});
  Pull(s);
  std::vector<float> d(2 * kDim, 0.01f);
  Message first = s.shard->Handle(PushMsg(s.keys, d, 0, 0), 0);
  ASSERT_EQ(first.header.type, MsgType::kPushAck) << first.body;
  EXPECT_EQ(first.header.round, 1);  // buffered: in the next version
  EXPECT_EQ(s.shard->version(), 0);
  Message second = s.shard->Handle(PushMsg(s.keys, d, 1, 0), 0);
  EXPECT_EQ(second.header.round, 1);  // applied: the current version
  EXPECT_EQ(s.shard->version(), 1);
}

TEST(FederatedShardTest, RefusesMalformedRequestsAndBadOptions) {
  aggregators::FederatedOptions o;
  o.algorithm = "fedasync";
  Shard s = MakeShard(o, {0, 1});
  std::vector<float> before = Pull(s);
  std::vector<float> d(2 * kDim, 0.5f);
  auto error = [&](Message m) {
    Message r = s.shard->Handle(m, 0);
    EXPECT_EQ(r.header.type, MsgType::kError);
    return r.body;
  };
  EXPECT_NE(error(PushMsg(s.keys, d, kClients, 0)).find("unknown client"), std::string::npos);
  // A push must name its client (Header::client; kNoClient is for evaluation pulls).
  EXPECT_NE(error(PushMsg(s.keys, d, kNoClient, 0)).find("unknown client"), std::string::npos);
  Message negative = PushMsg(s.keys, d, 0, 0);
  negative.header.round = -5;
  EXPECT_NE(error(negative).find("negative"), std::string::npos);
  EXPECT_NE(error(PushMsg({0, 7}, d, 0, 0)).find("not part of this shard"), std::string::npos);
  EXPECT_NE(error(PushMsg({}, {}, 0, 0)).find("no rows"), std::string::npos);
  std::vector<float> nan = d;
  nan[3] = std::nanf("");
  EXPECT_NE(error(PushMsg(s.keys, nan, 0, 0)).find("non-finite"), std::string::npos);
  EXPECT_EQ(Pull(s), before);  // nothing was applied
  EXPECT_EQ(s.shard->version(), 0);

  auto table = MakeTable();
  FederatedShardOptions fo;
  fo.enabled = true;
  fo.clients = kClients;
  fo.server.algorithm = "fedavg";
  EXPECT_FALSE(FederatedShard::Create(fo, table.get()).ok());
  fo.server.algorithm = "fedbuff";
  fo.server.buffer_size = 0;
  EXPECT_FALSE(FederatedShard::Create(fo, table.get()).ok());
  fo.server.buffer_size = 2;
  fo.clients = 0;
  EXPECT_FALSE(FederatedShard::Create(fo, table.get()).ok());
}

}  // namespace
}  // namespace phalanx::ps
