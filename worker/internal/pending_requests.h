#pragma once
// The requests a worker's Client (worker/client.h) has in flight: each is
// split into parts, one message per shard (or per piece of a split pull or
// push), and completes when every part was answered. Belongs to the Client's
// thread, like the Client.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "common/message.h"
#include "common/status.h"
#include "common/transport.h"

namespace phalanx::worker::internal {

struct ShardPart {
  uint64_t wire = 0;  // wire request id
  int server = -1;
  // Pull: the output rows this shard's reply fills, in reply order. Empty
  // with `identity`: rows first_row..first_row+rows-1 in order (one block copy).
  std::vector<uint32_t> positions;
  bool identity = false;
  size_t first_row = 0;
  size_t rows = 0;
  bool done = false;
};

struct Request {
  bool is_pull = false;
  uint32_t dim = 0;
  float* out = nullptr;
  // For pulls with repeated keys: out row -> unique row, and the unique rows.
  std::vector<uint32_t> expand;
  std::vector<float> unique_out;
  std::vector<ShardPart> parts;  // one per shard involved: a handful
  size_t remaining = 0;
  Status status;
  int64_t min_version = INT64_MAX;
  std::chrono::steady_clock::time_point deadline;
};

// Requests by client request id, and their parts by wire request id.
class PendingRequests {
 public:
  // A new, empty request; *id receives its client request id.
  Request& Start(uint64_t* id);
  // The request `id`, or nullptr.
  Request* Find(uint64_t id);

  // Registers `part` of request `id` (req) as sent and returns the wire id
  // its message must carry.
  uint64_t AddPart(uint64_t id, Request& req, ShardPart part);
  // The part AddPart registered last could not be sent: it counts as done
  // and req fails with `status`.
  void FailLastPart(Request& req, Status status);

  // Hands a message received from server rank `server` to the request it
  // answers; drops late answers to abandoned requests.
  void Deliver(const Received& r, size_t server);

  // Forgets request `id` (which must exist) and returns its status. A pull
  // that succeeded has its repeated keys' rows expanded into the caller's
  // output. *min_version: the smallest version among the shards that
  // answered (INT64_MAX if none did).
  Status Finish(uint64_t id, int64_t* min_version);

 private:
  // Part `wire_id` of req was answered with m.
  static void Complete(Request& req, uint64_t wire_id, const Message& m);

  uint64_t next_wire_id_ = 1;
  uint64_t next_request_ = 1;
  std::unordered_map<uint64_t, Request> requests_;  // by client request id
  std::unordered_map<uint64_t, uint64_t> wire_to_request_;
};

}  // namespace phalanx::worker::internal
