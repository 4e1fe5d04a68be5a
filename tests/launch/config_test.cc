#include "launch/config/config.h"

#include <gtest/gtest.h>

#include "launch/config/fingerprint.h"

namespace phalanx {
namespace {

TEST(ConfigTest, DefaultsAndValues) {
  auto c = ParseConfig(R"(
[cluster]
servers = 3
workers = 5
mode = "async"
[train]
rounds = 10
[aggregator]
name = "krum"
f = 1
r = 3
)");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->cluster.servers, 3);
  EXPECT_EQ(c->cluster.mode, "async");
  EXPECT_EQ(c->train.rounds, 10);
  EXPECT_EQ(c->aggregator.name, "krum");
  EXPECT_EQ(c->aggregator.params.at("r"), 3.0);
  EXPECT_EQ(c->data.path, "/usr/share/datasets/fashion-mnist");
}

TEST(ConfigTest, ExcludeAfterMissedRounds) {
  auto c = ParseConfig("");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->cluster.exclude_after_missed_rounds, 3);
  c = ParseConfig("", {"cluster.exclude_after_missed_rounds=0"});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->cluster.exclude_after_missed_rounds, 0);
  c = ParseConfig("", {"cluster.exclude_after_missed_rounds=-1"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("cluster.exclude_after_missed_rounds"), std::string::npos)
      << c.status().ToString();
  c = ParseConfig("", {"byzantine.count=1", "byzantine.attack=silent"});
  EXPECT_TRUE(c.ok()) << c.status().ToString();
}

TEST(ConfigTest, TableFanOutThresholds) {
  auto c = ParseConfig("");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->tables.parallel_min_update, 4096);
  EXPECT_EQ(c->tables.parallel_min_lookup, 262144);
  c = ParseConfig("[tables]\nparallel_min_update = 1\nparallel_min_lookup = 100\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->tables.parallel_min_update, 1);
  EXPECT_EQ(c->tables.parallel_min_lookup, 100);
  // The key both replaced is refused by name, not silently ignored.
  c = ParseConfig("[tables]\nparallel_min_batch = 4096\n");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("tables.parallel_min_batch"), std::string::npos)
      << c.status().ToString();
}

TEST(ConfigTest, UnknownKeysAndSectionsAreErrors) {
  auto c = ParseConfig("[cluster]\nserverz = 2\n");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("cluster.serverz"), std::string::npos);
  c = ParseConfig("[clustre]\nservers = 2\n");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("clustre"), std::string::npos);
}

TEST(ConfigTest, ImpossibleValuesAreErrors) {
  for (const char* text :
       {"[cluster]\nservers = 0\n", "[cluster]\nchecksum = \"sometimes\"\n",
        "[cluster]\nmax_part_bytes = -1\n", "[tables]\nparallel_min_update = 0\n",
        "[tables]\nparallel_min_lookup = 0\n", "[cluster]\nworkers = -1\n",
        "[cluster]\nmode = \"bsp\"\n", "[train]\nrounds = 0\n",
        "[optimizer]\nlearning_rate = -1.0\n", "[optimizer]\nkind = \"lbfgs\"\n",
        "[data]\ndataset = \"cifar\"\n", "[model]\nkind = \"embedding-bag\"\n",
        "[cluster]\nservers = \"two\"\n", "[train]\nbatch_size = 1.5\n",
        "[cluster]\nheartbeat_ms = 500\nheartbeat_timeout_ms = 100\n", "not toml at all ["}) {
    auto c = ParseConfig(text);
    EXPECT_FALSE(c.ok()) << text;
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument) << text;
  }
}

TEST(ConfigTest, OverridesApplyBeforeValidation) {
  auto c = ParseConfig("[train]\nrounds = 10\n",
                       {"train.rounds=20", "aggregator.name=median", "cluster.http=false"});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->train.rounds, 20);
  EXPECT_EQ(c->aggregator.name, "median");
  EXPECT_FALSE(c->cluster.http);
  EXPECT_FALSE(ParseConfig("", {"train.rounds=0"}).ok());
  auto nan = ParseConfig("[cluster]\nworkers = 4\n", {"byzantine.count=1", "byzantine.attack=nan"});
  ASSERT_TRUE(nan.ok()) << nan.status().ToString();
  EXPECT_EQ(nan->byzantine.attack, "nan");
  EXPECT_FALSE(ParseConfig("", {"optimizer.learning_rate=nan"}).ok());
  EXPECT_FALSE(ParseConfig("", {"rounds=3"}).ok());
  EXPECT_FALSE(ParseConfig("", {"train.nosuch=3"}).ok());
}

TEST(ConfigTest, MissingFileIsNotFound) {
  auto c = LoadConfig("/nonexistent/phalanx.toml");
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
}

TEST(ConfigTest, ShippedConfigsParse) {
  for (const char* name : {"fashion-mnist-mlp", "fashion-mnist-softmax", "spam-embedding"}) {
    auto c = LoadConfig(std::string(PHX_SOURCE_DIR) + "/launch/configs/" + name + ".toml");
    EXPECT_TRUE(c.ok()) << name << ": " << c.status().ToString();
  }
}

// What must agree across a job's nodes is in the fingerprint; what may differ
// per node (data path, ports, logging, byzantine role) is not.
TEST(ConfigTest, FingerprintHoldsWhatNodesMustAgreeOn) {
  auto base = ParseConfig("[cluster]\nworkers = 4\n");
  ASSERT_TRUE(base.ok()) << base.status().ToString();
  const ConfigFingerprint fp = FingerprintOf(*base);
  for (const char* set : {"model.kind=\"softmax\"", "model.hidden=64", "cluster.servers=3",
                          "optimizer.learning_rate=0.5", "aggregator.name=median", "tables.seed=9",
                          "train.rounds=77"}) {
    auto c = ParseConfig("[cluster]\nworkers = 4\n", {set});
    ASSERT_TRUE(c.ok()) << set << ": " << c.status().ToString();
    EXPECT_NE(FingerprintMismatch(fp, FingerprintOf(*c)), "") << set;
  }
  for (const char* set : {"data.path=\"/tmp/elsewhere\"", "cluster.http=false",
                          "cluster.heartbeat_ms=500", "byzantine.count=1", "train.log_every=7"}) {
    auto c = ParseConfig("[cluster]\nworkers = 4\n", {set});
    ASSERT_TRUE(c.ok()) << set << ": " << c.status().ToString();
    EXPECT_EQ(FingerprintMismatch(fp, FingerprintOf(*c)), "") << set;
  }
  auto softmax = ParseConfig("[cluster]\nworkers = 4\n", {"model.kind=\"softmax\""});
  ASSERT_TRUE(softmax.ok());
  EXPECT_NE(FingerprintMismatch(fp, FingerprintOf(*softmax)).find("model.kind is \"softmax\""),
            std::string::npos);
}

// The run folder's config.toml: every key with its effective value, read
// back to the same config (and to the same text: a fixed point).
TEST(ConfigTest, ResolvedTomlReadsBackToTheSameConfig) {
  const std::string text = R"(
[cluster]
workers = 5
[aggregator]
name = "flag"
f = 1
r = 3
[byzantine]
ranks = [4]
attack = "sign-flip"
[embedding_optimizer]
kind = "adagrad"
learning_rate = 0.05
[[faults]]
kind = "kill"
node = "server-1"
at_round = 30
restart_after_s = 4
)";
  auto c = ParseConfig(text, {"train.rounds=77", "cluster.heartbeat_ms=250"});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  for (const char* key : {"heartbeat_ms = 250", "rounds = 77", "dense_row_dim", "every_rounds",
                          "algorithm", "r = 3", "ranks = [ 4 ]", "restart_after_s = 4"}) {
    EXPECT_NE(c->resolved_toml.find(key), std::string::npos) << key << "\n" << c->resolved_toml;
  }
  auto again = ParseConfig(c->resolved_toml);
  ASSERT_TRUE(again.ok()) << again.status().ToString() << "\n" << c->resolved_toml;
  EXPECT_EQ(FingerprintMismatch(FingerprintOf(*c), FingerprintOf(*again)), "");
  EXPECT_EQ(again->cluster.heartbeat_ms, 250);
  EXPECT_EQ(again->byzantine.ranks, std::vector<int>{4});
  EXPECT_EQ(again->byzantine.attack, "sign-flip");
  EXPECT_TRUE(again->has_embedding_optimizer);
  EXPECT_EQ(again->embedding_optimizer.kind, "adagrad");
  ASSERT_EQ(again->faults.size(), 1u);
  EXPECT_EQ(again->faults[0].node, "server-1");
  EXPECT_EQ(again->resolved_toml, c->resolved_toml);
  // The shipped configs too.
  for (const char* name : {"fashion-mnist-mlp", "fashion-mnist-softmax", "spam-embedding"}) {
    auto shipped = LoadConfig(std::string(PHX_SOURCE_DIR) + "/launch/configs/" + name + ".toml");
    ASSERT_TRUE(shipped.ok()) << name;
    auto back = ParseConfig(shipped->resolved_toml);
    ASSERT_TRUE(back.ok()) << name << ": " << back.status().ToString();
    EXPECT_EQ(back->resolved_toml, shipped->resolved_toml) << name;
  }
}

}  // namespace
}  // namespace phalanx
