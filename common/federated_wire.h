#pragma once
// How live federated mode (cluster.mode = "federated", ps/federated_shard.h,
// worker/federated_client.h) packs a client id next to a model version in the
// existing 64-bit Header::round of a Pull or Push of table 0, so the header
// keeps its fixed layout (common/wire_format.md, "Federated mode"):
//
//   round = (client + 1) · 2^40 + version
//
// with client = -1 for "no client" (evaluation pulls) and version < 2^40.
// A Push carries the version its client started from; a Pull carries the
// client that starts training (the server times its round trip from it).

#include <cstdint>

namespace phalanx {

inline constexpr int kFederatedClientShift = 40;
inline constexpr int64_t kFederatedVersionMask = (int64_t{1} << kFederatedClientShift) - 1;
// Largest client id the encoding holds (2^23 - 2).
inline constexpr int64_t kFederatedMaxClient = (int64_t{1} << (63 - kFederatedClientShift)) - 2;

inline int64_t EncodeFederatedRound(int64_t client, int64_t version) {
  return ((client + 1) << kFederatedClientShift) | (version & kFederatedVersionMask);
}
// -1 = no client; meaningless for a negative round (the server refuses those).
inline int64_t FederatedClientOf(int64_t round) { return (round >> kFederatedClientShift) - 1; }
inline int64_t FederatedVersionOf(int64_t round) { return round & kFederatedVersionMask; }

}  // namespace phalanx
