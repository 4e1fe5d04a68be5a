// Shard snapshots: round trip with optimizer state, atomic replacement,
// truncated and corrupted files falling back to the previous snapshot, and
// snapshots of another table layout refused.

#include "ps/snapshot.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>

namespace phalanx::ps {
namespace {

namespace fs = std::filesystem;

fs::path FreshDir(const std::string& name) {
  fs::path p =
      fs::temp_directory_path() / ("phalanx-snap-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::vector<TableOptions> Layout() {
  TableOptions dense;
  dense.table_id = 0;
  dense.dim = 8;
  dense.optimizer.kind = OptimizerKind::kSgd;
  dense.optimizer.momentum = 0.9f;
  TableOptions emb;
  emb.table_id = 1;
  emb.dim = 4;
  emb.optimizer.kind = OptimizerKind::kAdam;
  return {dense, emb};
}

using Rows = std::map<uint64_t, std::vector<float>>;

Rows Dump(const EmbeddingTable& t) {
  Rows rows;
  t.ForEach([&](uint64_t k, std::span<const float> r) { rows[k].assign(r.begin(), r.end()); });
  return rows;
}

// Tables with rows touched by a few optimizer steps (momentum and Adam state).
std::vector<std::unique_ptr<EmbeddingTable>> MakeTables(uint64_t seed, size_t rows) {
  std::vector<std::unique_ptr<EmbeddingTable>> tables;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g;
  for (const auto& o : Layout()) {
    auto t = EmbeddingTable::Create(o);
    EXPECT_TRUE(t.ok());
    std::vector<uint64_t> keys(rows);
    for (auto& k : keys) k = rng();
    keys[0] = 0;  // 0 and ~0 are ordinary keys
    keys[1] = ~0ull;
    for (int step = 0; step < 3; ++step) {
      std::vector<float> grads(keys.size() * o.dim);
      for (auto& x : grads) x = g(rng);
      (*t)->Apply(keys, grads.data());
    }
    tables.push_back(std::move(t).value());
  }
  return tables;
}

Result<SnapshotInfo> Write(const fs::path& dir,
                           const std::vector<std::unique_ptr<EmbeddingTable>>& t, int64_t round,
                           int32_t rank = 0) {
  std::vector<const EmbeddingTable*> ptrs;
  std::vector<int64_t> versions;
  for (const auto& x : t) {
    ptrs.push_back(x.get());
    versions.push_back(round + static_cast<int64_t>(versions.size()));
  }
  PHX_ASSIGN_OR_RETURN(auto img, SnapshotImage::Capture(rank, 1024, 2, ptrs, versions));
  return img->WriteTo(dir.string());
}

SnapshotExpectation Expect(int32_t rank = 0) {
  SnapshotExpectation e;
  e.rank = rank;
  e.num_slots = 1024;
  e.num_servers = 2;
  e.tables = Layout();
  return e;
}

void Truncate(const std::string& path, uint64_t size) { fs::resize_file(path, size); }

void FlipByte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x20);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

TEST(SnapshotTest, RoundTripKeepsRowsOptimizerStateAndVersions) {
  fs::path dir = FreshDir("roundtrip");
  auto tables = MakeTables(1, 60000);  // more than one 4 MiB chunk for table 0
  auto info = Write(dir, tables, 41, 3);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(fs::path(info->path).filename(), SnapshotFileName(3, 41));
  EXPECT_EQ(info->bytes, fs::file_size(info->path));
  auto loaded = LoadSnapshot(info->path, Expect(3));
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->info.round, 41);
  EXPECT_EQ(loaded->info.rank, 3);
  ASSERT_EQ(loaded->tables.size(), 2u);
  for (size_t i = 0; i < tables.size(); ++i) {
    EXPECT_EQ(loaded->info.tables[i].version, 41 + static_cast<int64_t>(i));
    EXPECT_EQ(loaded->tables[i]->size(), tables[i]->size());
    EXPECT_EQ(Dump(*loaded->tables[i]), Dump(*tables[i])) << "table " << i;
  }
  // The loaded tables keep training exactly like the originals (Adam's
  // per-row step counts and the momentum velocity came along).
  std::vector<uint64_t> keys = {0, ~0ull, 12345};
  std::vector<float> g(keys.size() * 4, 0.25f);
  tables[1]->Apply(keys, g.data());
  loaded->tables[1]->Apply(keys, g.data());
  EXPECT_EQ(Dump(*loaded->tables[1]), Dump(*tables[1]));
}

TEST(SnapshotTest, EmptyTablesRoundTrip) {
  fs::path dir = FreshDir("empty");
  std::vector<std::unique_ptr<EmbeddingTable>> tables;
  for (const auto& o : Layout()) tables.push_back(std::move(EmbeddingTable::Create(o)).value());
  auto info = Write(dir, tables, 0);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  auto loaded = LoadSnapshot(info->path, Expect());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->tables[0]->size(), 0u);
  EXPECT_EQ(loaded->tables[1]->size(), 0u);
}

TEST(SnapshotTest, WritesAreAtomicAndCrashedWritesAreIgnored) {
  fs::path dir = FreshDir("atomic");
  auto old_tables = MakeTables(2, 1000);
  ASSERT_TRUE(Write(dir, old_tables, 10).ok());
  // A writer that crashed mid-file leaves only a hidden temporary file.
  std::string tmp = (dir / ("." + SnapshotFileName(0, 20) + ".tmp-999-0")).string();
  std::ofstream(tmp) << "PHXSNAP1 half a file";
  EXPECT_EQ(ListSnapshots(dir.string(), 0).size(), 1u);
  auto loaded = LoadNewestSnapshot(dir.string(), Expect());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->info.round, 10);
  // A failed write (the folder is a file) reports an error and leaves the
  // existing snapshot untouched.
  fs::path not_a_dir = dir / "file";
  std::ofstream(not_a_dir) << "x";
  auto bad = Write(not_a_dir, old_tables, 30);
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(ListSnapshots(dir.string(), 0).size(), 1u);
  // A newer snapshot replaces nothing in place; pruning keeps the newest and
  // removes crashed writers' leftovers.
  auto new_tables = MakeTables(3, 1000);
  ASSERT_TRUE(Write(dir, new_tables, 20).ok());
  ASSERT_TRUE(Write(dir, new_tables, 30).ok());
  EXPECT_EQ(ListSnapshots(dir.string(), 0).size(), 3u);
  ASSERT_TRUE(PruneSnapshots(dir.string(), 0, 2).ok());
  auto left = ListSnapshots(dir.string(), 0);
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(fs::path(left[0]).filename(), SnapshotFileName(0, 30));
  EXPECT_EQ(fs::path(left[1]).filename(), SnapshotFileName(0, 20));
  EXPECT_FALSE(fs::exists(tmp));
  // Other ranks' files are neither listed nor pruned.
  ASSERT_TRUE(Write(dir, new_tables, 5, 1).ok());
  EXPECT_EQ(ListSnapshots(dir.string(), 1).size(), 1u);
  EXPECT_EQ(ListSnapshots(dir.string(), 0).size(), 2u);
}

TEST(SnapshotTest, TruncatedFileIsRefusedAndThePreviousOneIsUsed) {
  fs::path dir = FreshDir("truncated");
  auto t10 = MakeTables(4, 2000);
  auto t20 = MakeTables(5, 2000);
  ASSERT_TRUE(Write(dir, t10, 10).ok());
  auto newest = Write(dir, t20, 20);
  ASSERT_TRUE(newest.ok());
  const uint64_t full = newest->bytes;
  // Cut inside the header, the descriptors, the rows, and just the footer.
  for (uint64_t size : {uint64_t{0}, uint64_t{30}, uint64_t{90}, full / 2, full - 1, full - 24}) {
    fs::path copy = dir / "copy.bin";
    fs::copy_file(newest->path, copy, fs::copy_options::overwrite_existing);
    Truncate(copy.string(), size);
    auto r = LoadSnapshot(copy.string(), Expect());
    ASSERT_FALSE(r.ok()) << "size " << size;
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().ToString();
    EXPECT_NE(r.status().message().find("truncated"), std::string::npos) << r.status().ToString();
    fs::remove(copy);
  }
  Truncate(newest->path, full - 100);
  auto loaded = LoadNewestSnapshot(dir.string(), Expect());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->info.round, 10);
  EXPECT_EQ(Dump(*loaded->tables[0]), Dump(*t10[0]));
  EXPECT_EQ(Dump(*loaded->tables[1]), Dump(*t10[1]));
}

TEST(SnapshotTest, WrongChecksumIsRefusedAndThePreviousOneIsUsed) {
  fs::path dir = FreshDir("checksum");
  auto t10 = MakeTables(6, 3000);
  auto t20 = MakeTables(7, 3000);
  ASSERT_TRUE(Write(dir, t10, 10).ok());
  auto newest = Write(dir, t20, 20);
  ASSERT_TRUE(newest.ok());
  // One flipped bit in the middle of the rows.
  FlipByte(newest->path, newest->bytes / 2);
  auto r = LoadSnapshot(newest->path, Expect());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("checksum mismatch"), std::string::npos)
      << r.status().ToString();
  auto loaded = LoadNewestSnapshot(dir.string(), Expect());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->info.round, 10);
  EXPECT_EQ(Dump(*loaded->tables[1]), Dump(*t10[1]));
  // A damaged stored checksum is refused the same way.
  auto again = Write(dir, t20, 30);
  ASSERT_TRUE(again.ok());
  FlipByte(again->path, again->bytes - 3);
  r = LoadSnapshot(again->path, Expect());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().ToString();
  // Every file bad: the newest's reason comes back, nothing is loaded.
  FlipByte((dir / SnapshotFileName(0, 10)).string(), 200);
  auto none = LoadNewestSnapshot(dir.string(), Expect());
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(none.status().message().find("none of the 3 snapshots"), std::string::npos)
      << none.status().ToString();
}

TEST(SnapshotTest, AnotherTableLayoutIsRefused) {
  fs::path dir = FreshDir("layout");
  auto tables = MakeTables(8, 500);
  auto info = Write(dir, tables, 10);
  ASSERT_TRUE(info.ok());
  auto expect_refused = [&](SnapshotExpectation e, const std::string& what) {
    auto r = LoadSnapshot(info->path, e);
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition) << r.status().ToString();
    EXPECT_NE(r.status().message().find("another layout"), std::string::npos)
        << r.status().ToString();
    EXPECT_NE(r.status().message().find(what), std::string::npos) << r.status().ToString();
  };
  SnapshotExpectation e = Expect();
  e.tables[1].dim = 16;
  expect_refused(e, "dim 4, expected 16");
  e = Expect();
  e.tables[1].optimizer.kind = OptimizerKind::kAdagrad;
  expect_refused(e, "optimizer adam");
  e = Expect();
  e.tables[0].optimizer.momentum = 0;  // plain SGD keeps no velocity
  expect_refused(e, "state floats");
  e = Expect();
  e.tables.pop_back();
  expect_refused(e, "2 tables, expected 1");
  e = Expect();
  e.num_servers = 3;
  expect_refused(e, "servers");
  e = Expect();
  e.rank = 1;
  expect_refused(e, "rank");
  // The newest-snapshot search reports the refusal instead of loading it.
  e = Expect();
  e.tables[0].dim = 9;
  auto r = LoadNewestSnapshot(dir.string(), e);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition) << r.status().ToString();
}

TEST(SnapshotTest, MissingSnapshotsAndGarbageFilesAreClearErrors) {
  fs::path dir = FreshDir("missing");
  auto r = LoadNewestSnapshot(dir.string(), Expect());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound) << r.status().ToString();
  r = LoadNewestSnapshot((dir / "nowhere").string(), Expect());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound) << r.status().ToString();
  fs::path junk = dir / SnapshotFileName(0, 5);
  std::ofstream(junk) << std::string(200, 'z');
  auto info = ReadSnapshotInfo(junk.string());
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(info.status().message().find("not a Phalanx snapshot"), std::string::npos);
  r = LoadNewestSnapshot(dir.string(), Expect());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().ToString();
}

}  // namespace
}  // namespace phalanx::ps
