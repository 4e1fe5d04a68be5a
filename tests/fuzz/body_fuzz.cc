// Fuzz target: the cereal bodies of control messages (registration, cluster
// view, barriers) and of the shards' round coordination (Gram partials, round
// plans). Input: one selector byte, then the body. A body that decodes must
// re-encode to bytes that decode and re-encode to the same bytes (the decoders
// accept nothing the encoders cannot write back).

#include <string>

#include "common/control.h"
#include "ps/internal/coordination.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using phalanx::fuzz::Violated;

template <typename Decode, typename Encode>
void RoundTrip(const std::string& bytes, Decode decode, Encode encode) {
  auto first = decode(bytes);
  if (!first.ok()) {
    if (first.status().message().empty()) Violated("a refused body without a message");
    return;
  }
  const std::string once = encode(first.value());
  auto second = decode(once);
  if (!second.ok()) Violated("a re-encoded body does not decode");
  if (encode(second.value()) != once) Violated("encode(decode(encode(x))) != encode(x)");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  namespace px = phalanx;
  namespace pi = phalanx::ps::internal;
  switch (data[0] % 6) {
    case 0:
      RoundTrip(body, px::DecodeRegister, px::EncodeRegister);
      break;
    case 1:
      RoundTrip(body, px::DecodeRegisterAck, px::EncodeRegisterAck);
      break;
    case 2:
      RoundTrip(body, px::DecodeClusterView, px::EncodeClusterView);
      break;
    case 3:
      RoundTrip(body, px::DecodeBarrier, px::EncodeBarrier);
      break;
    case 4:
      RoundTrip(body, pi::DecodePartial, pi::EncodePartial);
      break;
    case 5:
      RoundTrip(body, pi::DecodePlan, pi::EncodePlan);
      break;
  }
  return 0;
}
