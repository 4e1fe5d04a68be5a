// Snapshot file names in a checkpoint directory: naming, listing newest
// first, and pruning (ps/snapshot.h). The file format is in snapshot.cc.
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "ps/snapshot.h"

namespace phalanx::ps {
namespace {

namespace fs = std::filesystem;

bool ParseName(const std::string& name, int32_t rank, int64_t* round) {
  std::string prefix = "rank-" + std::to_string(rank) + "-round-";
  if (name.rfind(prefix, 0) != 0 || name.size() <= prefix.size() + 5 ||
      name.compare(name.size() - 5, 5, ".snap") != 0) {
    return false;
  }
  std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - 5);
  if (digits.empty() || digits.size() > 18 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  *round = std::stoll(digits);
  return true;
}

}  // namespace

std::string SnapshotFileName(int32_t rank, int64_t round) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "rank-%d-round-%012lld.snap", rank,
                static_cast<long long>(std::max<int64_t>(0, round)));
  return buf;
}

std::vector<std::string> ListSnapshots(const std::string& dir, int32_t rank) {
  struct Entry {
    int64_t round;
    fs::file_time_type mtime;
    std::string path;
  };
  std::vector<Entry> entries;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    int64_t round = 0;
    if (!e.is_regular_file(ec) || !ParseName(e.path().filename().string(), rank, &round)) continue;
    entries.push_back({round, e.last_write_time(ec), e.path().string()});
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.round != b.round ? a.round > b.round : a.mtime > b.mtime;
  });
  std::vector<std::string> out;
  for (auto& e : entries) out.push_back(std::move(e.path));
  return out;
}

Status PruneSnapshots(const std::string& dir, int32_t rank, int keep) {
  std::vector<std::string> files = ListSnapshots(dir, rank);
  std::error_code ec;
  for (size_t i = static_cast<size_t>(std::max(1, keep)); i < files.size(); ++i) {
    fs::remove(files[i], ec);
    if (ec) return Unavailable("cannot remove old snapshot " + files[i] + ": " + ec.message());
  }
  // Temporary files of writers that crashed (never ours in flight: one writer per rank).
  std::string tmp_prefix = ".rank-" + std::to_string(rank) + "-round-";
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string n = e.path().filename().string();
    if (n.rfind(tmp_prefix, 0) == 0 && n.find(".tmp-") != std::string::npos) {
      fs::remove(e.path(), ec);
    }
  }
  return Status::Ok();
}

}  // namespace phalanx::ps
