#include "ps/internal/round_coordinator.h"

#include <spdlog/spdlog.h>

namespace phalanx::ps::internal {

RoundCoordinator::RoundCoordinator(aggregators::Aggregator* rule, ServerMetrics* metrics,
                                   const ClusterView* view, WireLimits limits, int32_t rank,
                                   int32_t self, int exclude_after)
    : rule_(rule),
      metrics_(metrics),
      view_(view),
      limits_(limits),
      rank_(rank),
      self_(self),
      exclude_after_(exclude_after) {}

int RoundCoordinator::CoordinatorRank() const {
  for (const auto& s : view_->servers) {
    if (s.alive) return s.rank;
  }
  return rank_;
}

void RoundCoordinator::SendPartial(uint32_t table, int64_t round, const GramPartial& partial,
                                   Outbox* out, std::vector<LocalPlan>* mine) {
  if (IsCoordinator()) {
    AddPartial(table, round, rank_, "", partial, out, mine);
    return;
  }
  Status s = EnsureSocket();
  if (s.ok()) {
    std::string body = EncodePartial(partial);
    metrics_->coordination_bytes.Increment(body.size());
    Message m = MakeControlMessage(MsgType::kGramPartial, self_, 0, std::move(body));
    m.header.round = round;
    m.header.table_id = table;
    s = socket_->Send(m);
  }
  if (!s.ok()) spdlog::warn("server: cannot reach the round coordinator: {}", s.ToString());
}

Status RoundCoordinator::EnsureSocket() {
  int rank = CoordinatorRank();
  if (rank < 0 || rank >= static_cast<int>(view_->servers.size())) {
    return Unavailable("no live coordinator");
  }
  const NodeInfo& c = view_->servers[rank];
  std::string ep = TcpEndpoint(c.host, c.data_port);
  if (socket_ && endpoint_ == ep) return Status::Ok();
  PHX_ASSIGN_OR_RETURN(socket_, Socket::Connect(Socket::Kind::kDealer, ep, limits_));
  endpoint_ = ep;
  return Status::Ok();
}

Status RoundCoordinator::OnPartial(const std::string& peer, const Message& msg, size_t num_tables,
                                   Outbox* out, std::vector<LocalPlan>* mine) {
  int rank = -1;
  for (const auto& s : view_->servers) {
    if (s.id == msg.header.sender && s.alive) rank = s.rank;
  }
  if (rank < 0) return Unauthenticated("GramPartial from a node that is not a live server");
  if (msg.header.table_id >= num_tables) {
    return NotFound("unknown table " + std::to_string(msg.header.table_id));
  }
  PHX_ASSIGN_OR_RETURN(GramPartial partial, DecodePartial(msg.body));
  metrics_->coordination_bytes.Increment(msg.body.size());
  AddPartial(msg.header.table_id, msg.header.round, rank, peer, std::move(partial), out, mine);
  return Status::Ok();
}

void RoundCoordinator::AddPartial(uint32_t table, int64_t round, int rank, const std::string& peer,
                                  GramPartial partial, Outbox* out, std::vector<LocalPlan>* mine) {
  Collect& c = collecting_[{table, round}];
  c.partials[rank] = std::move(partial);
  c.peers[rank] = peer;
  TryCombine(table, round, out, mine);
}

void RoundCoordinator::Recombine(Outbox* out, std::vector<LocalPlan>* mine) {
  std::vector<std::pair<uint32_t, int64_t>> keys;
  for (auto& [k, c] : collecting_) keys.push_back(k);
  for (auto& [table, round] : keys) TryCombine(table, round, out, mine);
}

void RoundCoordinator::TryCombine(uint32_t table, int64_t round, Outbox* out,
                                  std::vector<LocalPlan>* mine) {
  auto it = collecting_.find({table, round});
  if (it == collecting_.end()) return;
  Collect& c = it->second;
  for (const auto& s : view_->servers) {
    if (s.alive && !c.partials.count(s.rank)) return;
  }
  std::vector<GramPartial> parts;
  for (auto& [rank, p] : c.partials) parts.push_back(std::move(p));
  RoundPlan plan = Plan(table, round, std::move(parts));
  std::string body = EncodePlan(plan);
  for (auto& [rank, peer] : c.peers) {
    if (peer.empty()) continue;
    Message m = MakeControlMessage(MsgType::kGramPlan, self_, 0, body);
    m.header.round = round;
    m.header.table_id = table;
    metrics_->coordination_bytes.Increment(body.size());
    out->push_back({peer, std::move(m)});
  }
  bool to_me = c.peers.count(rank_) > 0;
  collecting_.erase(it);
  metrics_->coordinated_rounds.Increment();
  if (to_me) mine->push_back({table, round, std::move(plan)});
}

RoundPlan RoundCoordinator::Plan(uint32_t table, int64_t round, std::vector<GramPartial> partials) {
  RoundPlan plan = CombinePartials(*rule_, partials);
  if (partials.empty()) return plan;
  // Every live shard applied the same plans, so any partial's state is the
  // cluster's (a restored shard's starts empty: when it is the lowest rank,
  // the quorum is relearned).
  std::vector<QuorumChange> changes;
  plan.quorum = NextQuorum(partials[0].quorum, partials, view_->workers, exclude_after_, &changes);
  const int size = QuorumSize(plan.quorum, view_->workers, exclude_after_);
  for (const auto& c : changes) changes_.push_back({table, round, c, size});
  return plan;
}

void RoundCoordinator::Drain(size_t num_tables, std::vector<LocalPlan>* mine) {
  if (!socket_) return;
  while (true) {
    Received r = socket_->Recv(0);
    if (r.status.code() == StatusCode::kDeadlineExceeded) return;
    if (!r.status.ok()) {
      metrics_->rejected.Increment();
      continue;
    }
    const Message& m = r.msg;
    if (m.header.type == MsgType::kError) {
      spdlog::warn("server: coordinator refused our partial: {}", StatusFromError(m).ToString());
      continue;
    }
    if (m.header.type != MsgType::kGramPlan || m.header.table_id >= num_tables) continue;
    auto plan = DecodePlan(m.body);
    if (!plan.ok()) {
      metrics_->rejected.Increment();
      spdlog::warn("server: bad plan from coordinator: {}", plan.status().ToString());
      continue;
    }
    metrics_->coordination_bytes.Increment(m.body.size());
    mine->push_back({m.header.table_id, m.header.round, std::move(plan).value()});
  }
}

}  // namespace phalanx::ps::internal
