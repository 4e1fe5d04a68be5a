#include "worker/client.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <unordered_map>

#include "common/membership.h"
#include "common/transport.h"

namespace phalanx::worker {

using Clock = std::chrono::steady_clock;

namespace {

struct ShardPart {
  int server = -1;
  std::vector<uint32_t> positions;  // pull: output rows this shard's keys fill
  bool done = false;
};

struct Request {
  bool is_pull = false;
  uint32_t dim = 0;
  float* out = nullptr;
  // For deduplicated pulls: out row -> unique row, and the unique buffer.
  std::vector<uint32_t> expand;
  std::vector<float> unique_out;
  std::map<uint64_t, ShardPart> parts;  // by wire request id
  size_t remaining = 0;
  Status status;
  int64_t min_version = INT64_MAX;
  Clock::time_point deadline;
};

}  // namespace

struct Client::Impl {
  ClientOptions options;
  std::unique_ptr<MembershipClient> membership;
  ClusterView view;
  std::vector<std::unique_ptr<Socket>> servers;  // by server rank
  std::vector<std::string> endpoints;
  uint64_t next_wire_id = 1;
  uint64_t next_request = 1;
  std::map<uint64_t, Request> requests;  // by client request id
  std::unordered_map<uint64_t, uint64_t> wire_to_request;

  Status RefreshView() {
    int64_t epoch = membership->epoch();
    if (epoch == view.epoch && !servers.empty()) return Status::Ok();
    view = membership->view();
    servers.resize(view.servers.size());
    endpoints.resize(view.servers.size());
    for (size_t s = 0; s < view.servers.size(); ++s) {
      std::string ep = TcpEndpoint(view.servers[s].host, view.servers[s].data_port);
      if (servers[s] && endpoints[s] == ep) continue;
      // New or replaced server: (re)connect.
      PHX_ASSIGN_OR_RETURN(servers[s], Socket::Connect(Socket::Kind::kDealer, ep, options.limits));
      endpoints[s] = ep;
    }
    return Status::Ok();
  }

  int OwnerOf(uint64_t key) const { return view.slot_owner[SlotOfKey(key, view.num_slots)]; }

  Status SendTo(int server, const Message& m) {
    Status s = servers[server]->Send(m);
    if (!s.ok()) return s.WithContext("sending to server rank " + std::to_string(server));
    return s;
  }

  void Complete(Request& req, uint64_t wire_id, const Message& m) {
    auto it = req.parts.find(wire_id);
    if (it == req.parts.end() || it->second.done) return;
    ShardPart& part = it->second;
    part.done = true;
    req.remaining--;
    if (m.header.type == MsgType::kError) {
      if (req.status.ok()) {
        req.status = StatusFromError(m).WithContext("server rank " + std::to_string(part.server));
      }
      return;
    }
    req.min_version = std::min(req.min_version, m.header.round);
    if (!req.is_pull) return;
    auto values = m.value_span();
    if (m.header.type != MsgType::kPullResponse ||
        values.size() != part.positions.size() * req.dim || m.header.dim != req.dim) {
      if (req.status.ok()) {
        req.status = DataLoss("pull response from server rank " + std::to_string(part.server) +
                              " has " + std::to_string(values.size()) + " values, expected " +
                              std::to_string(part.positions.size() * req.dim));
      }
      return;
    }
    float* base = req.expand.empty() ? req.out : req.unique_out.data();
    for (size_t j = 0; j < part.positions.size(); ++j) {
      std::memcpy(base + static_cast<size_t>(part.positions[j]) * req.dim,
                  values.data() + j * req.dim, req.dim * sizeof(float));
    }
  }

  // Receives whatever is ready on any server socket, waiting up to timeout_ms.
  Status Drain(int timeout_ms) {
    std::vector<Socket*> socks;
    for (auto& s : servers) socks.push_back(s.get());
    PHX_ASSIGN_OR_RETURN(auto ready, PollReadable(socks, timeout_ms));
    for (size_t i = 0; i < ready.size(); ++i) {
      if (!ready[i]) continue;
      while (true) {
        Received r = servers[i]->Recv(0);
        if (r.status.code() == StatusCode::kDeadlineExceeded) break;
        if (!r.status.ok()) {
          spdlog::warn("worker: bad message from server rank {}: {}", i, r.status.ToString());
          continue;
        }
        auto w = wire_to_request.find(r.msg.header.request_id);
        if (w == wire_to_request.end()) continue;  // late answer to an abandoned request
        auto rq = requests.find(w->second);
        wire_to_request.erase(w);
        if (rq != requests.end()) Complete(rq->second, r.msg.header.request_id, r.msg);
      }
    }
    return Status::Ok();
  }
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  membership_ = impl_->membership.get();
}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::Create(const ClientOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  MembershipOptions mo;
  mo.scheduler_endpoint = options.scheduler_endpoint;
  mo.self.role = Role::kWorker;
  mo.self.host = options.host;
  mo.self.http_port = options.http_port;
  mo.requested_rank = options.requested_rank;
  mo.heartbeat_ms = options.heartbeat_ms;
  mo.register_timeout_ms = options.register_timeout_ms;
  PHX_ASSIGN_OR_RETURN(impl->membership, MembershipClient::Start(mo));
  auto view = impl->membership->WaitForView(1, options.formation_timeout_ms);
  if (!view.ok()) return view.status().WithContext("waiting for the cluster to form");
  PHX_RETURN_IF_ERROR(impl->RefreshView());
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

int32_t Client::id() const { return impl_->membership->node_id(); }
int Client::rank() const { return impl_->membership->rank(); }
ClusterView Client::view() const { return impl_->membership->view(); }
void Client::Leave() { impl_->membership->Leave(); }

Result<uint64_t> Client::PullAsync(uint32_t table, std::span<const uint64_t> keys, uint32_t dim,
                                   int64_t min_version, float* out, bool keys_unique) {
  Impl& I = *impl_;
  PHX_RETURN_IF_ERROR(I.RefreshView());
  uint64_t id = I.next_request++;
  Request& req = I.requests[id];
  req.is_pull = true;
  req.dim = dim;
  req.out = out;
  req.deadline = Clock::now() + std::chrono::milliseconds(I.options.request_timeout_ms);
  std::span<const uint64_t> unique = keys;
  std::vector<uint64_t> unique_keys;
  if (!keys_unique) {
    std::unordered_map<uint64_t, uint32_t> first;
    first.reserve(keys.size());
    req.expand.resize(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      auto [it, fresh] = first.emplace(keys[i], static_cast<uint32_t>(unique_keys.size()));
      if (fresh) unique_keys.push_back(keys[i]);
      req.expand[i] = it->second;
    }
    if (unique_keys.size() == keys.size()) {
      req.expand.clear();  // no duplicates: write straight into out
    } else {
      req.unique_out.resize(unique_keys.size() * dim);
    }
    unique = unique_keys;
  }
  std::vector<std::vector<uint64_t>> shard_keys(I.servers.size());
  std::vector<std::vector<uint32_t>> shard_pos(I.servers.size());
  for (size_t i = 0; i < unique.size(); ++i) {
    int s = I.OwnerOf(unique[i]);
    shard_keys[s].push_back(unique[i]);
    shard_pos[s].push_back(static_cast<uint32_t>(i));
  }
  for (size_t s = 0; s < I.servers.size(); ++s) {
    if (shard_keys[s].empty()) continue;
    uint64_t wire = I.next_wire_id++;
    Message m =
        MakeDataMessage(MsgType::kPull, I.membership->node_id(), wire, min_version, table, dim,
                        Buffer::FromVector(std::move(shard_keys[s])), Buffer(), I.options.checksum);
    ShardPart part;
    part.server = static_cast<int>(s);
    part.positions = std::move(shard_pos[s]);
    req.parts[wire] = std::move(part);
    req.remaining++;
    I.wire_to_request[wire] = id;
    Status st = I.SendTo(static_cast<int>(s), m);
    if (!st.ok()) {
      req.status = st;
      req.parts[wire].done = true;
      req.remaining--;
      I.wire_to_request.erase(wire);
    }
  }
  return id;
}

Result<uint64_t> Client::PushAsync(uint32_t table, std::span<const uint64_t> keys, uint32_t dim,
                                   const float* grads, int64_t round, bool all_servers,
                                   bool keys_unique) {
  Impl& I = *impl_;
  PHX_RETURN_IF_ERROR(I.RefreshView());
  uint64_t id = I.next_request++;
  Request& req = I.requests[id];
  req.dim = dim;
  req.deadline = Clock::now() + std::chrono::milliseconds(I.options.request_timeout_ms);
  std::vector<std::vector<uint64_t>> shard_keys(I.servers.size());
  std::vector<std::vector<float>> shard_vals(I.servers.size());
  if (keys_unique) {
    // Caller guarantees distinct keys: route with one pass, copy rows once.
    std::vector<int32_t> owner(keys.size());
    std::vector<size_t> count(I.servers.size(), 0);
    for (size_t i = 0; i < keys.size(); ++i) count[owner[i] = I.OwnerOf(keys[i])]++;
    for (size_t s = 0; s < I.servers.size(); ++s) {
      shard_keys[s].reserve(count[s]);
      shard_vals[s].reserve(count[s] * dim);
    }
    for (size_t i = 0; i < keys.size(); ++i) {
      shard_keys[owner[i]].push_back(keys[i]);
      shard_vals[owner[i]].insert(shard_vals[owner[i]].end(), grads + i * dim,
                                  grads + (i + 1) * dim);
    }
  }
  // Otherwise sum gradients of repeated keys, per shard.
  std::unordered_map<uint64_t, std::pair<int, uint32_t>> seen;
  if (!keys_unique) seen.reserve(keys.size());
  for (size_t i = 0; i < keys.size() && !keys_unique; ++i) {
    auto it = seen.find(keys[i]);
    const float* g = grads + i * dim;
    if (it != seen.end()) {
      float* dst =
          shard_vals[it->second.first].data() + static_cast<size_t>(it->second.second) * dim;
      for (uint32_t c = 0; c < dim; ++c) dst[c] += g[c];
      continue;
    }
    int s = I.OwnerOf(keys[i]);
    seen.emplace(keys[i], std::make_pair(s, static_cast<uint32_t>(shard_keys[s].size())));
    shard_keys[s].push_back(keys[i]);
    shard_vals[s].insert(shard_vals[s].end(), g, g + dim);
  }
  for (size_t s = 0; s < I.servers.size(); ++s) {
    if (shard_keys[s].empty() && !all_servers) continue;
    uint64_t wire = I.next_wire_id++;
    Message m = MakeDataMessage(MsgType::kPush, I.membership->node_id(), wire, round, table, dim,
                                Buffer::FromVector(std::move(shard_keys[s])),
                                Buffer::FromVector(std::move(shard_vals[s])), I.options.checksum);
    ShardPart part;
    part.server = static_cast<int>(s);
    req.parts[wire] = std::move(part);
    req.remaining++;
    I.wire_to_request[wire] = id;
    Status st = I.SendTo(static_cast<int>(s), m);
    if (!st.ok()) {
      req.status = st;
      req.parts[wire].done = true;
      req.remaining--;
      I.wire_to_request.erase(wire);
    }
  }
  return id;
}

Status Client::Wait(uint64_t id, PullResult* result) {
  Impl& I = *impl_;
  auto it = I.requests.find(id);
  if (it == I.requests.end()) return NotFound("no pending request " + std::to_string(id));
  while (it->second.remaining > 0) {
    Request& req = it->second;
    if (Clock::now() > req.deadline) {
      req.status = DeadlineExceeded("request timed out after " +
                                    std::to_string(I.options.request_timeout_ms) + " ms");
      break;
    }
    if (I.membership->shutdown_requested()) {
      req.status = Cancelled("cluster is shutting down");
      break;
    }
    // A shard that the scheduler declared dead will not answer.
    ClusterView v = I.membership->view();
    for (auto& [wire, part] : req.parts) {
      if (!part.done && part.server < static_cast<int>(v.servers.size()) &&
          !v.servers[part.server].alive) {
        req.status = Unavailable("server rank " + std::to_string(part.server) + " is down");
      }
    }
    if (!req.status.ok() && req.status.code() == StatusCode::kUnavailable) break;
    PHX_RETURN_IF_ERROR(I.Drain(10));
  }
  Request req = std::move(it->second);
  I.requests.erase(it);
  for (auto& [wire, part] : req.parts) I.wire_to_request.erase(wire);
  if (req.status.ok() && req.is_pull && !req.expand.empty()) {
    for (size_t i = 0; i < req.expand.size(); ++i) {
      std::memcpy(req.out + i * req.dim,
                  req.unique_out.data() + static_cast<size_t>(req.expand[i]) * req.dim,
                  req.dim * sizeof(float));
    }
  }
  if (result) result->version = req.min_version == INT64_MAX ? -1 : req.min_version;
  return req.status;
}

Status Client::Pull(uint32_t table, std::span<const uint64_t> keys, uint32_t dim,
                    int64_t min_version, float* out, PullResult* result, bool keys_unique) {
  PHX_ASSIGN_OR_RETURN(uint64_t id, PullAsync(table, keys, dim, min_version, out, keys_unique));
  return Wait(id, result);
}

Status Client::Push(uint32_t table, std::span<const uint64_t> keys, uint32_t dim,
                    const float* grads, int64_t round, bool all_servers, bool keys_unique) {
  PHX_ASSIGN_OR_RETURN(uint64_t id,
                       PushAsync(table, keys, dim, grads, round, all_servers, keys_unique));
  return Wait(id);
}

}  // namespace phalanx::worker
