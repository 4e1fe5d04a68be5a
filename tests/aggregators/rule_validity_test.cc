// CheckRuleCanRun: an impossible rule configuration is refused up front with
// the rule's own condition, and every rule accepts a configuration it can run.
#include <gtest/gtest.h>

#include <string>

#include "aggregators/aggregator.h"

namespace phalanx::aggregators {
namespace {

AggregatorOptions Rule(const std::string& name, int f) {
  AggregatorOptions o;
  o.name = name;
  o.f = f;
  return o;
}

TEST(RuleValidityTest, KrumWithTooFewWorkersIsRefusedNamingTheCondition) {
  Status s = CheckRuleCanRun(Rule("krum", 3), 4);
  ASSERT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("krum"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("4 inputs"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("2f"), std::string::npos) << s.ToString();
}

TEST(RuleValidityTest, BulyanNeedsFourFPlusThree) {
  Status s = CheckRuleCanRun(Rule("bulyan", 1), 4);
  ASSERT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("4f+3"), std::string::npos) << s.ToString();
  EXPECT_TRUE(CheckRuleCanRun(Rule("bulyan", 1), 7).ok());
  EXPECT_FALSE(CheckRuleCanRun(Rule("bulyan", 1), 6).ok());
}

TEST(RuleValidityTest, TrimmedMeanAndNoInputs) {
  EXPECT_FALSE(CheckRuleCanRun(Rule("trimmed-mean", 2), 4).ok());
  EXPECT_TRUE(CheckRuleCanRun(Rule("trimmed-mean", 1), 4).ok());
  EXPECT_TRUE(CheckRuleCanRun(Rule("mean", 0), 1).ok());
  EXPECT_EQ(CheckRuleCanRun(Rule("mean", 0), 0).code(), StatusCode::kInvalidArgument);
}

TEST(RuleValidityTest, UnknownRuleAndParameterAreRefused) {
  EXPECT_FALSE(CheckRuleCanRun(Rule("no-such-rule", 0), 5).ok());
  AggregatorOptions o = Rule("krum", 1);
  o.params["no_such_param"] = 1;
  EXPECT_FALSE(CheckRuleCanRun(o, 9).ok());
}

TEST(RuleValidityTest, EveryRuleRunsWhereItsConditionHolds) {
  // 15 inputs with f = 3 satisfies every rule's condition (Bulyan's 4f+3 is
  // the strictest), in both forms.
  for (const std::string& name : AggregatorNames()) {
    EXPECT_TRUE(CheckRuleCanRun(Rule(name, 3), 15).ok()) << name;
  }
  EXPECT_TRUE(CheckRuleCanRun(Rule("nnm+krum", 3), 15).ok());
}

}  // namespace
}  // namespace phalanx::aggregators
