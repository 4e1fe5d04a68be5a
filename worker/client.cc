#include "worker/client.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

#include "common/membership.h"
#include "common/transport.h"
#include "worker/internal/key_router.h"
#include "worker/internal/pending_requests.h"

namespace phalanx::worker {

using Clock = std::chrono::steady_clock;
using internal::KeyRouter;
using internal::PendingRequests;
using internal::Request;
using internal::ShardPart;

struct Client::Impl {
  ClientOptions options;
  std::unique_ptr<MembershipClient> membership;
  ClusterView view;
  std::vector<std::unique_ptr<Socket>> servers;  // by server rank
  std::vector<std::string> endpoints;
  std::vector<bool> checksum;  // by server rank: checksum requests to it
  PendingRequests pending;
  // Liveness of the servers as of liveness_epoch, for Wait.
  ClusterView liveness;
  int64_t liveness_epoch = -1;
  KeyRouter router;  // dedup and routing scratch, reused across requests
  // Caller memory lent to ZeroMQ by Push and not yet released by it (the
  // count is shared with the buffers' owners, which ZeroMQ's I/O thread may
  // drop after the client is gone).
  std::shared_ptr<std::atomic<int64_t>> lent = std::make_shared<std::atomic<int64_t>>(0);

  // A Buffer over caller memory [data, data + size) that counts as lent until
  // its last copy (ZeroMQ's, after a zero-copy send) is dropped.
  Buffer Lend(const void* data, size_t size) {
    lent->fetch_add(1, std::memory_order_relaxed);
    std::shared_ptr<const void> holder(
        data, [count = lent](const void*) { count->fetch_sub(1, std::memory_order_release); });
    return Buffer(std::move(holder), static_cast<const std::byte*>(data), size);
  }

  // Waits until ZeroMQ released every lent buffer. After a successful push
  // it has written every byte (the servers acknowledged the whole messages)
  // and lets go within microseconds. After a failure a message may sit in a
  // socket's queue for a server that will not take it: closing the sockets
  // (linger 0) makes ZeroMQ drop it; they reconnect on the next request.
  void ReclaimLent(bool failed) {
    const auto start = Clock::now();
    bool reset = false;
    while (lent->load(std::memory_order_acquire) != 0) {
      if (failed && !reset && Clock::now() - start > std::chrono::milliseconds(50)) {
        spdlog::warn(
            "worker: a failed push is still queued in ZeroMQ; reconnecting to the servers");
        for (auto& sock : servers) sock.reset();
        view.epoch = -1;  // the next request refreshes the view and reconnects
        reset = true;
      }
      if (Clock::now() - start > std::chrono::seconds(30)) {
        // Returning would let ZeroMQ read memory the caller owns again.
        spdlog::critical("worker: ZeroMQ kept a lent push buffer for 30 s; aborting");
        std::abort();
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  Status RefreshView() {
    int64_t epoch = membership->epoch();
    if (epoch == view.epoch && !servers.empty()) return Status::Ok();
    view = membership->view();
    servers.resize(view.servers.size());
    endpoints.resize(view.servers.size());
    checksum.assign(view.servers.size(), false);
    for (size_t s = 0; s < view.servers.size(); ++s) {
      const std::string& host = view.servers[s].host;
      checksum[s] = options.checksum == ChecksumMode::kAlways ||
                    (options.checksum == ChecksumMode::kAuto && !IsLoopbackHost(host));
      std::string ep = TcpEndpoint(host, view.servers[s].data_port);
      if (servers[s] && endpoints[s] == ep) continue;  // null after ReclaimLent: reconnect
      // New or replaced server: (re)connect.
      PHX_ASSIGN_OR_RETURN(servers[s], Socket::Connect(Socket::Kind::kDealer, ep, options.limits));
      endpoints[s] = ep;
    }
    return Status::Ok();
  }

  // Rows per message for rows of `dim` floats (options.max_part_bytes).
  size_t PartRows(uint32_t dim) const {
    if (options.max_part_bytes == 0) return SIZE_MAX;
    return std::max<size_t>(1, options.max_part_bytes / (std::max<size_t>(dim, 1) * sizeof(float)));
  }

  // Registers a part of request `id` and sends its message.
  void SendPart(uint64_t id, Request& req, ShardPart part, MsgType type, int64_t round,
                int32_t client, uint32_t table, uint32_t dim, Buffer keys, Buffer values,
                uint8_t flags = 0) {
    const int s = part.server;
    const uint64_t wire = pending.AddPart(id, req, std::move(part));
    Message m = MakeDataMessage(type, membership->node_id(), wire, round, table, dim,
                                std::move(keys), std::move(values), checksum[s]);
    m.header.flags = flags;
    m.header.client = client;
    Status st = servers[s]->Send(m);
    if (!st.ok()) {
      pending.FailLastPart(req, st.WithContext("sending to server rank " + std::to_string(s)));
    }
  }

  // Receives whatever is ready on any server socket, waiting up to timeout_ms.
  Status Drain(int timeout_ms) {
    if (servers.size() == 1) {
      // One socket: let its receive do the waiting (one poll, not two).
      Received r = servers[0]->Recv(timeout_ms);
      while (r.status.code() != StatusCode::kDeadlineExceeded) {
        pending.Deliver(r, 0);
        r = servers[0]->Recv(0);
      }
      return Status::Ok();
    }
    std::vector<Socket*> socks;
    for (auto& s : servers) socks.push_back(s.get());
    PHX_ASSIGN_OR_RETURN(auto ready, PollReadable(socks, timeout_ms));
    for (size_t i = 0; i < ready.size(); ++i) {
      if (!ready[i]) continue;
      for (Received r = servers[i]->Recv(0); r.status.code() != StatusCode::kDeadlineExceeded;
           r = servers[i]->Recv(0)) {
        pending.Deliver(r, i);
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
  mo.config_fingerprint = options.config_fingerprint;
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
                                   int64_t min_version, float* out, bool keys_unique,
                                   int32_t client) {
  Impl& I = *impl_;
  PHX_RETURN_IF_ERROR(I.RefreshView());
  if (keys.size() > UINT32_MAX) return InvalidArgument("too many keys in one pull");
  uint64_t id;
  Request& req = I.pending.Start(&id);
  req.is_pull = true;
  req.dim = dim;
  req.out = out;
  req.deadline = Clock::now() + std::chrono::milliseconds(I.options.request_timeout_ms);
  std::span<const uint64_t> unique = keys;
  if (!keys_unique && I.router.Dedup(keys)) {
    // Repeated keys: pull each once into unique_out, expand in Wait.
    req.expand = I.router.unique_of;
    req.unique_out.resize(I.router.unique_keys.size() * dim);
    unique = I.router.unique_keys;
  }
  if (unique.empty()) return id;  // nothing to ask; Wait returns at once
  BufferPool& pool = BufferPool::Global();
  const int only = I.router.Route(unique, I.view, I.servers.size());
  const size_t step = I.PartRows(dim);
  if (only >= 0) {
    // Every key on one shard, in order: the replies are the output block itself.
    Buffer all_keys = pool.Copy(unique.data(), unique.size_bytes());
    for (size_t off = 0; off < unique.size(); off += step) {
      ShardPart part;
      part.server = only;
      part.identity = true;
      part.first_row = off;
      part.rows = std::min(step, unique.size() - off);
      I.SendPart(id, req, std::move(part), MsgType::kPull, min_version, client, table, dim,
                 all_keys.Slice(off * sizeof(uint64_t), part.rows * sizeof(uint64_t)), Buffer());
    }
    return id;
  }
  const size_t ns = I.servers.size();
  std::vector<uint64_t*> shard_keys(ns, nullptr);
  std::vector<Buffer> key_bufs(ns);
  std::vector<ShardPart> parts(ns);
  for (size_t s = 0; s < ns; ++s) {
    if (I.router.shard_count[s] == 0) continue;
    key_bufs[s] = pool.Uninitialized<uint64_t>(I.router.shard_count[s], &shard_keys[s]);
    parts[s].server = static_cast<int>(s);
    parts[s].rows = I.router.shard_count[s];
    parts[s].positions.resize(I.router.shard_count[s]);
  }
  for (size_t i = 0; i < unique.size(); ++i) {
    const int s = I.router.owner[i];
    const uint32_t r = I.router.row_in_shard[i];
    shard_keys[s][r] = unique[i];
    parts[s].positions[r] = static_cast<uint32_t>(i);
  }
  for (size_t s = 0; s < ns; ++s) {
    const size_t count = I.router.shard_count[s];
    if (count == 0) continue;
    if (count <= step) {
      I.SendPart(id, req, std::move(parts[s]), MsgType::kPull, min_version, client, table, dim,
                 std::move(key_bufs[s]), Buffer());
      continue;
    }
    for (size_t off = 0; off < count; off += step) {
      ShardPart part;
      part.server = static_cast<int>(s);
      part.rows = std::min(step, count - off);
      part.positions.assign(parts[s].positions.begin() + static_cast<ptrdiff_t>(off),
                            parts[s].positions.begin() + static_cast<ptrdiff_t>(off + part.rows));
      I.SendPart(id, req, std::move(part), MsgType::kPull, min_version, client, table, dim,
                 key_bufs[s].Slice(off * sizeof(uint64_t), part.rows * sizeof(uint64_t)), Buffer());
    }
  }
  return id;
}

Result<uint64_t> Client::PushAsync(uint32_t table, std::span<const uint64_t> keys, uint32_t dim,
                                   const float* grads, int64_t round, bool all_servers,
                                   bool keys_unique, int32_t client) {
  return StartPush(table, keys, dim, grads, round, all_servers, keys_unique, client,
                   /*lend=*/false);
}

Result<uint64_t> Client::StartPush(uint32_t table, std::span<const uint64_t> keys, uint32_t dim,
                                   const float* grads, int64_t round, bool all_servers,
                                   bool keys_unique, int32_t client, bool lend) {
  Impl& I = *impl_;
  PHX_RETURN_IF_ERROR(I.RefreshView());
  if (keys.size() > UINT32_MAX) return InvalidArgument("too many keys in one push");
  uint64_t id;
  Request& req = I.pending.Start(&id);
  req.dim = dim;
  req.deadline = Clock::now() + std::chrono::milliseconds(I.options.request_timeout_ms);
  BufferPool& pool = BufferPool::Global();
  const size_t ns = I.servers.size();
  // Repeated keys have their gradients summed into one row.
  const bool repeats = !keys_unique && I.router.Dedup(keys);
  std::span<const uint64_t> unique =
      repeats ? std::span<const uint64_t>(I.router.unique_keys) : keys;
  const int only = I.router.Route(unique, I.view, I.servers.size());
  std::vector<Buffer> key_bufs(ns), val_bufs(ns);
  const size_t step = I.options.split_pushes ? I.PartRows(dim) : SIZE_MAX;
  const size_t row_bytes = size_t{dim} * sizeof(float);
  // Payload straight from the caller's arrays: lent to ZeroMQ or copied.
  auto payload = [&](const void* data, size_t size) {
    return lend ? I.Lend(data, size) : pool.Copy(data, size);
  };
  if (only >= 0 && !repeats && keys.size() > step) {
    // One shard, no repeats, several parts: lend or copy each part of the
    // caller's arrays and send it at once, so the first part is on the wire
    // (and being applied) while the next one is copied.
    for (size_t off = 0; off < keys.size(); off += step) {
      const size_t rows = std::min(step, keys.size() - off);
      const bool last = off + rows >= keys.size();
      ShardPart part;
      part.server = only;
      I.SendPart(id, req, std::move(part), MsgType::kPush, round, client, table, dim,
                 payload(keys.data() + off, rows * sizeof(uint64_t)),
                 payload(grads + off * dim, rows * row_bytes), last ? 0 : kFlagMoreParts);
    }
    for (size_t s = 0; s < ns; ++s) {
      if (static_cast<int>(s) == only || !all_servers) continue;
      ShardPart part;
      part.server = static_cast<int>(s);
      I.SendPart(id, req, std::move(part), MsgType::kPush, round, client, table, dim, Buffer(),
                 Buffer());
    }
    return id;
  }
  if (only >= 0 && !repeats) {
    // One shard, no repeats: the payload is the caller's arrays, lent or
    // copied whole.
    key_bufs[only] = payload(keys.data(), keys.size_bytes());
    val_bufs[only] = payload(grads, keys.size() * row_bytes);
  } else {
    std::vector<uint64_t*> shard_keys(ns, nullptr);
    std::vector<float*> shard_vals(ns, nullptr);
    for (size_t s = 0; s < ns; ++s) {
      if (I.router.shard_count[s] == 0) continue;
      key_bufs[s] = pool.Uninitialized<uint64_t>(I.router.shard_count[s], &shard_keys[s]);
      val_bufs[s] = pool.Uninitialized<float>(I.router.shard_count[s] * dim, &shard_vals[s]);
    }
    // Unique key u goes to shard owner_of(u), row row_of(u).
    auto owner_of = [&](size_t u) { return only >= 0 ? only : I.router.owner[u]; };
    auto row_of = [&](size_t u) -> size_t { return only >= 0 ? u : I.router.row_in_shard[u]; };
    for (size_t u = 0; u < unique.size(); ++u) shard_keys[owner_of(u)][row_of(u)] = unique[u];
    if (!repeats) {
      for (size_t i = 0; i < keys.size(); ++i) {
        std::memcpy(shard_vals[owner_of(i)] + row_of(i) * dim, grads + i * dim, row_bytes);
      }
    } else {
      uint32_t seen = 0;  // unique keys are numbered in first-occurrence order
      for (size_t i = 0; i < keys.size(); ++i) {
        const uint32_t u = I.router.unique_of[i];
        float* dst = shard_vals[owner_of(u)] + row_of(u) * dim;
        const float* g = grads + i * dim;
        if (u == seen) {
          std::memcpy(dst, g, row_bytes);
          ++seen;
        } else {
          for (uint32_t c = 0; c < dim; ++c) dst[c] += g[c];
        }
      }
    }
  }
  for (size_t s = 0; s < ns; ++s) {
    const size_t count = I.router.shard_count[s];
    if (count == 0 && !all_servers) continue;
    // Parts of one push, all but the last flagged kFlagMoreParts.
    for (size_t off = 0;; off += step) {
      const size_t rows = std::min(step, count - off);
      const bool last = off + rows >= count;
      ShardPart part;
      part.server = static_cast<int>(s);
      Buffer k = last && off == 0
                     ? std::move(key_bufs[s])
                     : key_bufs[s].Slice(off * sizeof(uint64_t), rows * sizeof(uint64_t));
      Buffer v = last && off == 0 ? std::move(val_bufs[s])
                                  : val_bufs[s].Slice(off * row_bytes, rows * row_bytes);
      I.SendPart(id, req, std::move(part), MsgType::kPush, round, client, table, dim, std::move(k),
                 std::move(v), last ? 0 : kFlagMoreParts);
      if (last) break;
    }
  }
  return id;
}

Status Client::Wait(uint64_t id, PullResult* result) {
  Impl& I = *impl_;
  Request* pending = I.pending.Find(id);
  if (pending == nullptr) return NotFound("no pending request " + std::to_string(id));
  while (pending->remaining > 0) {
    Request& req = *pending;
    if (Clock::now() > req.deadline) {
      req.status = DeadlineExceeded("request timed out after " +
                                    std::to_string(I.options.request_timeout_ms) + " ms");
      break;
    }
    if (I.membership->shutdown_requested()) {
      req.status = Cancelled("cluster is shutting down");
      break;
    }
    // A shard that the scheduler declared dead will not answer. The view is
    // copied only when its epoch moved, not on every turn of this loop.
    if (const int64_t epoch = I.membership->epoch(); epoch != I.liveness_epoch) {
      I.liveness = I.membership->view();
      I.liveness_epoch = epoch;
    }
    const ClusterView& v = I.liveness;
    if (Status h = I.membership->health(); !h.ok()) req.status = h;  // lost the scheduler
    for (const ShardPart& part : req.parts) {
      if (part.done || part.server >= static_cast<int>(v.servers.size())) continue;
      const NodeInfo& sv = v.servers[part.server];
      if (!sv.alive) {
        req.status = Unavailable("server rank " + std::to_string(part.server) + " is down");
      } else if (part.server < static_cast<int>(I.endpoints.size()) &&
                 TcpEndpoint(sv.host, sv.data_port) != I.endpoints[part.server]) {
        // A replacement took the rank over: the old process will not answer.
        req.status = Unavailable("server rank " + std::to_string(part.server) + " was replaced");
      }
    }
    if (!req.status.ok() && req.status.code() == StatusCode::kUnavailable) break;
    PHX_RETURN_IF_ERROR(I.Drain(10));
  }
  int64_t min_version;
  Status status = I.pending.Finish(id, &min_version);
  if (result) result->version = min_version == INT64_MAX ? -1 : min_version;
  return status;
}

Status Client::Pull(uint32_t table, std::span<const uint64_t> keys, uint32_t dim,
                    int64_t min_version, float* out, PullResult* result, bool keys_unique,
                    int32_t client) {
  // A shard that is down (or was just replaced) is retried with backoff until
  // its replacement answers, for at most request_timeout_ms in all.
  const auto deadline = Clock::now() + std::chrono::milliseconds(impl_->options.request_timeout_ms);
  auto backoff = std::chrono::milliseconds(50);
  for (int attempt = 1;; ++attempt) {
    PHX_ASSIGN_OR_RETURN(uint64_t id,
                         PullAsync(table, keys, dim, min_version, out, keys_unique, client));
    Status s = Wait(id, result);
    if (s.code() != StatusCode::kUnavailable || !impl_->membership->health().ok()) return s;
    if (Clock::now() + backoff > deadline) {
      return s.WithContext("pull gave up after " + std::to_string(attempt) + " attempts in " +
                           std::to_string(impl_->options.request_timeout_ms) +
                           " ms (cluster.request_timeout_ms)");
    }
    if (attempt == 1) spdlog::warn("worker: pull: {}; retrying until it is back", s.ToString());
    std::this_thread::sleep_for(backoff);
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::milliseconds(1000));
  }
}

Status Client::Push(uint32_t table, std::span<const uint64_t> keys, uint32_t dim,
                    const float* grads, int64_t round, bool all_servers, bool keys_unique) {
  Result<uint64_t> id =
      StartPush(table, keys, dim, grads, round, all_servers, keys_unique, kNoClient, /*lend=*/true);
  Status s = id.ok() ? Wait(id.value()) : id.status();
  impl_->ReclaimLent(/*failed=*/!s.ok());
  return s;
}

}  // namespace phalanx::worker