// The synchronous round on its own (ps/internal/sync_round.h): pushes into a
// round, closing it with a plan, the pulls that waited for it, and what is
// refused, without sockets or a cluster.

#include "ps/internal/sync_round.h"

#include <gtest/gtest.h>

#include <vector>

#include "aggregators/aggregator.h"

namespace phalanx::ps::internal {
namespace {

constexpr int32_t kSelf = 100;
constexpr uint32_t kDim = 2;

class SyncRoundTest : public ::testing::Test {
 protected:
  void SetUp() override {
    aggregators::AggregatorOptions ao;
    ao.name = "mean";
    auto rule = aggregators::CreateAggregator(ao);
    ASSERT_TRUE(rule.ok()) << rule.status().ToString();
    rule_ = std::move(rule).value();
    TableOptions to;
    to.dim = kDim;
    to.init = InitKind::kZeros;
    to.optimizer.learning_rate = 1.0f;
    auto table = EmbeddingTable::Create(to);
    ASSERT_TRUE(table.ok()) << table.status().ToString();
    round_ = std::make_unique<SyncRound>(0, std::move(table).value(), rule_.get(), &metrics_,
                                         /*round_timeout_ms=*/60000);
  }

  static Message PushOf(int32_t sender, int64_t round, std::vector<uint64_t> keys,
                        std::vector<float> grads) {
    return MakeDataMessage(MsgType::kPush, sender, 7, round, 0, kDim,
                           Buffer::FromVector(std::move(keys)),
                           Buffer::FromVector(std::move(grads)));
  }
  static Message PullOf(int32_t sender, int64_t version, std::vector<uint64_t> keys) {
    return MakeDataMessage(MsgType::kPull, sender, 8, version, 0, kDim,
                           Buffer::FromVector(std::move(keys)), Buffer());
  }
  static std::vector<NodeInfo> Workers(std::vector<int32_t> ids) {
    std::vector<NodeInfo> w;
    for (int32_t id : ids) w.push_back(NodeInfo{id, static_cast<int32_t>(w.size())});
    return w;
  }
  // Closes the open round with the shard-local plan, as a lone server does.
  Outbox CloseLocally() {
    const GramPartial& p = round_->StartClose();
    RoundPlan plan = CombinePartials(*rule_, {p});
    Outbox out;
    EXPECT_TRUE(round_->FinishClose(round_->version(), plan, kSelf, &out));
    return out;
  }

  ServerMetrics metrics_;
  std::unique_ptr<aggregators::Aggregator> rule_;
  std::unique_ptr<SyncRound> round_;
};

TEST_F(SyncRoundTest, RoundClosesWhenEveryWorkerPushedAndAnswersWaitingPull) {
  const auto workers = Workers({1, 2});
  Outbox out;
  round_->Pull("w1", PullOf(1, 1, {5}), /*synchronous=*/true, kSelf, &out);
  EXPECT_TRUE(out.empty());  // version 1 is ahead: the pull waits
  EXPECT_TRUE(round_->Push("w1", PushOf(1, 0, {5}, {2, 4}), true, kSelf, &out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].msg.header.type, MsgType::kPushAck);
  EXPECT_FALSE(round_->ReadyToClose(workers, Clock::now()));
  EXPECT_TRUE(round_->Push("w2", PushOf(2, 0, {5}, {4, 8}), true, kSelf, &out));
  EXPECT_TRUE(round_->ReadyToClose(workers, Clock::now()));
  Outbox replies = CloseLocally();
  EXPECT_EQ(round_->version(), 1);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].peer, "w1");
  const Message& r = replies[0].msg;
  EXPECT_EQ(r.header.type, MsgType::kPullResponse);
  EXPECT_EQ(r.header.round, 1);
  ASSERT_EQ(r.value_span().size(), kDim);
  // Zeros minus lr 1 * mean(2,4 ; 4,8).
  EXPECT_FLOAT_EQ(r.value_span()[0], -3.0f);
  EXPECT_FLOAT_EQ(r.value_span()[1], -6.0f);
}

TEST_F(SyncRoundTest, RefusesStaleDuplicateAheadAndSplitPushes) {
  Outbox out;
  EXPECT_TRUE(round_->Push("w1", PushOf(1, 0, {5}, {1, 1}), true, kSelf, &out));
  out.clear();
  EXPECT_FALSE(round_->Push("w1", PushOf(1, 0, {5}, {1, 1}), true, kSelf, &out));  // duplicate
  EXPECT_FALSE(round_->Push("w2", PushOf(2, 3, {5}, {1, 1}), true, kSelf, &out));  // ahead
  Message split = PushOf(2, 0, {5}, {1, 1});
  split.header.flags |= kFlagMoreParts;
  EXPECT_FALSE(round_->Push("w2", split, true, kSelf, &out));
  ASSERT_EQ(out.size(), 3u);
  for (const auto& o : out) {
    EXPECT_TRUE(o.refused);
    EXPECT_EQ(o.msg.header.type, MsgType::kError);
  }
  CloseLocally();
  out.clear();
  EXPECT_FALSE(round_->Push("w2", PushOf(2, 0, {5}, {1, 1}), true, kSelf, &out));  // stale
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(StatusFromError(out[0].msg).code(), StatusCode::kAborted);
}

// Counted as one of the round's pushes (so the round need not wait for it),
// answered with an error, and never aggregated.
TEST_F(SyncRoundTest, NonFinitePushJoinsTheRoundButIsDroppedFromThePlan) {
  const auto workers = Workers({1, 2});
  Outbox out;
  round_->Push("w1", PushOf(1, 0, {5}, {2, 2}), true, kSelf, &out);
  EXPECT_TRUE(round_->Push("w2", PushOf(2, 0, {5}, {NAN, 1}), false, kSelf, &out));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_FALSE(out[1].refused);
  EXPECT_EQ(out[1].msg.header.type, MsgType::kError);
  EXPECT_TRUE(round_->ReadyToClose(workers, Clock::now()));
  const GramPartial& p = round_->StartClose();
  RoundPlan plan = CombinePartials(*rule_, {p});
  EXPECT_EQ(plan.workers, std::vector<int32_t>{1});
  EXPECT_TRUE(round_->FinishClose(0, plan, kSelf, &out));
  out.clear();
  round_->Pull("w1", PullOf(1, 1, {5}), true, kSelf, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FLOAT_EQ(out[0].msg.value_span()[0], -2.0f);
}

// A worker that saw round t close on another shard first pushes round t+1
// while this shard still waits for the plan: kept for the next round.
TEST_F(SyncRoundTest, EarlyPushWhileClosingOpensTheNextRound) {
  const auto workers = Workers({1});
  Outbox out;
  round_->Push("w1", PushOf(1, 0, {5}, {1, 1}), true, kSelf, &out);
  const GramPartial& p = round_->StartClose();
  RoundPlan plan = CombinePartials(*rule_, {p});
  out.clear();
  EXPECT_FALSE(round_->Push("w1", PushOf(1, 1, {5}, {1, 1}), true, kSelf, &out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].msg.header.type, MsgType::kPushAck);
  EXPECT_FALSE(round_->FinishClose(7, plan, kSelf, &out));  // a stale plan is ignored
  EXPECT_TRUE(round_->FinishClose(0, plan, kSelf, &out));
  EXPECT_EQ(round_->pushes().count(1), 1u);
  EXPECT_TRUE(round_->ReadyToClose(workers, Clock::now()));
}

TEST_F(SyncRoundTest, TimeoutClosesWithoutTheMissingWorker) {
  const auto workers = Workers({1, 2});
  Outbox out;
  round_->Push("w1", PushOf(1, 0, {5}, {1, 1}), true, kSelf, &out);
  EXPECT_FALSE(round_->ReadyToClose(workers, Clock::now()));
  EXPECT_TRUE(round_->ReadyToClose(workers, Clock::now() + std::chrono::minutes(2)));
  round_->StartClose();
  EXPECT_FALSE(round_->PlanOverdue(Clock::now()));
  EXPECT_TRUE(round_->PlanOverdue(Clock::now() + std::chrono::minutes(2)));
}

TEST_F(SyncRoundTest, JumpToDropsThePushesAndAnswersThePullsThatWaited) {
  Outbox out;
  round_->Push("w1", PushOf(1, 0, {5}, {1, 1}), true, kSelf, &out);
  round_->Pull("w2", PullOf(2, 4, {5}), true, kSelf, &out);
  out.clear();
  round_->JumpTo(4, kSelf, &out);
  EXPECT_EQ(round_->version(), 4);
  EXPECT_TRUE(round_->pushes().empty());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].peer, "w2");
  EXPECT_EQ(out[0].msg.header.round, 4);
}

}  // namespace
}  // namespace phalanx::ps::internal

namespace phalanx::ps::internal {
namespace {

TEST_F(SyncRoundTest, RoundsWithoutUpdateAreCountedApartFromUpdatedOnes) {
  Outbox out;
  round_->Push("w1", PushOf(1, 0, {5}, {2, 2}), true, kSelf, &out);
  round_->StartClose();
  RoundPlan refused;
  refused.error = "krum: needs n > 2f, got n=1, f=1";
  EXPECT_TRUE(round_->FinishClose(0, refused, kSelf, &out));
  EXPECT_EQ(round_->rounds_failed(), 1);
  EXPECT_EQ(round_->rounds_updated(), 0);
  EXPECT_EQ(round_->last_failure(), refused.error);
  EXPECT_EQ(round_->version(), 1) << "a refused round still closes";
  round_->Push("w1", PushOf(1, 1, {5}, {2, 2}), true, kSelf, &out);
  CloseLocally();
  EXPECT_EQ(round_->rounds_updated(), 1);
  EXPECT_EQ(round_->rounds_failed(), 1);
}

}  // namespace
}  // namespace phalanx::ps::internal
