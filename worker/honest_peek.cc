#include "worker/honest_peek.h"

#include <chrono>
#include <cstring>

#include "common/message.h"

namespace phalanx::worker {

Result<std::unique_ptr<HonestPeek>> HonestPeek::Create(const ClusterView& view, int32_t sender,
                                                       int timeout_ms, const WireLimits& limits) {
  std::unique_ptr<HonestPeek> p(new HonestPeek());
  p->view_ = view;
  p->sender_ = sender;
  p->timeout_ms_ = timeout_ms;
  for (const auto& s : view.servers) {
    std::string ep = TcpEndpoint(s.host, s.data_port);
    PHX_ASSIGN_OR_RETURN(auto sock, Socket::Connect(Socket::Kind::kDealer, ep, limits));
    p->servers_.push_back(std::move(sock));
  }
  if (p->servers_.empty()) return FailedPrecondition("honest peek: the cluster has no server");
  return p;
}

Result<std::vector<float>> HonestPeek::Fetch(uint32_t table, std::span<const uint64_t> keys,
                                             uint32_t dim, int64_t round, int* honest_workers) {
  const size_t ns = servers_.size();
  // Split keys by owning server, remembering each key's position.
  std::vector<std::vector<uint64_t>> part(ns);
  std::vector<std::vector<size_t>> where(ns);
  for (size_t i = 0; i < keys.size(); ++i) {
    uint32_t slot = SlotOfKey(keys[i], view_.num_slots);
    int32_t owner = slot < view_.slot_owner.size() ? view_.slot_owner[slot] : -1;
    if (owner < 0 || static_cast<size_t>(owner) >= ns) {
      return FailedPrecondition("honest peek: slot " + std::to_string(slot) + " has no server");
    }
    part[owner].push_back(keys[i]);
    where[owner].push_back(i);
  }
  std::vector<uint64_t> request(ns, 0);
  for (size_t s = 0; s < ns; ++s) {
    if (part[s].empty()) continue;
    request[s] = next_request_++;
    Message m;
    m.header.type = MsgType::kHonestPeek;
    m.header.sender = sender_;
    m.header.request_id = request[s];
    m.header.round = round;
    m.header.table_id = table;
    m.header.dim = dim;
    m.header.num_keys = part[s].size();
    m.keys = Buffer::Copy(part[s].data(), part[s].size() * sizeof(uint64_t));
    PHX_RETURN_IF_ERROR(servers_[s]->Send(m));
  }
  int h = -1;
  std::vector<float> out;
  const size_t rows = keys.size() * dim;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms_);
  for (size_t s = 0; s < ns; ++s) {
    if (request[s] == 0) continue;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now())
                      .count();
      if (left <= 0) return DeadlineExceeded("honest peek: server did not answer in time");
      Received r = servers_[s]->Recv(static_cast<int>(left));
      if (!r.status.ok()) {
        if (r.status.code() == StatusCode::kDeadlineExceeded) continue;
        return r.status;
      }
      if (r.msg.header.request_id != request[s]) continue;  // a late answer to an older peek
      if (r.msg.header.type == MsgType::kError) {
        return Status(static_cast<StatusCode>(r.msg.header.status_code), r.msg.body);
      }
      if (r.msg.header.type != MsgType::kHonestPeekResponse || r.msg.header.dim != dim) {
        return Internal("honest peek: unexpected answer from server " + std::to_string(s));
      }
      const size_t per = part[s].size() * dim;
      const size_t got = r.msg.header.num_values;
      if (per == 0 || got % per != 0) return Internal("honest peek: answer of the wrong size");
      int hs = static_cast<int>(got / per);
      if (h < 0) {
        h = hs;
        out.assign(rows * static_cast<size_t>(h), 0.0f);
      } else if (hs != h) {
        // The shards saw different honest sets (a worker died mid-round).
        return Aborted("honest peek: shards disagree on the honest workers");
      }
      auto v = r.msg.value_span();
      for (int j = 0; j < h; ++j) {
        const float* src = v.data() + static_cast<size_t>(j) * per;
        float* col = out.data() + static_cast<size_t>(j) * rows;
        for (size_t i = 0; i < where[s].size(); ++i) {
          std::memcpy(col + where[s][i] * dim, src + i * dim, dim * sizeof(float));
        }
      }
      break;
    }
  }
  *honest_workers = std::max(h, 0);
  return out;
}

}  // namespace phalanx::worker
