#include "launch/cluster/internal/snapshot_watch.h"

#include <nlohmann/json.hpp>

#include "common/http_client.h"

namespace phalanx::launch::internal {

void SnapshotWatch::MaybeScrape() {
  using Clock = std::chrono::steady_clock;
  if (scheduler_http_ <= 0 || Clock::now() - last_ < std::chrono::seconds(2)) return;
  last_ = Clock::now();
  auto sched = HttpGet(scheduler_host_, scheduler_http_, "/status", 300);
  if (!sched.ok() || sched->status != 200) return;
  auto j = nlohmann::json::parse(sched->body, nullptr, false);
  if (!j.is_object() || !j.contains("peers") || !j["peers"].is_array()) return;
  for (const auto& p : j["peers"]) {
    if (!p.is_object() || p.value("role", std::string()) != "server" || !p.value("alive", false)) {
      continue;
    }
    const std::string host = p.value("host", std::string());
    const int port = p.value("http_port", 0);
    if (host.empty() || port <= 0) continue;
    auto st = HttpGet(host, port, "/status", 300);
    if (!st.ok() || st->status != 200) continue;
    auto rec = SnapshotsFromStatus(st->body);
    if (!rec || rec->pid < 0) continue;
    // Counts only grow within a process; an exit line already read is final.
    auto [it, fresh] = by_pid_.try_emplace(rec->pid, *rec);
    if (!fresh && rec->snapshot_failures + rec->snapshots >=
                      it->second.snapshot_failures + it->second.snapshots) {
      it->second = *rec;
    }
  }
}

void SnapshotWatch::AddFinal(const std::vector<SnapshotsLine>& lines) {
  for (const auto& l : lines) {
    if (l.pid >= 0) by_pid_[l.pid] = l;
  }
}

int64_t SnapshotWatch::failures() const {
  int64_t n = 0;
  for (const auto& [pid, r] : by_pid_) n += r.snapshot_failures;
  return n;
}

std::vector<RankSnapshots> SnapshotWatch::ByRank() const {
  std::map<int, RankSnapshots> ranks;
  for (const auto& [pid, r] : by_pid_) {
    RankSnapshots& x = ranks[r.rank];
    x.rank = r.rank;
    x.snapshots += r.snapshots;
    x.snapshot_failures += r.snapshot_failures;
    x.last_snapshot_round = std::max(x.last_snapshot_round, r.last_snapshot_round);
  }
  std::vector<RankSnapshots> out;
  for (const auto& [rank, x] : ranks) out.push_back(x);
  return out;
}

}  // namespace phalanx::launch::internal
