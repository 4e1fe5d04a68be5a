// Wire protocol version 2 (common/wire_format.md, "Versions"): a peer of any
// other version is refused by name, whatever size its headers have, and the
// fields that version 1 overloaded have their own place.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <string>

#include "common/message.h"
#include "common/transport.h"

namespace phalanx {
namespace {

// A version-1 header as a version-1 peer wrote it: 64 bytes, no client
// field, the client packed into round.
std::string VersionOneHeader() {
  std::string b(64, '\0');
  const uint32_t magic = kWireMagic;
  const uint16_t version = 1;
  const auto type = static_cast<uint8_t>(MsgType::kPull);
  const int64_t round = (int64_t{3 + 1} << 40) | 5;  // client 3, version 5
  std::memcpy(b.data(), &magic, 4);
  std::memcpy(b.data() + 4, &version, 2);
  std::memcpy(b.data() + 6, &type, 1);
  const uint64_t num_keys = 1;
  std::memcpy(b.data() + 20, &round, 8);
  std::memcpy(b.data() + 36, &num_keys, 8);  // version 1's offset of num_keys
  return b;
}

void ExpectNamesBothVersions(const Status& s, int received) {
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("version " + std::to_string(received)), std::string::npos)
      << s.ToString();
  EXPECT_NE(s.message().find("version " + std::to_string(kWireVersion)), std::string::npos)
      << s.ToString();
}

TEST(WireVersionTest, IsTwo) {
  EXPECT_EQ(kWireVersion, 2);
  EXPECT_EQ(Header{}.version, kWireVersion);
  EXPECT_EQ(EncodeHeader(Header{}).size(), kHeaderBytes);
  EXPECT_EQ(kHeaderBytes, 68u);
}

TEST(WireVersionTest, VersionOnePeerIsRefusedByNameNotBySize) {
  const std::string v1 = VersionOneHeader();
  auto d = DecodeHeader(v1.data(), v1.size());
  ASSERT_FALSE(d.ok());
  ExpectNamesBothVersions(d.status(), 1);
  EXPECT_EQ(d.status().message().find("bytes"), std::string::npos)
      << "refused for its size instead of its version: " << d.status().ToString();
}

TEST(WireVersionTest, EveryOtherVersionIsRefusedWhateverTheSize) {
  for (uint16_t v : {0, 1, 3, 99, 65535}) {
    Header h;
    h.type = MsgType::kPull;
    h.version = v;
    std::string bytes = EncodeHeader(h);
    ExpectNamesBothVersions(DecodeHeader(bytes.data(), bytes.size()).status(), v);
    ExpectNamesBothVersions(DecodeHeader(bytes.data(), 6).status(), v);  // just magic + version
  }
  // Without the magic it is not a Phalanx peer at all: no version claim.
  Header h;
  h.magic = 0;
  h.version = 1;
  std::string bytes = EncodeHeader(h);
  auto d = DecodeHeader(bytes.data(), bytes.size());
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("magic"), std::string::npos) << d.status().ToString();
}

TEST(WireVersionTest, ASocketReportsAVersionOnePeersMessage) {
  auto router = Socket::Bind(Socket::Kind::kRouter, "tcp://127.0.0.1:0", WireLimits{});
  ASSERT_TRUE(router.ok()) << router.status().ToString();
  auto peer = Socket::Connect(Socket::Kind::kDealer, (*router)->endpoint());
  ASSERT_TRUE(peer.ok()) << peer.status().ToString();
  // A version-1 pull of one key: header, keys, values.
  ASSERT_TRUE((*peer)->SendRaw({VersionOneHeader(), std::string(8, '\0'), ""}).ok());
  Received r = (*router)->Recv(100);
  for (int i = 0; i < 100 && r.status.code() == StatusCode::kDeadlineExceeded; ++i) {
    r = (*router)->Recv(100);
  }
  ASSERT_FALSE(r.status.ok());
  ExpectNamesBothVersions(r.status, 1);
  EXPECT_FALSE(r.peer.empty()) << "the peer must be known, so it can be answered";
}

TEST(WireVersionTest, ClientAndHonestPeeksHaveTheirOwnPlace) {
  Header h;
  EXPECT_EQ(h.client, kNoClient);
  h.type = MsgType::kPush;
  h.round = 5;
  h.client = 1 << 30;  // far past version 1's packed limit of 2^23 - 2
  std::string bytes = EncodeHeader(h);
  auto d = DecodeHeader(bytes.data(), bytes.size());
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->round, 5);
  EXPECT_EQ(d->client, 1 << 30);

  EXPECT_TRUE(IsDataMessage(MsgType::kHonestPeek));
  EXPECT_TRUE(IsDataMessage(MsgType::kHonestPeekResponse));
  EXPECT_STREQ(MsgTypeName(MsgType::kHonestPeek), "HonestPeek");
  h = Header{};
  h.type = MsgType::kHonestPeekResponse;
  bytes = EncodeHeader(h);
  EXPECT_TRUE(DecodeHeader(bytes.data(), bytes.size()).ok());
}

TEST(WireVersionTest, PeekResponsesFollowTheResponseRules) {
  std::vector<uint64_t> keys = {1, 2};
  std::vector<float> six(6, 1.0f);
  // Values only, a multiple of dim.
  Message ok = MakeDataMessage(MsgType::kHonestPeekResponse, 1, 1, 0, 0, 3, Buffer(),
                               Buffer::Copy(six.data(), 24));
  EXPECT_TRUE(ValidateMessage(ok, WireLimits{}).ok());
  Message with_keys = MakeDataMessage(MsgType::kHonestPeekResponse, 1, 1, 0, 0, 3,
                                      Buffer::Copy(keys.data(), 16), Buffer::Copy(six.data(), 24));
  EXPECT_FALSE(ValidateMessage(with_keys, WireLimits{}).ok());
  Message ragged = MakeDataMessage(MsgType::kHonestPeekResponse, 1, 1, 0, 0, 4, Buffer(),
                                   Buffer::Copy(six.data(), 24));
  EXPECT_FALSE(ValidateMessage(ragged, WireLimits{}).ok());
}

}  // namespace
}  // namespace phalanx
