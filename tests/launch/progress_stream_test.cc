// What the launcher makes of the nodes' lines (launch/cluster/progress_stream.h)
// and how it reads the servers' logs (log_follower.h): quorum changes that
// several servers (or several reads) report are counted once.

#include "launch/cluster/progress_stream.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/node_lines.h"
#include "launch/cluster/log_follower.h"

namespace phalanx::launch {
namespace {

std::string Change(int server, int64_t table, int64_t round, int worker, int rank, bool excluded) {
  QuorumLine q;
  q.server_rank = server;
  q.table = table;
  q.round = round;
  q.worker = worker;
  q.worker_rank = rank;
  q.excluded = excluded;
  q.missed = 2;
  return FormatQuorumLine(q);
}

TEST(ProgressStreamTest, QuorumChangesAreCountedOnce) {
  ProgressStream p;
  p.Consume(Change(0, 0, 1, 17, 3, true));
  p.Consume(Change(1, 0, 1, 17, 3, true));  // the same change, said again
  EXPECT_EQ(p.quorum_exclusions(), 1);
  EXPECT_EQ(p.out_of_quorum(), 1);
  p.Consume(Change(0, 1, 4, 17, 3, true));  // the embedding table's quorum too
  EXPECT_EQ(p.quorum_exclusions(), 2);
  EXPECT_EQ(p.out_of_quorum(), 1) << "one worker, out of two tables' quorums";
  p.Consume(Change(0, 0, 9, 17, 3, false));
  p.Consume(Change(0, 1, 9, 17, 3, false));
  EXPECT_EQ(p.quorum_rejoins(), 2);
  EXPECT_EQ(p.out_of_quorum(), 0);
  EXPECT_EQ(p.quorum_exclusions_by_worker().at(3), 2);
  EXPECT_EQ(p.last_round(), 0) << "quorum lines are not progress rows";
}

TEST(LogFollowerTest, ReadsOnlyNewCompleteLines) {
  const auto path = std::filesystem::temp_directory_path() / "phx_log_follower_test.log";
  std::filesystem::remove(path);
  LogFollower f;
  std::vector<std::string> lines;
  f.Read(path.string(), &lines);  // not there yet
  EXPECT_TRUE(lines.empty());
  {
    std::ofstream out(path);
    out << "one\ntw";
  }
  f.Read(path.string(), &lines);
  EXPECT_EQ(lines, std::vector<std::string>{"one"});
  {
    std::ofstream out(path, std::ios::app);
    out << "o\nthree\n";
  }
  f.Read(path.string(), &lines);
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "three"}));
  f.Read(path.string(), &lines);
  EXPECT_EQ(lines.size(), 3u);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace phalanx::launch
