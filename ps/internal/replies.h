#pragma once
// The few replies a server sends, built in one place: a push acknowledgement,
// a pull's rows, and the error answer to a refused request. The collaborators
// that own no socket (ps/internal/sync_round.h, honest_peeks.h) return
// Outgoing lists and the request loop sends them.
//
// Threading: plain functions and values.

#include <cstdint>
#include <string>
#include <vector>

#include "common/message.h"
#include "common/status.h"

namespace phalanx::ps::internal {

// One message for the server's ROUTER socket to send to `peer`.
struct Outgoing {
  std::string peer;
  Message msg;
  bool refused = false;  // the error answer to a refused request (counted as rejected)
};
using Outbox = std::vector<Outgoing>;

// Acknowledges push `req` as part of `round` (sync) or at `round` = the new
// version (async).
Message PushAck(int32_t self, const Header& req, int64_t round);

// Rows for pull `req` at `version`, checksummed when the request was (the
// client's ChecksumMode).
Message PullReply(int32_t self, const Header& req, int64_t version, uint32_t dim, Buffer values,
                  bool checksum);

// The honest workers' rows for peek `req` at `version` (always checksummed).
Message PeekReply(int32_t self, const Header& req, int64_t version, uint32_t dim, Buffer values);

// An error answer that does not count as a refusal (a push accepted into the
// round but dropped as non-finite).
Outgoing ErrorReply(int32_t self, const std::string& peer, const Header& req, const Status& s);

// Refuses request `req` with `s` (logged at debug level, counted by the sender).
Outgoing Refuse(int32_t self, const std::string& peer, const Header& req, const Status& s);

}  // namespace phalanx::ps::internal
