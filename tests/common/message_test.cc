#include "common/message.h"

#include <gtest/gtest.h>

#include <random>

#include "common/control.h"

namespace phalanx {
namespace {

Message PushOf(std::vector<uint64_t> keys, std::vector<float> values, uint32_t dim) {
  return MakeDataMessage(MsgType::kPush, 3, 42, 7, 1, dim, Buffer::FromVector(std::move(keys)),
                         Buffer::FromVector(std::move(values)));
}

TEST(MessageTest, HeaderRoundTrip) {
  Header h;
  h.type = MsgType::kPull;
  h.sender = 9;
  h.request_id = 123456789;
  h.round = -5;
  h.table_id = 2;
  h.dim = 16;
  h.num_keys = 10;
  h.num_values = 0;
  h.checksum = 77;
  std::string bytes = EncodeHeader(h);
  auto d = DecodeHeader(bytes.data(), bytes.size());
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->type, MsgType::kPull);
  EXPECT_EQ(d->sender, 9);
  EXPECT_EQ(d->request_id, 123456789u);
  EXPECT_EQ(d->round, -5);
  EXPECT_EQ(d->table_id, 2u);
  EXPECT_EQ(d->dim, 16u);
  EXPECT_EQ(d->num_keys, 10u);
  EXPECT_EQ(d->checksum, 77u);
}

TEST(MessageTest, RejectsBadHeaders) {
  Header h;
  h.type = MsgType::kPull;
  std::string bytes = EncodeHeader(h);
  EXPECT_FALSE(DecodeHeader(bytes.data(), bytes.size() - 1).ok());  // truncated
  std::string longer = bytes + "x";
  EXPECT_FALSE(DecodeHeader(longer.data(), longer.size()).ok());  // oversized
  std::string bad_magic = bytes;
  bad_magic[0] ^= 0x5a;
  EXPECT_EQ(DecodeHeader(bad_magic.data(), bad_magic.size()).status().code(),
            StatusCode::kInvalidArgument);
  h.version = 99;
  std::string v = EncodeHeader(h);
  EXPECT_FALSE(DecodeHeader(v.data(), v.size()).ok());
  h.version = kWireVersion;
  h.type = static_cast<MsgType>(200);
  std::string t = EncodeHeader(h);
  EXPECT_FALSE(DecodeHeader(t.data(), t.size()).ok());
}

TEST(MessageTest, RandomBytesNeverDecodeToGarbage) {
  std::mt19937_64 rng(1);
  size_t header_size = EncodeHeader(Header{}).size();
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string bytes(i % 3 == 0 ? header_size : rng() % 128, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    auto d = DecodeHeader(bytes.data(), bytes.size());
    accepted += d.ok();
  }
  EXPECT_EQ(accepted, 0);  // the magic alone rejects random input
}

TEST(MessageTest, ValidPushPasses) {
  Message m = PushOf({1, 2}, {1, 2, 3, 4}, 2);
  EXPECT_TRUE(ValidateMessage(m, WireLimits{}).ok());
  EXPECT_EQ(m.header.num_keys, 2u);
  EXPECT_EQ(m.header.num_values, 4u);
  EXPECT_NE(m.header.checksum, 0u);
}

TEST(MessageTest, CountMismatchesAreRejected) {
  Message m = PushOf({1, 2}, {1, 2, 3, 4}, 2);
  m.header.num_keys = 3;
  EXPECT_EQ(ValidateMessage(m, {}).code(), StatusCode::kInvalidArgument);
  m = PushOf({1, 2}, {1, 2, 3, 4}, 3);  // 4 values != 2 keys x dim 3
  EXPECT_EQ(ValidateMessage(m, {}).code(), StatusCode::kInvalidArgument);
  m = PushOf({1, 2}, {1, 2, 3, 4}, 2);
  m.header.num_values = 5;
  EXPECT_FALSE(ValidateMessage(m, {}).ok());
}

TEST(MessageTest, LimitsAreEnforced) {
  Message m = PushOf({1, 2, 3}, {1, 2, 3}, 1);
  WireLimits limits;
  limits.max_keys = 2;
  EXPECT_EQ(ValidateMessage(m, limits).code(), StatusCode::kInvalidArgument);
  limits = {};
  limits.max_values = 2;
  EXPECT_FALSE(ValidateMessage(m, limits).ok());
}

TEST(MessageTest, ChecksumDetectsCorruption) {
  std::vector<float> vals = {1, 2, 3, 4};
  Message m = PushOf({1, 2}, vals, 2);
  std::vector<float> corrupted = vals;
  corrupted[3] = 5;
  m.values = Buffer::FromVector(std::move(corrupted));
  EXPECT_EQ(ValidateMessage(m, {}).code(), StatusCode::kDataLoss);
  WireLimits no_check;
  no_check.verify_checksum = false;
  EXPECT_TRUE(ValidateMessage(m, no_check).ok());
}

TEST(MessageTest, ControlMessagesCarryNoData) {
  Message m = MakeControlMessage(MsgType::kHeartbeat, 1, 0, "");
  EXPECT_TRUE(ValidateMessage(m, {}).ok());
  m.header.num_keys = 1;
  m.keys = Buffer::FromVector(std::vector<uint64_t>{1});
  EXPECT_FALSE(ValidateMessage(m, {}).ok());
}

TEST(MessageTest, ErrorRoundTrip) {
  Message m = MakeErrorMessage(1, 5, NotFound("no table 9"));
  Status s = StatusFromError(m);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "no table 9");
  m.header.status_code = 1000;  // hostile code maps to Internal
  EXPECT_EQ(StatusFromError(m).code(), StatusCode::kInternal);
}

TEST(ControlTest, ClusterViewRoundTrip) {
  ClusterView v;
  v.epoch = 4;
  v.num_slots = 8;
  v.servers.push_back({1, 0, Role::kServer, "127.0.0.1", 5000, 6000, true});
  v.servers.push_back({2, 1, Role::kServer, "127.0.0.1", 5001, 6001, false});
  v.workers.push_back({3, 0, Role::kWorker, "127.0.0.1", 0, 6002, true});
  v.slot_owner = {0, 1, 0, 1, 0, 1, 0, 1};
  auto d = DecodeClusterView(EncodeClusterView(v));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->epoch, 4);
  ASSERT_EQ(d->servers.size(), 2u);
  EXPECT_EQ(d->servers[1].data_port, 5001);
  EXPECT_FALSE(d->servers[1].alive);
  EXPECT_EQ(d->slot_owner, v.slot_owner);
  EXPECT_EQ(d->live_workers(), 1);
}

TEST(ControlTest, HostileBodiesAreRejected) {
  ClusterView v;
  v.epoch = 1;
  v.num_slots = 2;
  v.servers.push_back({1, 0, Role::kServer, "h", 1, 2, true});
  v.slot_owner = {0, 0};
  std::string good = EncodeClusterView(v);
  // Truncations of a valid body never decode.
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(DecodeClusterView(good.substr(0, n)).ok()) << n;
  }
  // Trailing bytes are rejected.
  EXPECT_FALSE(DecodeClusterView(good + "z").ok());
  // A huge length prefix must not allocate: string length 2^60.
  std::string huge(8, '\xff');
  EXPECT_FALSE(DecodeBarrier(huge).ok());
  // Slot owner out of range.
  v.slot_owner = {0, 5};
  EXPECT_FALSE(DecodeClusterView(EncodeClusterView(v)).ok());
  std::mt19937_64 rng(3);
  for (int i = 0; i < 5000; ++i) {
    std::string bytes(rng() % 64, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    (void)DecodeClusterView(bytes);
    (void)DecodeRegister(bytes);
    (void)DecodeBarrier(bytes);
  }
}

TEST(ControlTest, SlotsSpreadKeys) {
  std::vector<int> counts(16);
  for (uint64_t k = 0; k < 16000; ++k) counts[SlotOfKey(k, 16)]++;
  for (int c : counts) {
    EXPECT_GT(c, 800);
    EXPECT_LT(c, 1200);
  }
}

}  // namespace
}  // namespace phalanx
