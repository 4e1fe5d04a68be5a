#include "worker/internal/pending_requests.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace phalanx::worker::internal {
namespace {

// Copies row j of src to row pos[j] of dst for every j (dim floats per row).
void Scatter(const float* src, const uint32_t* pos, size_t rows, uint32_t dim, float* dst) {
  if (dim == 16) {
    // Constant size: one 64-byte load/store pair per row instead of a memcpy call.
    for (size_t j = 0; j < rows; ++j) {
      std::memcpy(dst + static_cast<size_t>(pos[j]) * 16, src + j * 16, 16 * sizeof(float));
    }
    return;
  }
  for (size_t j = 0; j < rows; ++j) {
    std::memcpy(dst + static_cast<size_t>(pos[j]) * dim, src + j * dim, dim * sizeof(float));
  }
}

}  // namespace

Request& PendingRequests::Start(uint64_t* id) {
  *id = next_request_++;
  return requests_[*id];
}

Request* PendingRequests::Find(uint64_t id) {
  auto it = requests_.find(id);
  return it == requests_.end() ? nullptr : &it->second;
}

uint64_t PendingRequests::AddPart(uint64_t id, Request& req, ShardPart part) {
  part.wire = next_wire_id_++;
  req.parts.push_back(std::move(part));
  req.remaining++;
  wire_to_request_[req.parts.back().wire] = id;
  return req.parts.back().wire;
}

void PendingRequests::FailLastPart(Request& req, Status status) {
  req.status = std::move(status);
  req.parts.back().done = true;
  req.remaining--;
  wire_to_request_.erase(req.parts.back().wire);
}

void PendingRequests::Complete(Request& req, uint64_t wire_id, const Message& m) {
  auto it = std::find_if(req.parts.begin(), req.parts.end(),
                         [wire_id](const ShardPart& p) { return p.wire == wire_id; });
  if (it == req.parts.end() || it->done) return;
  ShardPart& part = *it;
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
  if (m.header.type != MsgType::kPullResponse || values.size() != part.rows * req.dim ||
      m.header.dim != req.dim) {
    if (req.status.ok()) {
      req.status = DataLoss("pull response from server rank " + std::to_string(part.server) +
                            " has " + std::to_string(values.size()) + " values, expected " +
                            std::to_string(part.rows * req.dim));
    }
    return;
  }
  float* base = req.expand.empty() ? req.out : req.unique_out.data();
  if (part.identity) {
    std::memcpy(base + part.first_row * req.dim, values.data(), values.size() * sizeof(float));
  } else {
    Scatter(values.data(), part.positions.data(), part.rows, req.dim, base);
  }
}

void PendingRequests::Deliver(const Received& r, size_t server) {
  if (!r.status.ok()) {
    spdlog::warn("worker: bad message from server rank {}: {}", server, r.status.ToString());
    return;
  }
  auto w = wire_to_request_.find(r.msg.header.request_id);
  if (w == wire_to_request_.end()) return;  // late answer to an abandoned request
  auto rq = requests_.find(w->second);
  wire_to_request_.erase(w);
  if (rq != requests_.end()) Complete(rq->second, r.msg.header.request_id, r.msg);
}

Status PendingRequests::Finish(uint64_t id, int64_t* min_version) {
  auto it = requests_.find(id);
  Request req = std::move(it->second);
  requests_.erase(it);
  for (const ShardPart& part : req.parts) wire_to_request_.erase(part.wire);
  if (req.status.ok() && req.is_pull && !req.expand.empty()) {
    for (size_t i = 0; i < req.expand.size(); ++i) {
      std::memcpy(req.out + i * req.dim,
                  req.unique_out.data() + static_cast<size_t>(req.expand[i]) * req.dim,
                  req.dim * sizeof(float));
    }
  }
  *min_version = req.min_version;
  return req.status;
}

}  // namespace phalanx::worker::internal
