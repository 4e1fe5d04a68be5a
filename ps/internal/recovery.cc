#include "ps/internal/recovery.h"

#include <spdlog/spdlog.h>

#include <filesystem>

namespace phalanx::ps::internal {

Recovery::Recovery(CheckpointOptions checkpoint, bool restore)
    : checkpoint_(std::move(checkpoint)), restore_(restore) {}

Recovery::~Recovery() { Join(); }

void Recovery::Join() {
  if (writer_.joinable()) writer_.join();
}

Status Recovery::CheckRestorable(const CheckpointOptions& checkpoint, bool restore,
                                 int requested_rank) {
  if (!restore) return Status::Ok();
  if (checkpoint.dir.empty())
    return InvalidArgument("--restore needs checkpoint.dir in the config");
  if (requested_rank >= 0 && ListSnapshots(checkpoint.dir, requested_rank).empty()) {
    return NotFound("--restore: no snapshot for server rank " + std::to_string(requested_rank) +
                    " in " + checkpoint.dir);
  }
  return Status::Ok();
}

Status Recovery::Restore(const ClusterView& view, int32_t rank, uint32_t num_servers,
                         const std::vector<TableOptions>& tables, std::vector<SyncRound>* rounds) {
  last_snapshot_time_ = Clock::now();
  metrics_.restored_round.Set(-1);
  const CheckpointOptions& cp = checkpoint_;
  const bool have = !cp.dir.empty() && !ListSnapshots(cp.dir, rank).empty();
  const bool replacement = view.epoch > 1;
  if (!restore_ && !(have && replacement)) {
    if (have) MoveStaleSnapshots(rank);
    return Status::Ok();
  }
  if (cp.dir.empty()) return InvalidArgument("--restore needs checkpoint.dir in the config");
  SnapshotExpectation e;
  e.rank = rank;
  e.num_slots = view.num_slots;
  e.num_servers = num_servers;
  e.tables = tables;
  auto start = Clock::now();
  auto loaded = LoadNewestSnapshot(cp.dir, e);
  if (!loaded.ok()) {
    if (restore_) {
      return loaded.status().WithContext("restoring server rank " + std::to_string(rank));
    }
    spdlog::error("server rank {}: no usable snapshot ({}); starting from initial values", rank,
                  loaded.status().ToString());
    return Status::Ok();
  }
  const double secs = SecondsSince(start);
  tables_.assign(rounds->size(), TableRecovery());
  size_t rows = 0;
  for (size_t i = 0; i < rounds->size(); ++i) {
    const int64_t v = loaded->info.tables[i].version;
    (*rounds)[i].Restore(std::move(loaded->tables[i]), v);
    rows += (*rounds)[i].table().size();
    tables_[i] = TableRecovery{true, false, v};
  }
  last_snapshot_version_ = loaded->info.round;
  last_snapshot_time_ = Clock::now();
  have_snapshot_ = true;  // the restored file is this round's snapshot
  metrics_.restored_round.Set(static_cast<double>(loaded->info.round));
  metrics_.restore_seconds.Set(secs);
  restored_round_ = loaded->info.round;
  spdlog::warn(
      "server rank {} restored from {} (round {}, {} rows) in {:.3f} s; waiting for "
      "the cluster's round to count the updates lost",
      rank, loaded->info.path, loaded->info.round, rows, secs);
  return Status::Ok();
}

// A fresh start must not later mistake another run's snapshots for its own.
void Recovery::MoveStaleSnapshots(int32_t rank) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path stale = fs::path(checkpoint_.dir) / "stale";
  fs::create_directories(stale, ec);
  for (const auto& f : ListSnapshots(checkpoint_.dir, rank)) {
    fs::rename(f, stale / fs::path(f).filename(), ec);
  }
  spdlog::warn("server rank {} starts fresh: moved its old snapshots to {}", rank, stale.string());
}

void Recovery::Align(const Header& h, int32_t rank, SyncRound* round, int32_t self, Outbox* out) {
  if (!align_pending(h.table_id)) return;
  TableRecovery& t = tables_[h.table_id];
  t.seen = true;
  if (h.round <= round->version() || round->closing()) return;
  if (h.type == MsgType::kPull && round->pushes().count(h.sender)) return;
  const int64_t lost = h.round - t.restored_version;
  spdlog::warn(
      "server rank {} table {}: restored at round {}, the cluster is at round {}: {} "
      "update(s) lost",
      rank, h.table_id, t.restored_version, h.round, lost);
  if (h.table_id == 0) {
    metrics_.updates_lost.Set(static_cast<double>(lost));
    updates_lost_ = lost;
  }
  round->JumpTo(h.round, self, out);
}

void Recovery::OnRoundClosed(uint32_t t) {
  if (t < tables_.size()) tables_[t].align_pending = false;
}

void Recovery::MaybeSnapshot(const std::vector<SyncRound>& rounds, int32_t rank, uint32_t num_slots,
                             uint32_t num_servers) {
  const CheckpointOptions& cp = checkpoint_;
  if (cp.dir.empty() || rounds.empty() || writer_busy_.load()) return;
  for (const auto& t : tables_) {
    if (t.align_pending && t.seen) return;  // in use, not yet at the cluster's round
  }
  const int64_t v = rounds[0].version();
  const auto now = Clock::now();
  const bool by_rounds = cp.every_rounds > 0 && v - last_snapshot_version_ >= cp.every_rounds;
  const bool by_time = cp.every_seconds > 0 &&
                       now - last_snapshot_time_ >= std::chrono::duration<double>(cp.every_seconds);
  if (!by_rounds && !by_time) return;
  last_snapshot_time_ = now;
  if (!by_rounds && v == last_snapshot_version_ && have_snapshot_) return;  // no news
  last_snapshot_version_ = v;
  std::vector<const EmbeddingTable*> tables;
  std::vector<int64_t> versions;
  for (const auto& t : rounds) {
    tables.push_back(&t.table());
    versions.push_back(t.version());
  }
  auto image = SnapshotImage::Capture(rank, num_slots, num_servers, tables, versions);
  metrics_.capture_seconds.Observe(SecondsSince(now));
  if (!image.ok()) {
    metrics_.snapshot_failures.Increment();
    snapshot_failures_.fetch_add(1);
    spdlog::error("server: snapshot capture failed: {}", image.status().ToString());
    return;
  }
  have_snapshot_ = true;
  StartWriter(std::move(image).value(), rank);
}

void Recovery::StartWriter(std::shared_ptr<const SnapshotImage> image, int32_t rank) {
  Join();
  writer_busy_ = true;
  writer_ = std::thread(
      [this, img = std::move(image), dir = checkpoint_.dir, keep = checkpoint_.keep, rank] {
        auto start = Clock::now();
        auto r = img->WriteTo(dir);
        if (r.ok()) {
          metrics_.write_seconds.Observe(SecondsSince(start));
          metrics_.snapshots.Increment();
          snapshots_written_.fetch_add(1);
          last_snapshot_round_.store(r->round);
          metrics_.snapshot_round.Set(static_cast<double>(r->round));
          metrics_.snapshot_bytes.Set(static_cast<double>(r->bytes));
          spdlog::info("server rank {}: snapshot of round {} written ({} bytes)", rank, r->round,
                       r->bytes);
          Status p = PruneSnapshots(dir, rank, keep);
          if (!p.ok()) spdlog::warn("server: {}", p.ToString());
        } else {
          metrics_.snapshot_failures.Increment();
          snapshot_failures_.fetch_add(1);
          spdlog::error("server rank {}: snapshot failed: {}", rank, r.status().ToString());
        }
        writer_busy_ = false;
      });
}

}  // namespace phalanx::ps::internal
