// Fuzz target: arbitrary multipart messages sent to a ROUTER socket and
// decoded by the real receive path (Socket::Recv: frame counts, header,
// payload frames, WireLimits, checksums). Input: chunks (fuzz_util.h), one
// per frame. Checks that every message comes back either refused with a
// status or accepted with payload sizes that match its header (what the
// server and the scheduler rely on), and that accepted control bodies decode
// without crashing.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/control.h"
#include "common/message.h"
#include "common/transport.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/live_nodes.h"

namespace {

using phalanx::fuzz::ChunkReader;
using phalanx::fuzz::Violated;

struct Pair {
  std::unique_ptr<phalanx::Socket> router;
  std::unique_ptr<phalanx::Socket> dealer;
};

// One connected pair over inproc (same process, no kernel): the decode path
// is the one TCP traffic takes. A function-local static made after the
// ZeroMQ context, so it closes its sockets before the context terminates.
Pair MakePair() {
  Pair p;
  phalanx::WireLimits limits;
  limits.max_keys = 1 << 16;  // small limits so the fuzzer reaches them
  limits.max_values = 1 << 18;
  limits.max_dim = 1 << 10;
  limits.max_body_bytes = 1 << 16;
  auto r = phalanx::Socket::Bind(phalanx::Socket::Kind::kRouter, "inproc://phx-fuzz-wire", limits);
  auto d = phalanx::Socket::Connect(phalanx::Socket::Kind::kDealer, "inproc://phx-fuzz-wire");
  if (!r.ok() || !d.ok()) Violated("cannot set up the inproc socket pair");
  p.router = std::move(r).value();
  p.dealer = std::move(d).value();
  return p;
}

Pair& Sockets() {
  static Pair pair = MakePair();
  return pair;
}

void CheckAccepted(const phalanx::Message& m) {
  const phalanx::Header& h = m.header;
  if (m.keys.size() != h.num_keys * sizeof(uint64_t)) Violated("key bytes != num_keys");
  if (m.values.size() != h.num_values * sizeof(float)) Violated("value bytes != num_values");
  // Touch every payload byte (ASan checks the spans are real memory).
  uint64_t sum = 0;
  for (uint64_t k : m.key_span()) sum += k;
  for (float v : m.value_span()) sum += static_cast<uint64_t>(v != v);
  if (h.type == phalanx::MsgType::kPush && h.num_values != h.num_keys * h.dim) {
    Violated("accepted push with num_values != num_keys * dim");
  }
  switch (h.type) {
    case phalanx::MsgType::kRegister:
      (void)phalanx::DecodeRegister(m.body);
      break;
    case phalanx::MsgType::kRegisterAck:
      (void)phalanx::DecodeRegisterAck(m.body);
      break;
    case phalanx::MsgType::kClusterView:
      (void)phalanx::DecodeClusterView(m.body);
      break;
    case phalanx::MsgType::kBarrier:
    case phalanx::MsgType::kBarrierRelease:
      (void)phalanx::DecodeBarrier(m.body);
      break;
    case phalanx::MsgType::kError:
      (void)phalanx::StatusFromError(m);
      break;
    default:
      break;
  }
  (void)sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Pair& p = Sockets();
  const std::vector<std::string> frames = ChunkReader(data, size).Chunks(16);
  if (frames.empty()) return 0;
  if (!p.dealer->SendRaw(frames).ok()) Violated("inproc send failed");
  // A ROUTER names the peer of every message it got, accepted or refused.
  auto r = phalanx::fuzz::ReceiveWithin(*p.router, std::chrono::seconds(10),
                                        [](const phalanx::Received& m) { return !m.peer.empty(); });
  if (!r) Violated("a message sent over inproc did not arrive within 10 s");
  if (r->status.ok()) CheckAccepted(r->msg);
  return 0;
}
