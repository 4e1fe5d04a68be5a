// What a worker keeps of its data set (issue 13 item 8): exactly the examples
// its shard indices name, in their order, and nothing else.

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "tests/worker/worker_test_util.h"
#include "worker/dataset.h"
#include "worker/partition.h"

namespace phalanx::worker {
namespace {

// Example i of `a` equals example j of `b`: label, pixels, ids and values.
void ExpectSameExample(const Dataset& a, size_t i, const Dataset& b, size_t j) {
  ASSERT_EQ(a.labels[i], b.labels[j]) << i << " vs " << j;
  if (a.dense()) {
    ASSERT_TRUE(std::equal(a.row(i), a.row(i) + a.feature_dim, b.row(j))) << i << " vs " << j;
  }
  if (!a.ids.empty()) ASSERT_EQ(a.ids[i], b.ids[j]);
  if (!a.values.empty()) ASSERT_EQ(a.values[i], b.values[j]);
}

// Keeps `shard` of a copy of `full` and checks it against `full`.
void ExpectKeepsShard(const Dataset& full, const std::vector<size_t>& shard) {
  Dataset kept = full;
  std::vector<size_t> renumbered = shard;
  KeepShard(&kept, &renumbered);
  ASSERT_EQ(kept.size(), shard.size());
  EXPECT_EQ(kept.num_classes, full.num_classes);
  EXPECT_EQ(kept.feature_dim, full.feature_dim);
  std::vector<size_t> iota(shard.size());
  std::iota(iota.begin(), iota.end(), size_t{0});
  EXPECT_EQ(renumbered, iota);
  // Example renumbered[j] of the kept set is example shard[j] of the full
  // one, so a trainer walking either sees the same examples in the same order.
  for (size_t j = 0; j < shard.size(); ++j) ExpectSameExample(full, shard[j], kept, renumbered[j]);
  // The rest of the set is gone, not only hidden behind the size.
  EXPECT_LE(kept.features.capacity(), shard.size() * full.feature_dim);
  EXPECT_LE(kept.labels.capacity(), shard.size());
}

TEST(KeepShardTest, DenseAndSparseShardsKeepTheirExamplesInOrder) {
  Dataset dense;
  dense.num_classes = 3;
  dense.feature_dim = 2;
  Dataset sparse;
  sparse.num_classes = 2;
  for (int i = 0; i < 50; ++i) {
    dense.labels.push_back(i % 3);
    dense.features.push_back(static_cast<float>(i));
    dense.features.push_back(static_cast<float>(-i));
    sparse.labels.push_back(i % 2);
    sparse.ids.push_back({static_cast<uint64_t>(i), static_cast<uint64_t>(i * 7)});
    sparse.values.push_back({1.0f, static_cast<float>(i)});
  }
  for (int rank = 0; rank < 4; ++rank) {
    ExpectKeepsShard(dense, ShardIndices(dense.size(), rank, 4, 7));
    ExpectKeepsShard(sparse, ShardIndices(sparse.size(), rank, 4, 7));
  }
  // Repeated indices (a with-replacement partition) are kept once per use.
  ExpectKeepsShard(dense, {3, 3, 0, 49});
  ExpectKeepsShard(dense, {});
}

TEST(KeepShardTest, ReleaseExamplesFreesTheMemory) {
  Dataset d;
  d.num_classes = 2;
  d.feature_dim = 4;
  d.labels.assign(100, 1);
  d.features.assign(400, 0.5f);
  ReleaseExamples(&d);
  EXPECT_EQ(d.size(), 0u);
  EXPECT_EQ(d.features.capacity(), 0u);
  EXPECT_EQ(d.labels.capacity(), 0u);
  EXPECT_EQ(d.feature_dim, 4u);
}

TEST(KeepShardTest, FashionMnistIidAndDirichletShards) {
  const TrainTest* tt = testing::FashionMnist();
  PHX_REQUIRE_DATA(tt);
  ExpectKeepsShard(tt->train, ShardIndices(tt->train.size(), 5, 8, 1));
  PartitionOptions po;
  po.method = "dirichlet";
  po.alpha = 0.5;
  po.num_clients = 8;
  po.seed = 1;
  auto partition = Partition::Create(tt->train, po);
  ASSERT_TRUE(partition.ok()) << partition.status().ToString();
  std::vector<uint32_t> idx;
  partition->ClientIndices(3, &idx);
  ExpectKeepsShard(tt->train, std::vector<size_t>(idx.begin(), idx.end()));
}

// A worker reads labels first and then only its shard's pixels: the result
// must be the full load's subset, example for example.
TEST(KeepShardTest, FashionMnistRowsAreTheFullSetsSubset) {
  const TrainTest* tt = testing::FashionMnist();
  PHX_REQUIRE_DATA(tt);
  auto labels = LoadFashionMnistLabels(kDefaultFashionMnistDir);
  ASSERT_TRUE(labels.ok()) << labels.status().ToString();
  EXPECT_TRUE(labels->train.features.empty());
  EXPECT_EQ(labels->train.labels, tt->train.labels);
  EXPECT_EQ(labels->train.feature_dim, 784u);
  EXPECT_EQ(labels->test.labels, tt->test.labels);
  for (const std::vector<size_t>& idx :
       {ShardIndices(tt->train.size(), 7, 64, 1), std::vector<size_t>{59999, 0, 0, 512, 511}}) {
    auto rows = LoadFashionMnistRows(kDefaultFashionMnistDir, "train", labels->train, idx);
    ASSERT_TRUE(rows.ok()) << rows.status().ToString();
    ASSERT_EQ(rows->size(), idx.size());
    EXPECT_EQ(rows->features.size(), idx.size() * 784);
    for (size_t j = 0; j < idx.size(); ++j) ExpectSameExample(tt->train, idx[j], *rows, j);
  }
  // A truncated labels-only set (data.max_test) bounds the indices.
  Dataset test = labels->test;
  TruncateDataset(&test, 100);
  EXPECT_TRUE(test.features.empty());
  auto rows = LoadFashionMnistRows(kDefaultFashionMnistDir, "t10k", test, {99, 3});
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ExpectSameExample(tt->test, 99, *rows, 0);
  EXPECT_EQ(LoadFashionMnistRows(kDefaultFashionMnistDir, "t10k", test, {100}).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace phalanx::worker
