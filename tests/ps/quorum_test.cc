// The synchronous round quorum (ps/internal/quorum.h): a worker that missed k
// consecutive rounds leaves the quorum, later rounds close without waiting for
// it, it rejoins when it pushes again, shards adopt one state from the plan,
// and k = 0 keeps today's behaviour (every round waits for every live worker).
// Counts and injected clocks only: no sleeps, no timing assertions.

#include "ps/internal/quorum.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "aggregators/aggregator.h"
#include "ps/internal/coordination.h"
#include "ps/internal/round_coordinator.h"
#include "ps/internal/sync_round.h"

namespace phalanx::ps::internal {
namespace {

constexpr int32_t kSelf = 100;
constexpr uint32_t kDim = 2;

std::vector<NodeInfo> Workers(std::vector<int32_t> ids) {
  std::vector<NodeInfo> w;
  for (int32_t id : ids) w.push_back(NodeInfo{id, static_cast<int32_t>(w.size())});
  return w;
}

GramPartial PartialOf(std::vector<int32_t> workers) {
  GramPartial p;
  p.workers = std::move(workers);
  p.finite.assign(p.workers.size(), 1);
  return p;
}

TEST(QuorumTest, MissesCountUpToKThenTheWorkerIsExcludedOnce) {
  const auto workers = Workers({1, 2, 3});
  QuorumState q;
  std::vector<QuorumChange> changes;
  q = NextQuorum(q, {PartialOf({1, 2})}, workers, 2, &changes);
  EXPECT_EQ(q, (QuorumState{{3, 1}}));
  EXPECT_TRUE(changes.empty());
  EXPECT_EQ(QuorumSize(q, workers, 2), 3);
  q = NextQuorum(q, {PartialOf({1, 2})}, workers, 2, &changes);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].worker, 3);
  EXPECT_EQ(changes[0].rank, 2);
  EXPECT_TRUE(changes[0].excluded);
  EXPECT_EQ(changes[0].missed, 2);
  EXPECT_TRUE(Excluded(q, 3, 2));
  EXPECT_EQ(QuorumSize(q, workers, 2), 2);
  // Still silent: counted on, never excluded a second time.
  for (int r = 0; r < 5; ++r) q = NextQuorum(q, {PartialOf({1, 2})}, workers, 2, &changes);
  EXPECT_EQ(changes.size(), 1u);
  EXPECT_EQ(q.at(3), 7);
}

TEST(QuorumTest, APushToAnyShardBringsAnExcludedWorkerBack) {
  const auto workers = Workers({1, 2});
  QuorumState q = {{2, 4}};  // excluded at k = 2, missed 4 rounds
  std::vector<QuorumChange> changes;
  q = NextQuorum(q, {PartialOf({1, 2}), PartialOf({1})}, workers, 2, &changes);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_FALSE(changes[0].excluded);
  EXPECT_EQ(changes[0].missed, 4);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(QuorumSize(q, workers, 2), 2);
}

// A quorum member missing from one shard's partial (that shard timed out
// without it) missed the round; a worker that pushed everywhere resets.
TEST(QuorumTest, MissingFromOneShardIsAMissAndAFullRoundResets) {
  const auto workers = Workers({1, 2});
  std::vector<QuorumChange> changes;
  QuorumState q = NextQuorum({}, {PartialOf({1, 2}), PartialOf({1})}, workers, 3, &changes);
  EXPECT_EQ(q, (QuorumState{{2, 1}}));
  q = NextQuorum(q, {PartialOf({1, 2}), PartialOf({1, 2})}, workers, 3, &changes);
  EXPECT_TRUE(q.empty());
  EXPECT_TRUE(changes.empty());
}

TEST(QuorumTest, DeadWorkersAreForgottenAndKZeroNeverExcludes) {
  auto workers = Workers({1, 2});
  workers[1].alive = false;
  std::vector<QuorumChange> changes;
  EXPECT_TRUE(NextQuorum({{2, 5}}, {PartialOf({1})}, workers, 2, &changes).empty());
  EXPECT_EQ(QuorumSize({{2, 5}}, workers, 2), 1);  // dead workers are not in any quorum
  EXPECT_TRUE(NextQuorum({}, {PartialOf({})}, Workers({1, 2}), 0, &changes).empty());
  EXPECT_FALSE(Excluded({{2, 100}}, 2, 0));
  EXPECT_TRUE(changes.empty());
}

TEST(QuorumTest, StateTravelsInPartialsAndPlansAndBadStatesAreRefused) {
  GramPartial p = PartialOf({1, 2});
  p.quorum = {{3, 2}, {7, 1}};
  auto dp = DecodePartial(EncodePartial(p));
  ASSERT_TRUE(dp.ok()) << dp.status().ToString();
  EXPECT_EQ(dp->quorum, p.quorum);
  RoundPlan plan;
  plan.workers = {1, 2};
  plan.local = true;
  plan.quorum = {{3, 9}};
  auto d = DecodePlan(EncodePlan(plan));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->quorum, plan.quorum);
  // A count below 1 is not a state any server writes.
  RoundPlan bad = plan;
  bad.quorum = {{3, 0}};
  EXPECT_FALSE(DecodePlan(EncodePlan(bad)).ok());
}

// SyncRound with a coordinator-made plan: rounds stop waiting for a silent
// worker after k timeouts, and wait for it again once it pushed.
class QuorumRoundTest : public ::testing::Test {
 protected:
  void Make(int k) {
    aggregators::AggregatorOptions ao;
    ao.name = "mean";
    auto rule = aggregators::CreateAggregator(ao);
    ASSERT_TRUE(rule.ok()) << rule.status().ToString();
    rule_ = std::move(rule).value();
    view_.workers = Workers({1, 2, 3});
    coordinator_ = std::make_unique<RoundCoordinator>(rule_.get(), &metrics_, &view_, WireLimits{},
                                                      0, kSelf, k);
    for (int s = 0; s < 2; ++s) {
      TableOptions to;
      to.dim = kDim;
      to.init = InitKind::kZeros;
      auto table = EmbeddingTable::Create(to);
      ASSERT_TRUE(table.ok()) << table.status().ToString();
      shards_.push_back(std::make_unique<SyncRound>(0, std::move(table).value(), rule_.get(),
                                                    &metrics_, /*round_timeout_ms=*/60000, k));
    }
  }

  static Message PushOf(int32_t sender, int64_t round) {
    return MakeDataMessage(MsgType::kPush, sender, 7, round, 0, kDim,
                           Buffer::FromVector(std::vector<uint64_t>{5}),
                           Buffer::FromVector(std::vector<float>{1, 1}));
  }

  // Every shard gets the pushes of `ids`; returns whether every shard is
  // ready to close now (without the timeout).
  bool PushAll(const std::vector<int32_t>& ids, const std::vector<size_t>& shards = {0, 1}) {
    Outbox out;
    const int64_t round = shards_[0]->version();
    for (size_t s : shards) {
      for (int32_t id : ids) shards_[s]->Push("w", PushOf(id, round), true, kSelf, &out);
    }
    bool ready = true;
    for (auto& s : shards_) ready = ready && s->ReadyToClose(view_.workers, Clock::now());
    return ready;
  }

  // Closes the round on both shards (after the timeout where needed) with
  // the coordinator's plan; returns the plan.
  RoundPlan CloseByTimeoutIfNeeded() {
    const auto later = Clock::now() + std::chrono::minutes(2);
    std::vector<GramPartial> partials;
    const int64_t round = shards_[0]->version();
    for (auto& s : shards_) {
      EXPECT_TRUE(s->ReadyToClose(view_.workers, later));
      partials.push_back(s->StartClose());
    }
    RoundPlan plan = coordinator_->Plan(0, round, partials);
    Outbox out;
    for (auto& s : shards_) EXPECT_TRUE(s->FinishClose(round, plan, kSelf, &out));
    return plan;
  }

  ServerMetrics metrics_;
  std::unique_ptr<aggregators::Aggregator> rule_;
  ClusterView view_;
  std::unique_ptr<RoundCoordinator> coordinator_;
  std::vector<std::unique_ptr<SyncRound>> shards_;
};

TEST_F(QuorumRoundTest, SilentWorkerLeavesAfterKRoundsAndRejoinsWhenItPushes) {
  Make(/*k=*/2);
  for (int r = 0; r < 2; ++r) {
    EXPECT_FALSE(PushAll({1, 2})) << "round " << r << " waits for worker 3 until the timeout";
    CloseByTimeoutIfNeeded();
  }
  auto changes = coordinator_->TakeQuorumChanges();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].round, 1);
  EXPECT_EQ(changes[0].change.worker, 3);
  EXPECT_TRUE(changes[0].change.excluded);
  EXPECT_EQ(changes[0].quorum, 2);
  for (auto& s : shards_) EXPECT_EQ(s->QuorumSize(view_.workers), 2) << "both shards agree";
  // Later rounds close as soon as the quorum pushed.
  for (int r = 0; r < 3; ++r) {
    EXPECT_TRUE(PushAll({1, 2}));
    CloseByTimeoutIfNeeded();
  }
  EXPECT_TRUE(coordinator_->TakeQuorumChanges().empty());
  // Worker 3 pushes again (to one shard only): its push is in this round on
  // that shard, it is back in the quorum, and the plan aggregates only
  // workers every shard saw.
  EXPECT_FALSE(PushAll({3}, {0})) << "the quorum (1, 2) has not pushed yet";
  EXPECT_TRUE(PushAll({1, 2}));
  RoundPlan plan = CloseByTimeoutIfNeeded();
  EXPECT_EQ(plan.workers, (std::vector<int32_t>{1, 2}));
  changes = coordinator_->TakeQuorumChanges();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_FALSE(changes[0].change.excluded);
  EXPECT_EQ(changes[0].change.missed, 5);
  EXPECT_EQ(changes[0].quorum, 3);
  // The next round waits for it again.
  EXPECT_FALSE(PushAll({1, 2}));
  EXPECT_TRUE(PushAll({3}));
  EXPECT_EQ(CloseByTimeoutIfNeeded().workers, (std::vector<int32_t>{1, 2, 3}));
}

TEST_F(QuorumRoundTest, KZeroWaitsForEveryLiveWorkerEveryRound) {
  Make(/*k=*/0);
  for (int r = 0; r < 6; ++r) {
    EXPECT_FALSE(PushAll({1, 2})) << "round " << r;
    CloseByTimeoutIfNeeded();
  }
  EXPECT_TRUE(coordinator_->TakeQuorumChanges().empty());
  for (auto& s : shards_) {
    EXPECT_TRUE(s->quorum().empty());
    EXPECT_EQ(s->QuorumSize(view_.workers), 3);
  }
}

// The coordinator starts from the state its partials carry, so a new one
// (after a failure) continues the count instead of starting over.
TEST_F(QuorumRoundTest, ANewCoordinatorContinuesFromThePartialsState) {
  Make(/*k=*/3);
  for (int r = 0; r < 2; ++r) {
    PushAll({1, 2});
    CloseByTimeoutIfNeeded();
  }
  EXPECT_EQ(shards_[1]->quorum(), (QuorumState{{3, 2}}));
  coordinator_ =
      std::make_unique<RoundCoordinator>(rule_.get(), &metrics_, &view_, WireLimits{}, 1, kSelf, 3);
  PushAll({1, 2});
  CloseByTimeoutIfNeeded();
  auto changes = coordinator_->TakeQuorumChanges();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_TRUE(changes[0].change.excluded);
}

}  // namespace
}  // namespace phalanx::ps::internal
