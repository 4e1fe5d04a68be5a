#include "common/control.h"

#include <xxhash.h>

#include <cereal/archives/binary.hpp>
#include <sstream>

#include "common/cereal_body.h"

namespace phalanx {
namespace {

constexpr size_t kMaxString = 1024;
constexpr size_t kMaxNodes = 1 << 16;
constexpr size_t kMaxSlots = 1 << 20;
constexpr size_t kMaxFingerprintKeys = 256;

template <class Ar>
void SaveNode(Ar& ar, const NodeInfo& n) {
  ar(n.id, n.rank, n.role);
  SaveString(ar, n.host);
  ar(n.data_port, n.http_port, n.alive);
}

template <class Ar>
void LoadNode(Ar& ar, NodeInfo& n) {
  ar(n.id, n.rank, n.role);
  if (static_cast<uint8_t>(n.role) > 2) throw cereal::Exception("bad role");
  LoadBoundedString(ar, n.host, kMaxString);
  ar(n.data_port, n.http_port, n.alive);
}

template <class Ar>
void SaveNodes(Ar& ar, const std::vector<NodeInfo>& v) {
  ar(cereal::make_size_tag(static_cast<cereal::size_type>(v.size())));
  for (const auto& n : v) SaveNode(ar, n);
}

template <class Ar>
void LoadNodes(Ar& ar, std::vector<NodeInfo>& v) {
  cereal::size_type n = 0;
  ar(cereal::make_size_tag(n));
  if (n > kMaxNodes) throw cereal::Exception("node list over limit");
  v.resize(n);
  for (auto& x : v) LoadNode(ar, x);
}

template <class Ar>
void SaveFingerprint(Ar& ar, const ConfigFingerprint& fp) {
  ar(cereal::make_size_tag(static_cast<cereal::size_type>(fp.size())));
  for (const auto& [key, value] : fp) {
    SaveString(ar, key);
    SaveString(ar, value);
  }
}

template <class Ar>
void LoadFingerprint(Ar& ar, ConfigFingerprint& fp) {
  cereal::size_type n = 0;
  ar(cereal::make_size_tag(n));
  if (n > kMaxFingerprintKeys) throw cereal::Exception("config fingerprint over limit");
  fp.resize(n);
  for (auto& [key, value] : fp) {
    LoadBoundedString(ar, key, kMaxString);
    LoadBoundedString(ar, value, kMaxString);
  }
}

}  // namespace

std::string FingerprintMismatch(const ConfigFingerprint& job, const ConfigFingerprint& node) {
  auto find = [](const ConfigFingerprint& fp, const std::string& key) -> const std::string* {
    for (const auto& [k, v] : fp) {
      if (k == key) return &v;
    }
    return nullptr;
  };
  auto quoted = [](const std::string* v) { return v ? "\"" + *v + "\"" : std::string("unset"); };
  auto sentence = [&](const std::string& key, const std::string* in_node,
                      const std::string* in_job) {
    return key + " is " + quoted(in_node) + " in this node's config but " + quoted(in_job) +
           " in the scheduler's";
  };
  for (const auto& [key, value] : job) {
    const std::string* other = find(node, key);
    if (!other || *other != value) return sentence(key, other, &value);
  }
  for (const auto& [key, value] : node) {
    if (!find(job, key)) return sentence(key, &value, nullptr);
  }
  return {};
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kScheduler:
      return "scheduler";
    case Role::kServer:
      return "server";
    case Role::kWorker:
      return "worker";
  }
  return "unknown";
}

int ClusterView::live_workers() const {
  int n = 0;
  for (const auto& w : workers) n += w.alive ? 1 : 0;
  return n;
}

std::vector<int32_t> ClusterView::live_worker_ids() const {
  std::vector<int32_t> ids;
  for (const auto& w : workers) {
    if (w.alive) ids.push_back(w.id);
  }
  return ids;
}

std::string EncodeRegister(const RegisterBody& b) {
  return EncodeBody([&](auto& ar) {
    SaveNode(ar, b.node);
    ar(b.requested_rank);
    SaveFingerprint(ar, b.fingerprint);
  });
}
Result<RegisterBody> DecodeRegister(const std::string& bytes) {
  return DecodeBody<RegisterBody>(bytes, "Register", [](auto& ar, RegisterBody& b) {
    LoadNode(ar, b.node);
    ar(b.requested_rank);
    LoadFingerprint(ar, b.fingerprint);
  });
}

std::string EncodeRegisterAck(const RegisterAck& b) {
  return EncodeBody([&](auto& ar) { ar(b.node_id, b.rank); });
}
Result<RegisterAck> DecodeRegisterAck(const std::string& bytes) {
  return DecodeBody<RegisterAck>(bytes, "RegisterAck",
                                 [](auto& ar, RegisterAck& b) { ar(b.node_id, b.rank); });
}

std::string EncodeClusterView(const ClusterView& v) {
  return EncodeBody([&](auto& ar) {
    ar(v.epoch, v.num_slots);
    SaveNodes(ar, v.servers);
    SaveNodes(ar, v.workers);
    ar(cereal::make_size_tag(static_cast<cereal::size_type>(v.slot_owner.size())));
    ar(cereal::binary_data(v.slot_owner.data(), v.slot_owner.size() * sizeof(int32_t)));
  });
}
Result<ClusterView> DecodeClusterView(const std::string& bytes) {
  auto r = DecodeBody<ClusterView>(bytes, "ClusterView", [](auto& ar, ClusterView& v) {
    ar(v.epoch, v.num_slots);
    LoadNodes(ar, v.servers);
    LoadNodes(ar, v.workers);
    cereal::size_type n = 0;
    ar(cereal::make_size_tag(n));
    if (n > kMaxSlots) throw cereal::Exception("slot table over limit");
    v.slot_owner.resize(n);
    ar(cereal::binary_data(v.slot_owner.data(), n * sizeof(int32_t)));
  });
  if (!r.ok()) return r;
  const ClusterView& v = *r;
  if (v.slot_owner.size() != v.num_slots) return InvalidArgument("ClusterView: slot table size");
  for (int32_t owner : v.slot_owner) {
    if (owner < 0 || owner >= static_cast<int32_t>(v.servers.size())) {
      return InvalidArgument("ClusterView: slot owner out of range");
    }
  }
  return r;
}

std::string EncodeBarrier(const BarrierBody& b) {
  return EncodeBody([&](auto& ar) {
    SaveString(ar, b.name);
    ar(b.generation);
  });
}
Result<BarrierBody> DecodeBarrier(const std::string& bytes) {
  return DecodeBody<BarrierBody>(bytes, "Barrier", [](auto& ar, BarrierBody& b) {
    LoadBoundedString(ar, b.name, kMaxString);
    ar(b.generation);
  });
}

uint32_t SlotOfKey(uint64_t key, uint32_t num_slots) {
  return static_cast<uint32_t>(XXH3_64bits(&key, sizeof(key)) % num_slots);
}

}  // namespace phalanx
