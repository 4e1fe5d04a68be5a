#pragma once
// The lines a node prints on stdout for whoever started it (the launcher,
// tests, benches): a prefix, one space, then a payload. Every writer and every
// reader goes through these functions, so each prefix and each field name is
// spelled once:
//
//   PHX_ENDPOINT tcp://host:port   scheduler, once bound
//   PHX_HTTP port                  scheduler, when /metrics and /status are on
//   PHX_PROGRESS {json}            worker, every train.log_every rounds
//   PHX_RESULT {json}              the evaluating worker, at the end
//   PHX_RESTORED {json}            a server started with --restore, at exit
//   PHX_QUORUM {json}              a server, when a worker leaves or rejoins a
//                                  synchronous round quorum it coordinated
//   PHX_SNAPSHOTS {json}           a server with checkpoint.dir, at exit
//
// Parse* take a whole line and return nullopt when it is not of their kind or
// its payload does not parse. Pure functions; safe from any thread.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace phalanx {

inline constexpr std::string_view kEndpointLinePrefix = "PHX_ENDPOINT ";
inline constexpr std::string_view kHttpLinePrefix = "PHX_HTTP ";
inline constexpr std::string_view kProgressLinePrefix = "PHX_PROGRESS ";
inline constexpr std::string_view kResultLinePrefix = "PHX_RESULT ";
inline constexpr std::string_view kRestoredLinePrefix = "PHX_RESTORED ";
inline constexpr std::string_view kQuorumLinePrefix = "PHX_QUORUM ";
inline constexpr std::string_view kSnapshotsLinePrefix = "PHX_SNAPSHOTS ";

std::string FormatEndpointLine(std::string_view endpoint);
std::optional<std::string> ParseEndpointLine(std::string_view line);

std::string FormatHttpLine(int port);
std::optional<int> ParseHttpLine(std::string_view line);

// A worker's progress. Absent fields are left out of the JSON.
struct ProgressLine {
  int rank = -1;
  int64_t round = 0;           // synchronous/async: steps done; federated: server steps since start
  int64_t version = 0;         // dense table version the worker last read
  std::optional<double> loss;  // mean training loss since the previous line
  std::optional<double> wall;  // seconds since the worker started training
  std::optional<double> rows_per_s;      // rows moved per second since the previous line
  std::optional<double> test_accuracy;   // when this line evaluated
  std::optional<double> staleness_mean;  // federated: of this worker's accepted updates
  std::optional<int64_t> updates;        // federated: updates pushed so far
  std::optional<int64_t> refused;        // federated: updates the servers refused
  bool final = false;                    // federated: the last line
};
std::string FormatProgressLine(const ProgressLine& p);
std::optional<ProgressLine> ParseProgressLine(std::string_view line);

// The evaluating worker's final model accuracy.
struct ResultLine {
  int rank = -1;
  double final_test_accuracy = -1;
};
std::string FormatResultLine(const ResultLine& r);
std::optional<ResultLine> ParseResultLine(std::string_view line);

// What a replacement server's snapshot missed (from the server's /status).
struct RestoredLine {
  int rank = -1;
  int64_t restored_round = -1;  // round of the snapshot it loaded; -1 = none
  int64_t updates_lost = 0;     // rounds of table 0 between the snapshot and the cluster
};
std::string FormatRestoredLine(const RestoredLine& r);
std::optional<RestoredLine> ParseRestoredLine(std::string_view line);

// A worker left or rejoined a table's round quorum (ps::QuorumEvent), said by
// the server that decided it. (table, worker, round, excluded) names a change
// uniquely, so a reader that sees it twice counts it once.
struct QuorumLine {
  int server_rank = -1;
  int64_t table = 0;
  int64_t round = 0;
  int32_t worker = -1;  // node id
  int32_t worker_rank = -1;
  bool excluded = false;  // JSON "event": "excluded" | "rejoined"
  int32_t missed = 0;
  int32_t quorum = 0;
};
std::string FormatQuorumLine(const QuorumLine& q);
std::optional<QuorumLine> ParseQuorumLine(std::string_view line);

// One server process's snapshot record. The same fields are in its /status
// (the launcher reads them there while the job runs, and from this line once
// the process has exited).
struct SnapshotsLine {
  int rank = -1;
  int64_t pid = -1;                  // tells a replacement's record from its predecessor's
  int64_t snapshots = 0;             // files written
  int64_t snapshot_failures = 0;     // captures or writes that failed
  int64_t last_snapshot_round = -1;  // round of the newest file written; -1 = none
};
std::string FormatSnapshotsLine(const SnapshotsLine& s);
std::optional<SnapshotsLine> ParseSnapshotsLine(std::string_view line);
// The record from a server's /status JSON; nullopt when it is not a server's
// status or has no snapshot fields.
std::optional<SnapshotsLine> SnapshotsFromStatus(std::string_view status_json);

// The last line of `text` (a log, a process's output) that starts with
// `prefix`, without its newline.
std::optional<std::string_view> LastLineWithPrefix(std::string_view text, std::string_view prefix);

}  // namespace phalanx
