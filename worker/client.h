#pragma once
// Client: the worker's handle on the parameter servers, as small as ps-lite's
// KVWorker: Pull and Push return a request id, Wait(id) blocks until every
// shard involved answered. Keys are routed by slot to their owning server
// (from the scheduler's cluster view); pull keys are deduplicated and push
// gradients for repeated keys are summed.
//
// Threading: a Client and its sockets belong to the thread that created it.
// Its MembershipClient runs its own heartbeat thread.
//
// Costs: a request touches each key a constant number of times (dedup in a
// reused open-addressing index, routing, one copy of keys and values into
// recycled payload buffers); a reply is copied once, straight into the
// caller's output (one block copy when the shard's rows are the whole output
// in order, as with one server).

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/control.h"
#include "common/message.h"
#include "common/status.h"

namespace phalanx {
class MembershipClient;
}

namespace phalanx::worker {

struct ClientOptions {
  std::string host = "127.0.0.1";
  int http_port = 0;
  std::string scheduler_endpoint;
  int requested_rank = -1;
  int heartbeat_ms = 300;
  int register_timeout_ms = 30000;
  int formation_timeout_ms = 300000;  // for every node to register
  // The job's settings, sent when registering (the scheduler refuses another job's).
  ConfigFingerprint config_fingerprint;
  int request_timeout_ms = 120000;
  // Payload checksums on the requests this client sends; servers checksum
  // their replies when the request carried one. kAuto: on for servers on
  // another host, off on loopback (see common/wire_format.md).
  ChecksumMode checksum = ChecksumMode::kAuto;
  WireLimits limits;
  // Largest value payload per message, in bytes (0: one message per shard).
  // A larger pull goes out as several requests at once: the server looks up
  // part k+1 while part k is on the wire and this client copies part k-1 out,
  // so on a 100k-row pull the table and the transfer overlap instead of
  // adding up. About 1 MiB is also where ZeroMQ's loopback throughput peaks.
  size_t max_part_bytes = size_t{1} << 20;
  // Split pushes the same way (kFlagMoreParts). Only asynchronous servers
  // accept split pushes: a synchronous round takes one push per worker.
  bool split_pushes = false;
};

struct PullResult {
  int64_t version = -1;  // smallest version among the shards that answered
};

class Client {
 public:
  // Registers with the scheduler, waits for the cluster view, connects to servers.
  static Result<std::unique_ptr<Client>> Create(const ClientOptions& options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  int32_t id() const;
  int rank() const;
  ClusterView view() const;
  MembershipClient& membership() { return *membership_; }

  // Starts a pull of `keys` (dim floats each) into out (keys.size() x dim,
  // which must stay valid until Wait). In synchronous mode the servers answer
  // once their version reaches min_version. Set keys_unique when the caller
  // guarantees no duplicates (skips deduplication). `client` is the
  // federated client the request speaks for (Header::client; live federated
  // mode only).
  Result<uint64_t> PullAsync(uint32_t table, std::span<const uint64_t> keys, uint32_t dim,
                             int64_t min_version, float* out, bool keys_unique = false,
                             int32_t client = kNoClient);
  // Starts a push of gradient rows. With all_servers, shards that own none of
  // the keys receive an empty push (so synchronous rounds know this worker is
  // done). Payloads are copied, so the caller may reuse its buffers at once.
  Result<uint64_t> PushAsync(uint32_t table, std::span<const uint64_t> keys, uint32_t dim,
                             const float* grads, int64_t round, bool all_servers,
                             bool keys_unique = false, int32_t client = kNoClient);
  // Blocks until request `id` completed on every shard; returns the first
  // shard error, Unavailable if a shard died, DeadlineExceeded on timeout.
  Status Wait(uint64_t id, PullResult* result = nullptr);

  Status Pull(uint32_t table, std::span<const uint64_t> keys, uint32_t dim, int64_t min_version,
              float* out, PullResult* result = nullptr, bool keys_unique = false,
              int32_t client = kNoClient);
  // As PushAsync + Wait, but where one shard takes the keys in the caller's
  // order (one server, or no repeats routed to one shard), the caller's arrays
  // are lent to ZeroMQ instead of copied; Push returns once ZeroMQ let go of
  // them, so the caller may still reuse them at once.
  Status Push(uint32_t table, std::span<const uint64_t> keys, uint32_t dim, const float* grads,
              int64_t round, bool all_servers = true, bool keys_unique = false);

  // Tells the scheduler this worker is done.
  void Leave();

 private:
  Result<uint64_t> StartPush(uint32_t table, std::span<const uint64_t> keys, uint32_t dim,
                             const float* grads, int64_t round, bool all_servers, bool keys_unique,
                             int32_t client, bool lend);
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  MembershipClient* membership_ = nullptr;
};

}  // namespace phalanx::worker
