#pragma once
// Shard snapshots: a server's tables (every row with its optimizer state), the
// tables' versions (rounds) and their layout, written to one file per
// snapshot so that a replacement server for the same rank can load the newest
// valid one.
//
// Writing is two steps so the owner thread is blocked only for a memory copy:
// SnapshotImage::Capture (owner thread; walks the tables with ForEach) and
// SnapshotImage::WriteTo (any thread; streams the image to a temporary file,
// fsyncs it, renames it into place and fsyncs the directory). A crash at any
// point leaves either the old set of snapshots or the old set plus the new
// one, never a half-written file under a snapshot name.
//
// Loading reads the file sequentially on a reader thread (large reads,
// checksummed as they arrive) while the caller imports rows into fresh tables;
// the tables are handed out only after the whole file and its XXH3 checksum
// verified, so a refused file leaves nothing loaded half-way. The format is
// described in ps/README.md ("Snapshots and recovery").
//
// Thread-safety: free functions are thread-safe for distinct files; a
// SnapshotImage is immutable after Capture.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "ps/table.h"

namespace phalanx::ps {

// When and where a server writes snapshots ([checkpoint] in the job config).
struct CheckpointOptions {
  std::string dir;           // "" = no snapshots
  int every_rounds = 0;      // 0 = not by rounds (table 0's version)
  double every_seconds = 0;  // 0 = not by time
  int keep = 2;              // newest valid snapshots kept per rank (>= 1)
};

// One table as recorded in a snapshot.
struct SnapshotTableInfo {
  uint32_t table_id = 0;
  uint32_t dim = 0;
  uint32_t row_floats = 0;  // dim + optimizer state floats
  OptimizerKind optimizer = OptimizerKind::kSgd;
  int64_t version = 0;  // the table's round/version when captured
  uint64_t rows = 0;
};

struct SnapshotInfo {
  std::string path;
  int32_t rank = -1;
  uint32_t num_slots = 0;
  uint32_t num_servers = 0;
  int64_t round = 0;    // version of table 0
  int64_t unix_ms = 0;  // wall clock at capture
  std::vector<SnapshotTableInfo> tables;
  uint64_t bytes = 0;  // file size
};

// What a loaded snapshot must match. Zero / -1 fields are not checked.
struct SnapshotExpectation {
  int32_t rank = -1;
  uint32_t num_slots = 0;
  uint32_t num_servers = 0;
  std::vector<TableOptions> tables;  // ids, dims, optimizer kinds (row_floats)
};

// A shard image in the file's byte layout, ready to be written.
class SnapshotImage {
 public:
  // Copies every row of `tables` (table_id must equal the index; versions[i]
  // is table i's version). Runs on the tables' owner thread.
  static Result<std::shared_ptr<const SnapshotImage>> Capture(
      int32_t rank, uint32_t num_slots, uint32_t num_servers,
      const std::vector<const EmbeddingTable*>& tables, const std::vector<int64_t>& versions);

  const SnapshotInfo& info() const { return info_; }
  uint64_t bytes() const;

  // Writes the image atomically as `<dir>/<SnapshotFileName(rank, round)>`
  // (creating dir) and returns its info with the final path.
  Result<SnapshotInfo> WriteTo(const std::string& dir) const;

 private:
  SnapshotImage() = default;
  SnapshotInfo info_;
  std::string head_;                 // header + table descriptors
  std::vector<std::string> chunks_;  // chunk records, in file order
};

// "rank-<rank>-round-<round, 12 digits>.snap".
std::string SnapshotFileName(int32_t rank, int64_t round);

// Snapshot files of `rank` in `dir`, newest first (highest round, then
// newest modification time). Temporary files are never listed.
std::vector<std::string> ListSnapshots(const std::string& dir, int32_t rank);

// Header and table descriptors of a snapshot, checked for structure and
// size (a truncated file is DataLoss) but without reading the rows.
Result<SnapshotInfo> ReadSnapshotInfo(const std::string& path);

struct LoadedSnapshot {
  SnapshotInfo info;
  std::vector<std::unique_ptr<EmbeddingTable>> tables;  // by table id
};

// Loads one snapshot into new tables created from expect.tables. Errors:
// DataLoss (truncated, bad magic, checksum mismatch, malformed records),
// FailedPrecondition (another table layout, rank or cluster shape), NotFound.
Result<LoadedSnapshot> LoadSnapshot(const std::string& path, const SnapshotExpectation& expect);

// Loads the newest snapshot of expect.rank in dir that passes LoadSnapshot,
// logging each refused file and why. NotFound when dir holds none for the
// rank; otherwise the newest file's refusal when every file was refused.
Result<LoadedSnapshot> LoadNewestSnapshot(const std::string& dir,
                                          const SnapshotExpectation& expect);

// Deletes all but the `keep` newest snapshots of `rank` (and temporary files
// left by crashed writers).
Status PruneSnapshots(const std::string& dir, int32_t rank, int keep);

}  // namespace phalanx::ps
