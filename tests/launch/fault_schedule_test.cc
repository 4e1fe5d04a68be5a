#include "launch/faults/fault_schedule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "launch/experiment/experiment.h"

namespace phalanx::launch {
namespace {

const char* kBase = R"(
[cluster]
servers = 2
workers = 6
[train]
rounds = 200
)";

Result<FaultSchedule> Build(const std::string& faults) {
  auto c = ParseConfig(std::string(kBase) + faults);
  if (!c.ok()) return c.status();
  return BuildFaultSchedule(*c);
}

// The schedule's error message, or "" when it was accepted.
std::string Error(const std::string& faults) {
  auto s = Build(faults);
  return s.ok() ? "" : s.status().message();
}

bool Has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

TEST(FaultScheduleTest, ParsesEveryKind) {
  auto s = Build(R"(
[[faults]]
kind = "byzantine"
node = "worker-3"
attack = "alie"
at_round = 50
[[faults]]
kind = "kill"
node = "server-1"
at_round = 120
restart_after_s = 5
[[faults]]
kind = "kill"
node = "worker-2"
at_s = 30
[[faults]]
kind = "straggler"
node = "worker-4"
step_delay_ms = 200
[[faults]]
kind = "delay"
node = "worker-5"
delay_ms = 50
jitter_ms = 5
at_round = 80
until_round = 160
[[faults]]
kind = "loss"
node = "worker-5"
loss_pct = 10
at_round = 80
until_round = 160
[[faults]]
kind = "partition"
node = "server-0"
peer = "scheduler"
at_s = 20
until_s = 30
[[faults]]
kind = "bandwidth"
node = "worker-1"
rate_kbit = 800
direction = "out"
)");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->faults.size(), 8u);
  const Fault& byz = s->faults[0];
  EXPECT_EQ(byz.kind, FaultKind::kByzantine);
  EXPECT_EQ(byz.node.name(), "worker-3");
  EXPECT_TRUE(byz.in_rounds);
  EXPECT_EQ(byz.at, 50);
  const Fault& kill = s->faults[1];
  EXPECT_EQ(kill.kind, FaultKind::kKill);
  EXPECT_EQ(kill.node.role, Role::kServer);
  ASSERT_TRUE(kill.restart_after_s.has_value());
  EXPECT_EQ(*kill.restart_after_s, 5);
  EXPECT_FALSE(s->faults[2].in_rounds);
  EXPECT_EQ(s->faults[2].at, 30);
  EXPECT_FALSE(s->faults[2].restart_after_s.has_value());
  EXPECT_EQ(s->faults[3].step_delay_ms, 200);
  const Fault& delay = s->faults[4];
  EXPECT_EQ(delay.delay_ms, 50);
  EXPECT_EQ(delay.jitter_ms, 5);
  ASSERT_TRUE(delay.until.has_value());
  EXPECT_EQ(*delay.until, 160);
  EXPECT_TRUE(delay.uses_proxy());
  EXPECT_EQ(s->faults[5].loss_pct, 10);
  const Fault& part = s->faults[6];
  ASSERT_TRUE(part.peer.has_value());
  EXPECT_EQ(part.peer->role, Role::kScheduler);
  const Fault& bw = s->faults[7];
  EXPECT_TRUE(bw.egress);
  EXPECT_FALSE(bw.ingress);
  EXPECT_FALSE(bw.until.has_value());  // to the end of the run
}

TEST(FaultScheduleTest, BehaviourBecomesOverridesForThatWorkerOnly) {
  auto c = ParseConfig(std::string(kBase) + R"(
[byzantine]
count = 1
[[faults]]
kind = "byzantine"
node = "worker-3"
attack = "alie"
at_round = 50
[[faults]]
kind = "straggler"
node = "worker-4"
step_delay_ms = 200
)");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto s = BuildFaultSchedule(*c);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto w3 = s->OverridesFor(*c, {Role::kWorker, 3});
  // f counts the config's liar (worker-5, the last rank) and the scheduled one.
  EXPECT_TRUE(Has(w3, "byzantine.ranks=[3,5]"));
  EXPECT_TRUE(Has(w3, "byzantine.attack=alie"));
  EXPECT_TRUE(Has(w3, "byzantine.from_round=50"));
  EXPECT_EQ(s->OverridesFor(*c, {Role::kWorker, 4}),
            std::vector<std::string>{"train.step_delay_ms=200"});
  EXPECT_TRUE(s->OverridesFor(*c, {Role::kWorker, 0}).empty());
  EXPECT_TRUE(s->OverridesFor(*c, {Role::kServer, 0}).empty());
  // The overrides are valid config for the worker's own process.
  std::vector<std::string> sets = w3;
  auto worker_config = ParseConfig(std::string(kBase) + "[byzantine]\ncount = 1\n", sets);
  ASSERT_TRUE(worker_config.ok()) << worker_config.status().ToString();
  EXPECT_EQ(worker_config->byzantine.attack, "alie");
  EXPECT_EQ(worker_config->byzantine.ranks, (std::vector<int>{3, 5}));
}

TEST(FaultScheduleTest, ProxiedLinksAndNetnsNeeds) {
  auto c = ParseConfig(std::string(kBase) + R"(
[[faults]]
kind = "delay"
node = "worker-1"
delay_ms = 20
[[faults]]
kind = "delay"
node = "server-0"
peer = "scheduler"
delay_ms = 20
[[faults]]
kind = "loss"
node = "worker-2"
loss_pct = 5
)");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto s = BuildFaultSchedule(*c);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  // worker-1: its scheduler link and one link per server.
  EXPECT_EQ(s->ProxiedLinks(*c, s->faults[0]).size(), 3u);
  EXPECT_TRUE(s->NeedsNetns(*c, s->faults[0]));  // worker->server links use DNAT
  auto links = s->ProxiedLinks(*c, s->faults[1]);
  ASSERT_EQ(links.size(), 1u);
  EXPECT_EQ(links[0].client.name(), "server-0");
  EXPECT_EQ(links[0].listener.name(), "scheduler");
  EXPECT_FALSE(s->NeedsNetns(*c, s->faults[1]));  // only the proxy
  EXPECT_TRUE(s->NeedsNetns(*c, s->faults[2]));
  EXPECT_TRUE(s->ProxiedLinks(*c, s->faults[2]).empty());
}

TEST(FaultScheduleTest, RefusesNodesThatDoNotExist) {
  std::string e = Error(R"(
[[faults]]
kind = "kill"
node = "worker-9"
at_s = 3
)");
  EXPECT_NE(e.find("faults[0].node 'worker-9' does not exist"), std::string::npos) << e;
  EXPECT_NE(e.find("worker-0..worker-5"), std::string::npos) << e;
  e = Error(R"(
[[faults]]
kind = "partition"
node = "server-0"
peer = "server-7"
)");
  EXPECT_NE(e.find("faults[0].peer 'server-7' does not exist"), std::string::npos) << e;
  e = Error(R"(
[[faults]]
kind = "kill"
node = "client-1"
at_s = 3
)");
  EXPECT_NE(e.find("is not a node name"), std::string::npos) << e;
  e = Error("[[faults]]\nkind = \"kill\"\nat_s = 1\n");
  EXPECT_NE(e.find("node is required"), std::string::npos) << e;
}

TEST(FaultScheduleTest, RefusesBadTimes) {
  std::string e = Error(R"(
[[faults]]
kind = "kill"
node = "worker-1"
at_s = -3
)");
  EXPECT_NE(e.find("at_s = -3 is in the past"), std::string::npos) << e;
  e = Error(R"(
[[faults]]
kind = "loss"
node = "worker-1"
loss_pct = 10
at_round = 80
until_round = 40
)");
  EXPECT_NE(e.find("until_round (40) must be after at_round (80)"), std::string::npos) << e;
  e = Error(R"(
[[faults]]
kind = "kill"
node = "worker-1"
at_round = 500
)");
  EXPECT_NE(e.find("never reached"), std::string::npos) << e;
  e = Error(R"(
[[faults]]
kind = "loss"
node = "worker-1"
loss_pct = 10
at_round = 10
until_s = 40
)");
  EXPECT_NE(e.find("not both units"), std::string::npos) << e;
  e = Error(R"(
[[faults]]
kind = "kill"
node = "worker-1"
at_s = 1
until_s = 4
)");
  EXPECT_NE(e.find("applies to network faults only"), std::string::npos) << e;
  e = Error("[[faults]]\nkind = \"kill\"\nnode = \"worker-1\"\n");
  EXPECT_NE(e.find("a kill needs a time"), std::string::npos) << e;
}

TEST(FaultScheduleTest, RefusesOverlappingPartitionsOfOneLink) {
  std::string e = Error(R"(
[[faults]]
kind = "partition"
node = "server-0"
peer = "scheduler"
at_s = 10
until_s = 20
[[faults]]
kind = "partition"
node = "scheduler"
peer = "server-0"
at_s = 15
until_s = 25
)");
  EXPECT_NE(e.find("faults[0] and faults[1] overlap"), std::string::npos) << e;
  // A whole-node partition covers each of its links.
  e = Error(R"(
[[faults]]
kind = "partition"
node = "worker-2"
at_s = 10
[[faults]]
kind = "partition"
node = "worker-2"
peer = "server-1"
at_s = 50
until_s = 60
)");
  EXPECT_NE(e.find("overlap"), std::string::npos) << e;
  // Back to back is fine, and so are different links at once.
  EXPECT_EQ(Error(R"(
[[faults]]
kind = "partition"
node = "server-0"
peer = "scheduler"
at_s = 10
until_s = 20
[[faults]]
kind = "partition"
node = "server-0"
peer = "scheduler"
at_s = 20
until_s = 30
[[faults]]
kind = "partition"
node = "server-1"
peer = "scheduler"
at_s = 10
until_s = 20
)"),
            "");
}

TEST(FaultScheduleTest, RefusesUnknownKindsAndStrayParameters) {
  std::string e = Error("[[faults]]\nkind = \"meteor\"\nnode = \"worker-1\"\n");
  EXPECT_NE(e.find("unknown kind 'meteor'"), std::string::npos) << e;
  e = Error("[[faults]]\nkind = \"kill\"\nnode = \"worker-1\"\nat_s = 1\nloss_pct = 3\n");
  EXPECT_NE(e.find("loss_pct does not apply to a kill fault"), std::string::npos) << e;
  e = Error("[[faults]]\nkind = \"loss\"\nnode = \"worker-1\"\nloss_pct = 130\n");
  EXPECT_NE(e.find("loss_pct must be in (0, 100]"), std::string::npos) << e;
  e = Error("[[faults]]\nkind = \"byzantine\"\nnode = \"server-1\"\nattack = \"alie\"\n");
  EXPECT_NE(e.find("only workers can be Byzantine"), std::string::npos) << e;
  e = Error("[[faults]]\nkind = \"byzantine\"\nnode = \"worker-1\"\nattack = \"tickle\"\n");
  EXPECT_NE(e.find("attack must be one of"), std::string::npos) << e;
  e = Error(
      "[[faults]]\nkind = \"delay\"\nnode = \"worker-1\"\npeer = \"worker-2\"\ndelay_ms = 5\n");
  EXPECT_NE(e.find("no TCP link"), std::string::npos) << e;
  e = Error(
      "[[faults]]\nkind = \"delay\"\nnode = \"worker-1\"\ndelay_ms = 5\ndirection = \"up\"\n");
  EXPECT_NE(e.find("direction must be in, out or both"), std::string::npos) << e;
  // Unknown keys are caught by the config parser, naming the entry.
  auto c = ParseConfig(std::string(kBase) +
                       "[[faults]]\nkind = \"kill\"\nnode = \"worker-1\"\nwhen = 3\n");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("unknown key 'faults[0].when'"), std::string::npos)
      << c.status().ToString();
  // [faults] as a plain table is not an array of tables.
  c = ParseConfig(std::string(kBase) + "[faults]\nkind = \"kill\"\n");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("[[faults]]"), std::string::npos) << c.status().ToString();
}

TEST(FaultScheduleTest, ThePacketLossExampleIsValid) {
  const std::string dir = std::string(PHX_SOURCE_DIR) + "/launch/";
  auto spec = LoadExperiment(dir + "experiments/fa-packet-loss.toml");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ASSERT_EQ(spec->schedule_files.count("loss3"), 1u);
  std::stringstream text;
  text << std::ifstream(spec->base_config).rdbuf() << "\n"
       << std::ifstream(spec->schedule_files.at("loss3")).rdbuf();
  auto c = ParseConfig(text.str(), spec->overrides);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->cluster.workers, 15);
  auto s = BuildFaultSchedule(*c);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->faults.size(), 3u);
  for (const auto& f : s->faults) {
    EXPECT_EQ(f.kind, FaultKind::kLoss);
    EXPECT_EQ(f.loss_pct, 10);
    EXPECT_TRUE(s->NeedsNetns(*c, f));
  }
}

TEST(FaultScheduleTest, NoFaultsIsAnEmptySchedule) {
  auto s = Build("");
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->faults.empty());
}

}  // namespace
}  // namespace phalanx::launch
