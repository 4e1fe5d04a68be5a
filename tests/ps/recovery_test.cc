// Recovery on its own (ps/internal/recovery.h): restore, alignment with the
// cluster's round and the snapshot schedule after a restore.

#include "ps/internal/recovery.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "aggregators/aggregator.h"

namespace phalanx::ps::internal {
namespace {

namespace fs = std::filesystem;

constexpr int32_t kSelf = 100;
constexpr uint32_t kSlots = 16;

class RecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() /
        ("phx_recovery_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
         "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    aggregators::AggregatorOptions ao;
    rule_ = std::move(aggregators::CreateAggregator(ao)).value();
    for (uint32_t i = 0; i < 2; ++i) {
      TableOptions t;
      t.table_id = i;
      t.dim = 2;
      tables_.push_back(t);
    }
    view_.epoch = 1;
    view_.num_slots = kSlots;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::vector<SyncRound> FreshRounds() {
    std::vector<SyncRound> rounds;
    for (const auto& t : tables_) {
      rounds.emplace_back(t.table_id, std::move(EmbeddingTable::Create(t)).value(), rule_.get(),
                          &metrics_, 60000);
    }
    return rounds;
  }
  // A snapshot of rank 0 with table 0 at `round` and table 1 at version 0.
  void WriteSnapshot(int64_t round) {
    auto rounds = FreshRounds();
    auto image =
        SnapshotImage::Capture(0, kSlots, 1, {&rounds[0].table(), &rounds[1].table()}, {round, 0});
    ASSERT_TRUE(image.ok()) << image.status().ToString();
    ASSERT_TRUE((*image)->WriteTo(dir_.string()).ok());
  }
  CheckpointOptions EveryRound() const {
    CheckpointOptions cp;
    cp.dir = dir_.string();
    cp.every_rounds = 1;
    cp.keep = 10;
    return cp;
  }
  // Table 0 gets worker 1's push for `round` and closes the round.
  void RoundOnTable0(Recovery& rec, std::vector<SyncRound>& rounds, int64_t round) {
    Message push = MakeDataMessage(MsgType::kPush, 1, 1, round, 0, 2,
                                   Buffer::FromVector(std::vector<uint64_t>{3}),
                                   Buffer::FromVector(std::vector<float>{1, 1}));
    Outbox out;
    rec.Align(push.header, 0, &rounds[0], kSelf, &out);
    ASSERT_TRUE(rounds[0].Push("w1", push, true, kSelf, &out));
    RoundPlan plan = CombinePartials(*rule_, {rounds[0].StartClose()});
    ASSERT_TRUE(rounds[0].FinishClose(round, plan, kSelf, &out));
    rec.OnRoundClosed(0);
  }
  static int64_t NewestRound(const std::string& dir) {
    auto files = ListSnapshots(dir, 0);
    if (files.empty()) return -1;
    auto info = ReadSnapshotInfo(files.front());
    return info.ok() ? info->round : -1;
  }

  fs::path dir_;
  ServerMetrics metrics_;
  std::unique_ptr<aggregators::Aggregator> rule_;
  std::vector<TableOptions> tables_;
  ClusterView view_;
};

TEST_F(RecoveryTest, RestoreWithoutSnapshotIsRefusedBeforeRegistering) {
  CheckpointOptions cp = EveryRound();
  EXPECT_EQ(Recovery::CheckRestorable(cp, true, 0).code(), StatusCode::kNotFound);
  EXPECT_TRUE(Recovery::CheckRestorable(cp, false, 0).ok());
  cp.dir.clear();
  EXPECT_EQ(Recovery::CheckRestorable(cp, true, 0).code(), StatusCode::kInvalidArgument);
}

// Issue 13, item 1: the embedding table of a softmax/MLP job is never used,
// so it never closed a round and, before the fix, held up every snapshot of
// a restored server: the next restore lost every update since the first.
TEST_F(RecoveryTest, UnusedTableDoesNotStopSnapshotsAfterARestore) {
  WriteSnapshot(3);
  Recovery rec(EveryRound(), /*restore=*/true);
  auto rounds = FreshRounds();
  ASSERT_TRUE(rec.Restore(view_, 0, 1, tables_, &rounds).ok());
  EXPECT_EQ(rec.restored_round(), 3);
  EXPECT_EQ(rounds[0].version(), 3);
  // The cluster is at round 10: table 0 aligns there (7 updates lost).
  RoundOnTable0(rec, rounds, 10);
  EXPECT_EQ(rec.updates_lost(), 7);
  EXPECT_EQ(rounds[0].version(), 11);
  EXPECT_TRUE(rec.align_pending(1));  // table 1 never saw a request
  rec.MaybeSnapshot(rounds, 0, kSlots, 1);
  rec.Join();
  EXPECT_EQ(NewestRound(dir_.string()), 11);
  RoundOnTable0(rec, rounds, 11);
  rec.MaybeSnapshot(rounds, 0, kSlots, 1);
  rec.Join();
  EXPECT_EQ(NewestRound(dir_.string()), 12);
}

// A table in use whose version jumped to the cluster's round but that has
// not closed a round yet is not snapshotted; nor is an unchanged restore.
TEST_F(RecoveryTest, NoSnapshotBeforeTheFirstRoundAfterARestore) {
  WriteSnapshot(3);
  CheckpointOptions cp = EveryRound();
  cp.every_seconds = 1e-6;
  Recovery rec(cp, /*restore=*/true);
  auto rounds = FreshRounds();
  ASSERT_TRUE(rec.Restore(view_, 0, 1, tables_, &rounds).ok());
  rec.MaybeSnapshot(rounds, 0, kSlots, 1);  // nothing new since the restored file
  rec.Join();
  EXPECT_EQ(ListSnapshots(dir_.string(), 0).size(), 1u);
  Message pull = MakeDataMessage(MsgType::kPull, 1, 1, 10, 0, 2,
                                 Buffer::FromVector(std::vector<uint64_t>{3}), Buffer());
  Outbox out;
  rec.Align(pull.header, 0, &rounds[0], kSelf, &out);
  EXPECT_EQ(rounds[0].version(), 10);
  rec.MaybeSnapshot(rounds, 0, kSlots, 1);
  rec.Join();
  EXPECT_EQ(NewestRound(dir_.string()), 3);
}

TEST_F(RecoveryTest, FreshStartMovesOldSnapshotsAside) {
  WriteSnapshot(3);
  Recovery rec(EveryRound(), /*restore=*/false);
  auto rounds = FreshRounds();
  ASSERT_TRUE(rec.Restore(view_, 0, 1, tables_, &rounds).ok());
  EXPECT_EQ(rec.restored_round(), -1);
  EXPECT_TRUE(ListSnapshots(dir_.string(), 0).empty());
  EXPECT_EQ(ListSnapshots((dir_ / "stale").string(), 0).size(), 1u);
}

}  // namespace
}  // namespace phalanx::ps::internal
