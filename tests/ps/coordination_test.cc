// The shards' round-coordination bodies (ps/internal/coordination.h): what a
// peer server sends may be hostile or corrupt, so decoding must refuse bad
// bytes with a status and never allocate what a length field claims.

#include "ps/internal/coordination.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace phalanx::ps::internal {
namespace {

RoundPlan SamplePlan() {
  RoundPlan p;
  p.workers = {2, 3, 4};
  p.error = "";
  p.plan.coordinatewise_rule = "median";
  p.plan.coordinatewise_f = 1;
  p.plan.mixing = Eigen::MatrixXd::Identity(3, 3);
  p.plan.coefficients = Eigen::VectorXd::Ones(3);
  p.plan.selected = {0, 2};
  return p;
}

TEST(CoordinationTest, PlanRoundTrips) {
  const RoundPlan p = SamplePlan();
  auto d = DecodePlan(EncodePlan(p));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->workers, p.workers);
  EXPECT_EQ(d->plan.coordinatewise_rule, "median");
  EXPECT_EQ(d->plan.coordinatewise_f, 1);
  EXPECT_EQ(d->plan.mixing, p.plan.mixing);
  EXPECT_EQ(d->plan.coefficients, p.plan.coefficients);
  EXPECT_EQ(d->plan.selected, p.plan.selected);
}

TEST(CoordinationTest, PlanTruncatedOrPaddedIsRefused) {
  const std::string good = EncodePlan(SamplePlan());
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(DecodePlan(good.substr(0, n)).ok()) << n;
  }
  EXPECT_FALSE(DecodePlan(good + "x").ok());
}

// Found by tests/fuzz (body target): the error string's size tag was read by
// cereal, which resized the string to it (2^45 bytes here) before the length
// check. Under ASan that aborts; without it, a few GB would be allocated and
// zeroed for every such message.
TEST(CoordinationTest, HugeStringLengthIsRefusedBeforeAllocating) {
  RoundPlan p = SamplePlan();
  p.error = "x";
  std::string bytes = EncodePlan(p);
  // Layout: workers (u64 size + 3 x i32), local (bool), error (u64 size + bytes).
  const size_t error_size_at = 8 + 3 * 4 + 1;
  uint64_t size = 0;
  std::memcpy(&size, bytes.data() + error_size_at, sizeof(size));
  ASSERT_EQ(size, 1u);  // the layout assumed above
  const uint64_t huge = uint64_t{1} << 45;
  std::memcpy(bytes.data() + error_size_at, &huge, sizeof(huge));
  auto d = DecodePlan(bytes);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("string length over limit"), std::string::npos)
      << d.status().ToString();
}

TEST(CoordinationTest, PartialWithHugeMatrixIsRefused) {
  GramPartial p;
  p.workers = {1, 2};
  p.finite = {1, 1};
  p.gram = Eigen::MatrixXd::Identity(2, 2);
  std::string bytes = EncodePartial(p);
  ASSERT_TRUE(DecodePartial(bytes).ok());
  // rows, cols follow workers (u64 + 2 x i32), finite (u64 + 2 x u8), extra (i32).
  const size_t rows_at = 8 + 8 + 8 + 2 + 4;
  const int64_t big = int64_t{1} << 40;
  std::memcpy(bytes.data() + rows_at, &big, sizeof(big));
  EXPECT_FALSE(DecodePartial(bytes).ok());
}

// Found by tests/fuzz (body target): a 0 x 2^40 Gram matrix holds no entries,
// so the entry bound let it through, and the finiteness check then looped
// over its 2^40 empty columns (a coordinator hung on one corrupt partial).
TEST(CoordinationTest, EmptyMatrixWithHugeSideIsRefused) {
  GramPartial p;
  p.workers = {1, 2};
  p.finite = {1, 1};
  std::string bytes = EncodePartial(p);  // gram empty: rows = cols = 0
  const size_t cols_at = 8 + 8 + 8 + 2 + 4 + 8;
  const int64_t huge = int64_t{1} << 40;
  std::memcpy(bytes.data() + cols_at, &huge, sizeof(huge));
  auto d = DecodePartial(bytes);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("matrix size over limit"), std::string::npos)
      << d.status().ToString();
}

}  // namespace
}  // namespace phalanx::ps::internal
