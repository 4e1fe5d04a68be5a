#include "common/message.h"

#include <gtest/gtest.h>

#include <cereal/archives/binary.hpp>
#include <random>
#include <sstream>

#include "common/control.h"
#include "common/transport.h"

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
  h.client = 123456;
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
  EXPECT_EQ(d->client, 123456);
  EXPECT_EQ(d->table_id, 2u);
  EXPECT_EQ(d->dim, 16u);
  EXPECT_EQ(d->num_keys, 10u);
  EXPECT_EQ(d->checksum, 77u);
}

TEST(MessageTest, HeaderBytesAreCerealsEncoding) {
  // The hand-written encoder must write exactly cereal's binary archive of
  // Header: that is the wire format (common/wire_format.md).
  Header h;
  h.type = MsgType::kPullResponse;
  h.flags = 3;
  h.sender = -7;
  h.request_id = 0x0102030405060708ull;
  h.round = -123456789012345;
  h.client = -0x12345678;
  h.table_id = 9;
  h.dim = 4096;
  h.num_keys = 1ull << 40;
  h.num_values = 77;
  h.status_code = 5;
  h.checksum = 0xfedcba9876543210ull;
  std::ostringstream os(std::ios::binary);
  {
    cereal::BinaryOutputArchive ar(os);
    ar(h);
  }
  EXPECT_EQ(EncodeHeader(h), os.str());
  EXPECT_EQ(os.str().size(), kHeaderBytes);
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

TEST(MessageTest, ChecksumCoversKeysThenValues) {
  // One-shot XXH3 for a single frame, streamed for two: the same function of
  // the concatenated bytes either way.
  std::vector<uint64_t> keys = {1, 2, 3};
  std::vector<float> vals = {0.5f, 1.5f};
  std::vector<std::byte> joined(keys.size() * 8 + vals.size() * 4);
  std::memcpy(joined.data(), keys.data(), keys.size() * 8);
  std::memcpy(joined.data() + keys.size() * 8, vals.data(), vals.size() * 4);
  Buffer k = Buffer::Copy(keys.data(), keys.size() * 8);
  Buffer v = Buffer::Copy(vals.data(), vals.size() * 4);
  Buffer j = Buffer::Copy(joined.data(), joined.size());
  EXPECT_EQ(PayloadChecksum(k, v), PayloadChecksum(j, Buffer()));
  EXPECT_EQ(PayloadChecksum(k, v), PayloadChecksum(Buffer(), j));
  EXPECT_NE(PayloadChecksum(k, v), PayloadChecksum(v, k));
  EXPECT_NE(PayloadChecksum(Buffer(), Buffer()), 0u);  // 0 is reserved for "none"
}

TEST(MessageTest, WithoutChecksumLengthsAndCountsStillGuard) {
  Message m = MakeDataMessage(MsgType::kPush, 3, 42, 7, 1, 2,
                              Buffer::FromVector(std::vector<uint64_t>{1, 2}),
                              Buffer::FromVector(std::vector<float>{1, 2, 3, 4}), false);
  EXPECT_EQ(m.header.checksum, 0u);
  EXPECT_TRUE(ValidateMessage(m, {}).ok());
  m.values = Buffer::FromVector(std::vector<float>{1, 2, 3});  // truncated frame
  EXPECT_EQ(ValidateMessage(m, {}).code(), StatusCode::kInvalidArgument);
  m.header.num_values = 3;  // counts agree with the frame, but not with keys x dim
  EXPECT_EQ(ValidateMessage(m, {}).code(), StatusCode::kInvalidArgument);
}

TEST(MessageTest, LoopbackHostsAreRecognised) {
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.1.2.3"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_FALSE(IsLoopbackHost("10.0.0.2"));
  EXPECT_FALSE(IsLoopbackHost("128.0.0.1"));
  EXPECT_FALSE(IsLoopbackHost("host127.example"));
}

TEST(BufferPoolTest, RecyclesReleasedBlocks) {
  BufferPool pool;
  float* a = nullptr;
  const void* first = nullptr;
  {
    Buffer b = pool.Uninitialized<float>(1 << 20, &a);  // 4 MB: pooled
    ASSERT_NE(a, nullptr);
    a[0] = 1;
    a[(1 << 20) - 1] = 2;
    first = b.data();
    EXPECT_EQ(b.size(), size_t{4} << 20);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % 64, 0u);
  }
  EXPECT_EQ(pool.stats().cached_blocks, 1u);
  float* c = nullptr;
  Buffer again = pool.Uninitialized<float>((1 << 20) - 100, &c);  // fits the freed block
  EXPECT_EQ(again.data(), first);
  EXPECT_EQ(pool.stats().hits, 1u);
  EXPECT_EQ(pool.stats().misses, 1u);
  // A block in use is never handed out twice.
  float* d = nullptr;
  Buffer other = pool.Uninitialized<float>(1 << 20, &d);
  EXPECT_NE(other.data(), again.data());
  EXPECT_EQ(pool.stats().misses, 2u);
  // A free block far larger than the request is not pinned under it.
  again = Buffer();
  float* e = nullptr;
  Buffer small = pool.Uninitialized<float>(64 << 10, &e);  // 256 KB
  EXPECT_NE(small.data(), first);
}

TEST(BufferPoolTest, SmallRequestsAreNotPooledAndCopiesAreExact) {
  BufferPool pool;
  uint64_t* k = nullptr;
  Buffer small = pool.Uninitialized<uint64_t>(4, &k);
  EXPECT_EQ(small.size(), 32u);
  small = Buffer();
  EXPECT_EQ(pool.stats().cached_blocks, 0u);
  std::vector<uint8_t> bytes(300 << 10);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 31);
  Buffer copy = pool.Copy(bytes.data(), bytes.size());
  ASSERT_EQ(copy.size(), bytes.size());
  EXPECT_EQ(std::memcmp(copy.data(), bytes.data(), bytes.size()), 0);
}

TEST(BufferPoolTest, BuffersOutliveTheirPoolAndTheCacheIsBounded) {
  Buffer kept;
  {
    BufferPool::Options o;
    o.max_cached_blocks = 1;
    BufferPool pool(o);
    float* a = nullptr;
    float* b = nullptr;
    Buffer x = pool.Uninitialized<float>(1 << 18, &a);
    Buffer y = pool.Uninitialized<float>(1 << 18, &b);
    x = Buffer();
    y = Buffer();
    EXPECT_EQ(pool.stats().cached_blocks, 1u);  // the second release was freed
    kept = pool.Uninitialized<float>(1 << 18, &a);
    a[0] = 42;
  }
  // The pool is gone; releasing the block must still be safe.
  EXPECT_EQ(kept.as<float>()[0], 42);
  kept = Buffer();
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
