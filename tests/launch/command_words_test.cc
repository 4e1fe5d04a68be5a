#include "launch/cli/command_words.h"

#include <gtest/gtest.h>

namespace phalanx::launch {
namespace {

const std::vector<std::string> kCommands = {"scheduler", "server",    "worker",    "launch",
                                            "simulate",  "aggregate", "experiment"};
const std::vector<std::pair<std::string, std::vector<std::string>>> kSubs = {{"launch", {"local"}}};

std::string Message(std::vector<std::string> args) {
  return UnknownCommandMessage(args, kCommands, kSubs, {"--log-level"});
}

TEST(CommandWordsTest, EditDistanceCountsSwapsAsOne) {
  EXPECT_EQ(EditDistance("launch", "launch"), 0);
  EXPECT_EQ(EditDistance("lauch", "launch"), 1);
  EXPECT_EQ(EditDistance("lcoal", "local"), 1);
  EXPECT_EQ(EditDistance("", "abc"), 3);
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3);
}

TEST(CommandWordsTest, NearestNameOnlyForLikelyTypos) {
  EXPECT_EQ(NearestName("lauch", kCommands), "launch");
  EXPECT_EQ(NearestName("wroker", kCommands), "worker");
  EXPECT_EQ(NearestName("experiments", kCommands), "experiment");
  EXPECT_EQ(NearestName("launch", kCommands), "");  // a name, not a typo
  EXPECT_EQ(NearestName("xyz", kCommands), "");     // too far from everything
}

TEST(CommandWordsTest, UnknownCommandIsNamedWithTheNearestAndTheList) {
  EXPECT_EQ(Message({"lauch", "local", "--config", "x"}),
            "unknown command 'lauch'; did you mean 'launch'? (commands: scheduler, server, "
            "worker, launch, simulate, aggregate, experiment)");
  EXPECT_EQ(Message({"launch", "lcoal"}),
            "unknown launch command 'lcoal'; did you mean 'local'? (launch commands: local)");
  EXPECT_EQ(Message({"--log-level", "debug", "trian"}).rfind("unknown command 'trian'", 0), 0u);
  EXPECT_EQ(Message({"--log-level=debug", "qqqq"}).find("did you mean"), std::string::npos);
}

TEST(CommandWordsTest, KnownCommandsAndOptionsPass) {
  EXPECT_EQ(Message({}), "");
  EXPECT_EQ(Message({"--help"}), "");
  EXPECT_EQ(Message({"launch", "local", "--config", "lauch"}), "");  // values after a command
  EXPECT_EQ(Message({"--log-level", "warn", "worker", "--rank", "1"}), "");
  EXPECT_EQ(Message({"launch"}), "");  // CLI11 says a launch command is required
}

}  // namespace
}  // namespace phalanx::launch
