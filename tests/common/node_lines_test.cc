#include "common/node_lines.h"

#include <gtest/gtest.h>

namespace phalanx {
namespace {

TEST(NodeLinesTest, EndpointAndHttpRoundTrip) {
  EXPECT_EQ(FormatEndpointLine("tcp://127.0.0.1:5555"), "PHX_ENDPOINT tcp://127.0.0.1:5555");
  EXPECT_EQ(ParseEndpointLine(FormatEndpointLine("tcp://10.0.0.1:7")), "tcp://10.0.0.1:7");
  EXPECT_EQ(ParseEndpointLine("PHX_ENDPOINT tcp://h:1\r"), "tcp://h:1");
  EXPECT_EQ(FormatHttpLine(8080), "PHX_HTTP 8080");
  EXPECT_EQ(ParseHttpLine(FormatHttpLine(8080)), 8080);
  EXPECT_FALSE(ParseHttpLine("PHX_HTTP 80x"));
  EXPECT_FALSE(ParseHttpLine("PHX_HTTP "));
  EXPECT_FALSE(ParseEndpointLine("PHX_ENDPOINT "));
  EXPECT_FALSE(ParseEndpointLine("PHX_HTTP 80"));
  EXPECT_FALSE(ParseHttpLine("PHX_ENDPOINT tcp://h:1"));
}

TEST(NodeLinesTest, ProgressWritesExactlyThePresentFields) {
  ProgressLine p;
  p.rank = 0;
  p.round = 40;
  p.version = 39;
  p.loss = 0.5;
  p.wall = 1.25;
  p.rows_per_s = 100;
  p.test_accuracy = 0.75;
  // nlohmann sorts object keys: the line is the same whatever the order of writing.
  EXPECT_EQ(FormatProgressLine(p),
            "PHX_PROGRESS {\"loss\":0.5,\"rank\":0,\"round\":40,\"rows_per_s\":100.0,"
            "\"test_accuracy\":0.75,\"version\":39,\"wall\":1.25}");
  auto q = ParseProgressLine(FormatProgressLine(p));
  ASSERT_TRUE(q);
  EXPECT_EQ(q->rank, 0);
  EXPECT_EQ(q->round, 40);
  EXPECT_EQ(q->version, 39);
  EXPECT_EQ(q->loss, 0.5);
  EXPECT_EQ(q->wall, 1.25);
  EXPECT_EQ(q->rows_per_s, 100);
  EXPECT_EQ(q->test_accuracy, 0.75);
  EXPECT_FALSE(q->staleness_mean);
  EXPECT_FALSE(q->updates);
  EXPECT_FALSE(q->final);
}

TEST(NodeLinesTest, FederatedProgressRoundTrips) {
  ProgressLine p;
  p.rank = 2;
  p.round = 7;
  p.version = 12;
  p.staleness_mean = 3.5;
  p.updates = 9;
  p.refused = 1;
  p.final = true;
  auto q = ParseProgressLine(FormatProgressLine(p));
  ASSERT_TRUE(q);
  EXPECT_EQ(q->staleness_mean, 3.5);
  EXPECT_EQ(q->updates, 9);
  EXPECT_EQ(q->refused, 1);
  EXPECT_TRUE(q->final);
  EXPECT_FALSE(q->loss);
}

TEST(NodeLinesTest, BadProgressLinesAreRefusedOrTolerated) {
  EXPECT_FALSE(ParseProgressLine("PHX_PROGRESS {not json"));
  EXPECT_FALSE(ParseProgressLine("PHX_PROGRESS [1,2]"));
  EXPECT_FALSE(ParseProgressLine("PHX_RESULT {\"rank\":0}"));
  EXPECT_FALSE(ParseProgressLine("  PHX_PROGRESS {}"));
  // A field of the wrong type reads as absent, never throws.
  auto q = ParseProgressLine("PHX_PROGRESS {\"round\":\"x\",\"loss\":\"y\"}");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->round, 0);
  EXPECT_FALSE(q->loss);
}

TEST(NodeLinesTest, ResultAndRestoredRoundTrip) {
  EXPECT_EQ(FormatResultLine({0, 0.8455}),
            "PHX_RESULT {\"final_test_accuracy\":0.8455,\"rank\":0}");
  auto r = ParseResultLine(FormatResultLine({3, 0.5}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rank, 3);
  EXPECT_EQ(r->final_test_accuracy, 0.5);
  auto s = ParseRestoredLine(FormatRestoredLine({1, 120, 7}));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->rank, 1);
  EXPECT_EQ(s->restored_round, 120);
  EXPECT_EQ(s->updates_lost, 7);
  EXPECT_FALSE(ParseRestoredLine("PHX_RESTORED nope"));
}

TEST(NodeLinesTest, QuorumRoundTripsAndRefusesBadEvents) {
  QuorumLine q;
  q.server_rank = 0;
  q.table = 1;
  q.round = 42;
  q.worker = 7;
  q.worker_rank = 3;
  q.excluded = true;
  q.missed = 2;
  q.quorum = 3;
  auto p = ParseQuorumLine(FormatQuorumLine(q));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->table, 1);
  EXPECT_EQ(p->round, 42);
  EXPECT_EQ(p->worker, 7);
  EXPECT_EQ(p->worker_rank, 3);
  EXPECT_TRUE(p->excluded);
  EXPECT_EQ(p->missed, 2);
  EXPECT_EQ(p->quorum, 3);
  q.excluded = false;
  EXPECT_NE(FormatQuorumLine(q).find("\"rejoined\""), std::string::npos);
  EXPECT_FALSE(ParseQuorumLine("PHX_QUORUM {\"worker\":1,\"event\":\"left\"}"));
  EXPECT_FALSE(ParseQuorumLine("PHX_QUORUM {\"event\":\"excluded\"}"));  // no worker
}

TEST(NodeLinesTest, SnapshotsLineRoundTripsAndComesFromStatus) {
  SnapshotsLine in;
  in.rank = 1;
  in.pid = 4242;
  in.snapshots = 3;
  in.snapshot_failures = 2;
  in.last_snapshot_round = 60;
  auto out = ParseSnapshotsLine(FormatSnapshotsLine(in));
  ASSERT_TRUE(out);
  EXPECT_EQ(out->rank, 1);
  EXPECT_EQ(out->pid, 4242);
  EXPECT_EQ(out->snapshots, 3);
  EXPECT_EQ(out->snapshot_failures, 2);
  EXPECT_EQ(out->last_snapshot_round, 60);
  EXPECT_FALSE(ParseSnapshotsLine("PHX_SNAPSHOTS {\"rank\":1}"));  // no failure count
  EXPECT_FALSE(ParseSnapshotsLine("PHX_SNAPSHOTS [1]"));
  auto st = SnapshotsFromStatus(
      R"({"role":"server","rank":0,"pid":7,"snapshots":5,"snapshot_failures":0,)"
      R"("last_snapshot_round":100,"tables":[]})");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->pid, 7);
  EXPECT_EQ(st->snapshots, 5);
  EXPECT_EQ(st->last_snapshot_round, 100);
  EXPECT_FALSE(SnapshotsFromStatus(R"({"role":"worker","snapshot_failures":0})"));
  EXPECT_FALSE(SnapshotsFromStatus("not json"));
}

TEST(NodeLinesTest, LastLineWithPrefixScansText) {
  std::string text = "hello\nPHX_RESULT {\"rank\":0}\nx PHX_RESULT no\nPHX_RESULT {\"rank\":1}";
  auto l = LastLineWithPrefix(text, kResultLinePrefix);
  ASSERT_TRUE(l);
  EXPECT_EQ(*l, "PHX_RESULT {\"rank\":1}");
  EXPECT_FALSE(LastLineWithPrefix("nothing\nhere\n", kResultLinePrefix));
}

}  // namespace
}  // namespace phalanx
