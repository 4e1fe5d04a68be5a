// Tests of EmbeddingTable: deterministic initialization, collisionless
// indexing, growth, duplicates, memory accounting, and the parallel path.

#include "ps/table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "ps/internal/partition.h"

namespace phalanx::ps {
namespace {

std::unique_ptr<EmbeddingTable> MakeTable(const TableOptions& options) {
  auto table = EmbeddingTable::Create(options);
  EXPECT_TRUE(table.ok()) << table.status().ToString();
  return std::move(table).value();
}

std::vector<float> LookupAll(EmbeddingTable& table, const std::vector<uint64_t>& keys) {
  std::vector<float> out(keys.size() * table.dim());
  table.Lookup(keys, out.data());
  return out;
}

// Creates the rows of `keys` with a zero-gradient update (rows come from
// updates; lookups do not insert).
void Touch(EmbeddingTable& table, const std::vector<uint64_t>& keys) {
  std::vector<float> zeros(keys.size() * table.dim(), 0.0f);
  table.Apply(keys, zeros.data());
}

// Every stored row (weights and optimizer state), keyed, for whole-table comparisons.
std::map<uint64_t, std::vector<float>> Dump(const EmbeddingTable& table) {
  std::map<uint64_t, std::vector<float>> rows;
  table.ForEach([&](uint64_t key, std::span<const float> row) {
    EXPECT_TRUE(rows.emplace(key, std::vector<float>(row.begin(), row.end())).second);
  });
  return rows;
}

TEST(TableTest, InitIsDeterministicAcrossCapacityPartitionsAndOrder) {
  std::vector<uint64_t> keys;
  for (uint64_t k = 0; k < 2000; ++k) keys.push_back(k * 0x9E3779B97F4A7C15ULL);
  std::vector<uint64_t> reversed(keys.rbegin(), keys.rend());

  TableOptions a;
  a.seed = 42;
  a.table_id = 3;
  a.initial_capacity = 16;
  a.num_partitions = 1;
  TableOptions b = a;
  b.initial_capacity = 1 << 20;
  b.num_partitions = 16;
  auto ta = MakeTable(a);
  auto tb = MakeTable(b);
  const auto ra = LookupAll(*ta, keys);
  const auto rb_rev = LookupAll(*tb, reversed);
  std::vector<float> expected(a.dim);
  for (size_t i = 0; i < keys.size(); ++i) {
    const size_t j = keys.size() - 1 - i;
    ASSERT_EQ(0, std::memcmp(&ra[i * a.dim], &rb_rev[j * a.dim], a.dim * sizeof(float))) << i;
    ta->InitialRow(keys[i], expected.data());
    ASSERT_EQ(0, std::memcmp(&ra[i * a.dim], expected.data(), a.dim * sizeof(float)));
    for (size_t c = 0; c < a.dim; ++c) {
      ASSERT_LE(std::abs(ra[i * a.dim + c]), a.init_scale);
    }
  }
  // Not all equal, and not constant across columns.
  EXPECT_NE(ra[0], ra[1]);
  EXPECT_NE(ra[0], ra[a.dim]);

  // Another seed or table id gives other rows.
  for (int variant = 0; variant < 2; ++variant) {
    TableOptions c = a;
    if (variant == 0) c.seed = 43;
    if (variant == 1) c.table_id = 4;
    auto tc = MakeTable(c);
    const auto rc = LookupAll(*tc, keys);
    size_t same = 0;
    for (size_t i = 0; i < ra.size(); ++i) same += ra[i] == rc[i];
    EXPECT_LT(same, ra.size() / 100) << "variant " << variant;
  }
}

TEST(TableTest, InitKinds) {
  TableOptions o;
  o.dim = 64;
  o.init = InitKind::kZeros;
  auto zeros = MakeTable(o);
  std::vector<float> row(o.dim, 1.0f);
  zeros->InitialRow(7, row.data());
  for (float v : row) EXPECT_EQ(v, 0.0f);

  o.init = InitKind::kNormal;
  o.init_scale = 2.0f;
  auto normal = MakeTable(o);
  double sum = 0, sum_sq = 0;
  const int rows = 1000;
  for (int k = 0; k < rows; ++k) {
    normal->InitialRow(k, row.data());
    for (float v : row) {
      ASSERT_TRUE(std::isfinite(v));
      sum += v;
      sum_sq += static_cast<double>(v) * v;
    }
  }
  const double n = rows * o.dim;
  EXPECT_NEAR(sum / n, 0.0, 0.05);
  EXPECT_NEAR(std::sqrt(sum_sq / n), 2.0, 0.05);
}

TEST(TableTest, LookupOfMissingKeyReadsInitialRowWithoutInsertingIt) {
  for (size_t min_batch : {SIZE_MAX, size_t{1}}) {  // serial and fanned-out lookups
    TableOptions o;
    o.parallel_min_lookup = min_batch;
    auto table = MakeTable(o);
    EXPECT_EQ(table->size(), 0u);
    EXPECT_FALSE(table->Contains(5));
    std::vector<float> expected(table->dim());
    table->InitialRow(5, expected.data());
    EXPECT_EQ(table->size(), 0u) << "InitialRow must not create the row";
    const auto got = LookupAll(*table, {5});
    EXPECT_EQ(got, expected);
    // Pulls of never-pushed keys must not grow the table (issue 13 item 4).
    std::vector<uint64_t> unknown(20000);
    std::iota(unknown.begin(), unknown.end(), 100);
    LookupAll(*table, unknown);
    EXPECT_EQ(table->size(), 0u);
    EXPECT_FALSE(table->Contains(5));
    // An update creates the row; with a zero gradient it still holds the initial values.
    Touch(*table, {5});
    EXPECT_EQ(table->size(), 1u);
    EXPECT_TRUE(table->Contains(5));
    EXPECT_EQ(LookupAll(*table, {5}), expected);
  }
}

TEST(TableTest, LookupMixesStoredAndMissingRows) {
  TableOptions o;
  o.optimizer.kind = OptimizerKind::kAdam;  // rows with state: weights only are read
  auto table = MakeTable(o);
  std::vector<float> grads(2 * o.dim, 1.0f);
  Touch(*table, {3, 9});
  const std::vector<uint64_t> pushed = {3, 9};
  table->Apply(pushed, grads.data());
  const auto stored = LookupAll(*table, {3, 9});
  const auto got = LookupAll(*table, {3, 4, 9, 4});
  std::vector<float> initial(o.dim);
  table->InitialRow(4, initial.data());
  EXPECT_TRUE(std::equal(got.begin(), got.begin() + o.dim, stored.begin()));
  EXPECT_TRUE(std::equal(got.begin() + o.dim, got.begin() + 2 * o.dim, initial.begin()));
  EXPECT_TRUE(std::equal(got.begin() + 2 * o.dim, got.begin() + 3 * o.dim, stored.begin() + o.dim));
  EXPECT_TRUE(std::equal(got.begin() + 3 * o.dim, got.end(), initial.begin()));
  EXPECT_EQ(table->size(), 2u);
}

// Keys that stress an index: 0, ~0, runs, powers of two and their
// neighbours, and random keys; each gets a distinct row through Import.
TEST(TableTest, CollisionlessIncludingSpecialKeys) {
  std::vector<uint64_t> keys = {0, UINT64_MAX, UINT64_MAX - 1, 1, 1ULL << 63};
  for (int b = 0; b < 64; ++b) {
    keys.push_back((1ULL << b) + 1);
    keys.push_back((1ULL << b) - 1 + (b == 0 ? 2 : 0));
  }
  for (uint64_t k = 2; k < 50000; ++k) keys.push_back(k);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 50000; ++i) keys.push_back(rng());
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  std::shuffle(keys.begin(), keys.end(), rng);

  TableOptions o;
  o.dim = 4;
  o.initial_capacity = 64;
  auto table = MakeTable(o);
  // Row i holds (i, i+0.5, -i, key bits) so a mix-up of any two rows shows.
  std::vector<float> values(keys.size() * o.dim);
  for (size_t i = 0; i < keys.size(); ++i) {
    values[i * 4 + 0] = static_cast<float>(i);
    values[i * 4 + 1] = static_cast<float>(i) + 0.5f;
    values[i * 4 + 2] = -static_cast<float>(i);
    values[i * 4 + 3] = static_cast<float>(keys[i] >> 40);
  }
  table->Import(keys, values.data());
  EXPECT_EQ(table->size(), keys.size());
  std::vector<uint64_t> reversed(keys.rbegin(), keys.rend());
  const auto got = LookupAll(*table, reversed);
  for (size_t j = 0; j < reversed.size(); ++j) {
    const size_t i = keys.size() - 1 - j;
    ASSERT_EQ(0, std::memcmp(&got[j * 4], &values[i * 4], 4 * sizeof(float))) << keys[i];
  }
  EXPECT_EQ(table->size(), keys.size());
  EXPECT_TRUE(table->Contains(0));
  EXPECT_TRUE(table->Contains(UINT64_MAX));
  EXPECT_FALSE(table->Contains(UINT64_MAX - 2));
  EXPECT_EQ(Dump(*table).size(), keys.size());
}

// Keys whose home is the index's last bucket overflow it and wrap around to
// the first: every one must still be found, absent keys must not be, and a
// rehash must keep them all.
TEST(TableTest, OverflowingBucketsWrapAroundTheIndex) {
  internal::Partition part(/*weight_floats=*/2, /*state_floats=*/1, /*expected_rows=*/200);
  const size_t buckets = part.index_capacity() / internal::Partition::kSlotsPerBucket;
  auto home = [buckets](uint64_t key) {
    __extension__ using Uint128 = unsigned __int128;
    return static_cast<size_t>((static_cast<Uint128>(internal::HashKey(key)) * buckets) >> 64);
  };
  std::vector<uint64_t> last_home;
  for (uint64_t k = 0; last_home.size() < 3 * internal::Partition::kSlotsPerBucket; ++k) {
    if (home(k) == buckets - 1) last_home.push_back(k);
  }
  auto init = [](uint64_t key, float* w, float* state) {
    w[0] = static_cast<float>(key);
    w[1] = -1.0f;
    state[0] = static_cast<float>(key) + 1;
  };
  std::vector<uint32_t> rows;
  for (uint64_t k : last_home) rows.push_back(part.FindOrInsert(k, internal::HashKey(k), init));
  ASSERT_EQ(part.size(), last_home.size());
  for (size_t i = 0; i < last_home.size(); ++i) {
    const uint64_t k = last_home[i];
    EXPECT_EQ(part.Find(k, internal::HashKey(k)), rows[i]) << k;
    EXPECT_EQ(part.FindOrInsert(k, internal::HashKey(k), init), rows[i]);
    EXPECT_EQ(part.Row(rows[i])[0], static_cast<float>(k));
  }
  EXPECT_EQ(part.size(), last_home.size());
  uint64_t absent = last_home.back() + 1;
  while (home(absent) != buckets - 1) ++absent;
  EXPECT_EQ(part.Find(absent, internal::HashKey(absent)), -1);
  // Growing past the initial size rehashes: every key keeps its row.
  for (uint64_t k = 1'000'000; part.size() < 2000; ++k) {
    part.FindOrInsert(k, internal::HashKey(k), init);
  }
  ASSERT_GT(part.index_capacity(), buckets * internal::Partition::kSlotsPerBucket);
  for (size_t i = 0; i < last_home.size(); ++i) {
    EXPECT_EQ(part.Find(last_home[i], internal::HashKey(last_home[i])), rows[i]);
  }
  size_t seen = 0;
  part.ForEach([&](uint64_t key, const float* w, const float* state) {
    EXPECT_EQ(w[0], static_cast<float>(key));
    EXPECT_EQ(state[0], static_cast<float>(key) + 1);
    ++seen;
  });
  EXPECT_EQ(seen, part.size());
}

TEST(TableTest, GrowthKeepsContents) {
  TableOptions o;
  o.initial_capacity = 1;  // forces many rehashes and slab moves
  o.num_partitions = 2;
  o.optimizer.kind = OptimizerKind::kAdagrad;
  auto table = MakeTable(o);
  const size_t before = table->memory_bytes();
  std::vector<uint64_t> keys(1000);
  std::iota(keys.begin(), keys.end(), 1000);
  std::vector<float> grads(keys.size() * o.dim);
  for (size_t i = 0; i < grads.size(); ++i) grads[i] = static_cast<float>(i % 7) - 3.0f;
  table->Apply(keys, grads.data());
  const auto snapshot = Dump(*table);
  // Grow by 100x around the existing rows.
  std::vector<uint64_t> more(100000);
  std::iota(more.begin(), more.end(), 1000000);
  Touch(*table, more);
  EXPECT_EQ(table->size(), keys.size() + more.size());
  EXPECT_GT(table->memory_bytes(), before);
  const auto after = Dump(*table);
  for (const auto& [key, row] : snapshot) ASSERT_EQ(after.at(key), row) << key;
}

TEST(TableTest, DuplicateKeysInLookup) {
  for (size_t min_batch : {SIZE_MAX, size_t{1}}) {
    TableOptions o;
    o.parallel_min_update = o.parallel_min_lookup = min_batch;
    auto table = MakeTable(o);
    const std::vector<uint64_t> keys = {5, 5, 7, 5, 0, 7, 0};
    const auto got = LookupAll(*table, keys);
    EXPECT_EQ(table->size(), 0u);
    std::vector<float> expected(o.dim);
    for (size_t i = 0; i < keys.size(); ++i) {
      table->InitialRow(keys[i], expected.data());
      EXPECT_EQ(0, std::memcmp(&got[i * o.dim], expected.data(), o.dim * sizeof(float)));
    }
  }
}

TEST(TableTest, MemoryBytesIsWithinBound) {
  TableOptions o;
  o.num_partitions = 1;
  o.initial_capacity = 16;
  auto table = MakeTable(o);
  std::vector<uint64_t> keys(300000);
  std::iota(keys.begin(), keys.end(), 0);
  Touch(*table, keys);
  const double row_bytes = o.dim * sizeof(float);
  const double payload = row_bytes * keys.size();
  EXPECT_GE(table->memory_bytes(), payload);
  // 1.5x the payload, plus the page rounding of the slab and index (2 MiB each).
  EXPECT_LE(table->memory_bytes(), 1.5 * payload + 4.0 * (1 << 20));

  // Optimizer state counts: Adam keeps 2*dim + 1 floats more per row.
  o.optimizer.kind = OptimizerKind::kAdam;
  auto adam = MakeTable(o);
  Touch(*adam, keys);
  EXPECT_GE(adam->memory_bytes(), payload * 3);
  EXPECT_EQ(adam->row_floats(), 3 * o.dim + 1);
}

// Runs the same sequence of Lookups (with duplicates) and Applies against a
// serial table, a parallel one, and one with another partition count, and
// expects bit-identical contents, optimizer state included.
TEST(TableTest, ParallelPathEqualsSerial) {
  TableOptions serial;
  serial.dim = 8;
  serial.optimizer.kind = OptimizerKind::kAdam;
  serial.optimizer.weight_decay = 0.01f;
  serial.parallel_min_update = serial.parallel_min_lookup = SIZE_MAX;
  TableOptions parallel = serial;
  parallel.parallel_min_update = parallel.parallel_min_lookup = 1;
  TableOptions other = parallel;
  other.num_partitions = 64;
  other.initial_capacity = 8;
  auto ts = MakeTable(serial);
  auto tp = MakeTable(parallel);
  auto to = MakeTable(other);

  std::mt19937_64 rng(11);
  std::uniform_int_distribution<uint64_t> key_dist(0, 30000);
  std::normal_distribution<float> grad_dist;
  for (int round = 0; round < 6; ++round) {
    std::vector<uint64_t> keys(20000);
    for (auto& k : keys) k = key_dist(rng);
    const auto ls = LookupAll(*ts, keys);
    ASSERT_EQ(ls, LookupAll(*tp, keys));
    ASSERT_EQ(ls, LookupAll(*to, keys));
    if (round == 0) {
      // Apply with repeated keys is outside the contract, but the steps are
      // applied in call order on every path, so the tables still agree.
      std::vector<float> grads(keys.size() * serial.dim, 0.25f);
      ts->Apply(keys, grads.data());
      tp->Apply(keys, grads.data());
      to->Apply(keys, grads.data());
    }
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    std::shuffle(keys.begin(), keys.end(), rng);
    std::vector<float> grads(keys.size() * serial.dim);
    for (auto& g : grads) g = grad_dist(rng);
    ts->Apply(keys, grads.data());
    tp->Apply(keys, grads.data());
    to->Apply(keys, grads.data());
  }
  const auto ds = Dump(*ts);
  EXPECT_EQ(ds.size(), ts->size());
  EXPECT_EQ(ds, Dump(*tp));
  EXPECT_EQ(ds, Dump(*to));
}

TEST(TableTest, ForEachImportRoundTripKeepsOptimizerState) {
  TableOptions a;
  a.optimizer.kind = OptimizerKind::kAdam;
  a.dim = 4;
  TableOptions b = a;
  b.num_partitions = 2;
  auto ta = MakeTable(a);
  auto tb = MakeTable(b);
  const std::vector<uint64_t> keys = {1, 2, 3, UINT64_MAX};
  std::vector<float> grads(keys.size() * a.dim, 0.5f);
  ta->Apply(keys, grads.data());
  ta->Apply({keys.data(), 2}, grads.data());

  std::vector<uint64_t> snap_keys;
  std::vector<float> snap_rows;
  ta->ForEach([&](uint64_t key, std::span<const float> row) {
    snap_keys.push_back(key);
    snap_rows.insert(snap_rows.end(), row.begin(), row.end());
  });
  tb->Import(snap_keys, snap_rows.data());
  EXPECT_EQ(Dump(*ta), Dump(*tb));
  // The step counts came along: the next step matches too.
  ta->Apply(keys, grads.data());
  tb->Apply(keys, grads.data());
  EXPECT_EQ(Dump(*ta), Dump(*tb));
}

TEST(TableTest, CreateRejectsBadOptions) {
  auto bad = [](auto mutate) {
    TableOptions o;
    mutate(o);
    return EmbeddingTable::Create(o).status().code();
  };
  EXPECT_EQ(bad([](TableOptions& o) { o.dim = 0; }), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](TableOptions& o) { o.num_partitions = 3; }), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](TableOptions& o) { o.num_partitions = 0; }), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](TableOptions& o) { o.optimizer.learning_rate = NAN; }),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](TableOptions& o) {
              o.optimizer.kind = OptimizerKind::kAdam;
              o.optimizer.beta2 = 1.0f;
            }),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](TableOptions& o) {
              o.optimizer.kind = OptimizerKind::kAdagrad;
              o.optimizer.epsilon = 0;
            }),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(EmbeddingTable::Create(TableOptions{}).ok());
}

}  // namespace
}  // namespace phalanx::ps
