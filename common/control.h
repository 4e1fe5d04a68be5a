#pragma once
// Control-plane bodies carried in kRegister, kRegisterAck, kClusterView and
// kBarrier messages, encoded with cereal. Decoding bounds every string and
// vector length before allocating, so hostile bytes cannot balloon memory.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace phalanx {

enum class Role : uint8_t { kScheduler = 0, kServer = 1, kWorker = 2 };
const char* RoleName(Role role);

struct NodeInfo {
  int32_t id = -1;
  int32_t rank = -1;  // rank within its role
  Role role = Role::kWorker;
  std::string host;
  int32_t data_port = 0;  // servers: request port
  int32_t http_port = 0;  // /metrics and /status
  bool alive = true;
};

// The settings every node of one job must agree on, as ordered key/value
// pairs named as in the config (launch/config/fingerprint.h builds it).
using ConfigFingerprint = std::vector<std::pair<std::string, std::string>>;

// The first key, in the job's order, whose value differs between the job's
// fingerprint (the scheduler's) and a registering node's, as a sentence naming
// both values: `model.kind is "mlp" in this node's config but "softmax" in the
// scheduler's`. Empty when they agree. A key in one list only differs too.
std::string FingerprintMismatch(const ConfigFingerprint& job, const ConfigFingerprint& node);

struct RegisterBody {
  NodeInfo node;                // id/rank ignored unless re-registering
  int32_t requested_rank = -1;  // a replacement asks for a given rank
  // Empty from tests and benchmarks that build a node by hand; the scheduler
  // checks it only when it has one of its own too.
  ConfigFingerprint fingerprint;
};

struct RegisterAck {
  int32_t node_id = -1;
  int32_t rank = -1;
};

// The versioned membership view the scheduler pushes to every node.
struct ClusterView {
  int64_t epoch = 0;
  uint32_t num_slots = 0;
  std::vector<NodeInfo> servers;    // index = server rank
  std::vector<NodeInfo> workers;    // index = worker rank
  std::vector<int32_t> slot_owner;  // slot -> server rank

  int live_workers() const;
  std::vector<int32_t> live_worker_ids() const;
};

struct BarrierBody {
  std::string name;
  int64_t generation = 0;
};

std::string EncodeRegister(const RegisterBody& body);
Result<RegisterBody> DecodeRegister(const std::string& bytes);
std::string EncodeRegisterAck(const RegisterAck& body);
Result<RegisterAck> DecodeRegisterAck(const std::string& bytes);
std::string EncodeClusterView(const ClusterView& view);
Result<ClusterView> DecodeClusterView(const std::string& bytes);
std::string EncodeBarrier(const BarrierBody& body);
Result<BarrierBody> DecodeBarrier(const std::string& bytes);

// Slot of a key: XXH3 of the key, modulo num_slots. Shared by every role so
// workers and servers agree on who owns a key.
uint32_t SlotOfKey(uint64_t key, uint32_t num_slots);

}  // namespace phalanx
