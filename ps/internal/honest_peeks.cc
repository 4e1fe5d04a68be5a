#include "ps/internal/honest_peeks.h"

#include <algorithm>
#include <unordered_map>

namespace phalanx::ps::internal {

HonestPeeks::HonestPeeks(bool enabled, std::vector<int> byzantine_ranks)
    : enabled_(enabled), byzantine_ranks_(std::move(byzantine_ranks)) {}

bool HonestPeeks::IsByzantine(const ClusterView& view, int32_t id) const {
  for (const auto& w : view.workers) {
    if (w.id == id) {
      return std::find(byzantine_ranks_.begin(), byzantine_ranks_.end(), w.rank) !=
             byzantine_ranks_.end();
    }
  }
  return false;
}

Status HonestPeeks::Queue(const std::string& peer, Message msg, const ClusterView& view) {
  if (!enabled_) {
    return FailedPrecondition(
        "honest-gradient peeks are off (byzantine.omniscient = false or asynchronous mode)");
  }
  if (!IsByzantine(view, msg.header.sender)) {
    return Unauthenticated("only the configured Byzantine workers may read honest gradients");
  }
  queue_.push_back({peer, std::move(msg)});
  return Status::Ok();
}

bool HonestPeeks::HonestPushers(const ClusterView& view, const SyncRound& round,
                                std::vector<int32_t>* honest) const {
  for (const auto& w : view.workers) {
    if (!w.alive || IsByzantine(view, w.id)) continue;
    auto it = round.pushes().find(w.id);
    if (it == round.pushes().end()) return false;
    if (!it->second.excluded) honest->push_back(w.id);
  }
  std::sort(honest->begin(), honest->end());
  return true;
}

void HonestPeeks::Answer(const ClusterView& view, const std::vector<SyncRound>& rounds,
                         int32_t self, Outbox* out) {
  for (size_t i = 0; i < queue_.size();) {
    const Message& m = queue_[i].msg;
    const SyncRound& t = rounds[m.header.table_id];
    if (m.header.round < t.version()) {
      out->push_back(
          Refuse(self, queue_[i].peer, m.header,
                 Aborted("round " + std::to_string(m.header.round) + " already closed")));
      queue_.erase(queue_.begin() + static_cast<long>(i));
      continue;
    }
    std::vector<int32_t> honest;
    if (m.header.round != t.version() || !HonestPushers(view, t, &honest)) {
      ++i;
      continue;
    }
    const uint32_t dim = t.table().dim();
    auto keys = m.key_span();
    float* rows = nullptr;
    Buffer values = Buffer::Uninitialized<float>(honest.size() * keys.size() * dim, &rows);
    for (int32_t id : honest) {
      const WorkerPush& p = t.pushes().at(id);
      auto pk = p.keys.as<uint64_t>();
      auto pv = p.values.as<float>();
      std::unordered_map<uint64_t, size_t> index;
      index.reserve(pk.size());
      for (size_t j = 0; j < pk.size(); ++j) index.emplace(pk[j], j);
      for (uint64_t k : keys) {
        auto it = index.find(k);
        if (it == index.end()) {
          std::fill(rows, rows + dim, 0.0f);
        } else {
          std::copy_n(pv.data() + it->second * dim, dim, rows);
        }
        rows += dim;
      }
    }
    out->push_back(
        {queue_[i].peer, PeekReply(self, m.header, t.version(), dim, std::move(values))});
    queue_.erase(queue_.begin() + static_cast<long>(i));
  }
}

}  // namespace phalanx::ps::internal
