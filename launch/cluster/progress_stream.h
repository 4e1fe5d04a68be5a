#pragma once
// ProgressStream: what the workers' PHX_PROGRESS and PHX_RESULT lines
// (common/node_lines.h) say about a run: a row per reported round (the mean
// loss over the workers that reported it; wall time, throughput, accuracy and
// staleness from rank 0), the highest round, the final accuracy; the servers'
// PHX_QUORUM lines (workers leaving and rejoining the round quorum, each
// change counted once however many times it is read); and the progress line
// the launcher prints from them.
//
// Thread-safety: the launcher's thread only.

#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <tuple>

namespace phalanx::launch {

// One round of metrics.csv.
struct RoundRow {
  int round = 0;
  double wall = 0;
  double loss_sum = 0;
  int loss_n = 0;
  double accuracy = -1;
  double rows_per_s = 0;
  double staleness = -1;  // federated mode: mean staleness of worker 0's clients' updates
  double loss() const { return loss_n ? loss_sum / loss_n : 0; }
};

class ProgressStream {
 public:
  // Takes one stdout line of a node; lines of other kinds are ignored.
  void Consume(std::string_view line);

  // Prints "round R/N  loss L  test acc A  rows/s X  Ts" on `out` (then
  // "  quorum -K (E excluded)" once a worker left a quorum: K workers out of
  // it now, E exclusions in all): in place every 250 ms on a terminal, a line
  // every 5 s otherwise.
  void MaybePrint(std::FILE* out, int total_rounds, std::chrono::steady_clock::time_point start);
  // Appended to the progress line ("  restarts 1/2  snapshot failures 3"),
  // set by the launcher from what it knows besides the workers' lines.
  void set_notes(std::string notes) { notes_ = std::move(notes); }
  // Ends the in-place line on a terminal.
  void Finish(std::FILE* out) const;

  const std::map<int, RoundRow>& rows() const { return rows_; }  // by round
  int last_round() const { return last_round_; }
  double last_loss() const { return last_loss_; }
  double final_accuracy() const { return final_accuracy_; }  // -1 until a PHX_RESULT line
  // Quorum changes (every table's; a sparse model's worker that stops
  // pushing leaves both tables' quorums): exclusions and rejoins in all, by
  // worker rank, and the workers out of some table's quorum now.
  int quorum_exclusions() const { return exclusions_; }
  int quorum_rejoins() const { return rejoins_; }
  const std::map<int, int>& quorum_exclusions_by_worker() const { return exclusions_by_worker_; }
  int out_of_quorum() const;

 private:
  void ConsumeQuorum(int64_t table, int64_t round, int worker, int worker_rank, bool excluded);

  std::map<int, RoundRow> rows_;
  std::set<std::tuple<int64_t, int, int64_t, bool>> quorum_seen_;  // (table, worker, round, excl)
  // Latest change per (table, worker id): (round, excluded, worker rank).
  std::map<std::pair<int64_t, int>, std::tuple<int64_t, bool, int>> quorum_now_;
  int exclusions_ = 0;
  int rejoins_ = 0;
  std::map<int, int> exclusions_by_worker_;
  double final_accuracy_ = -1;
  int last_round_ = 0;
  double last_loss_ = 0;
  std::string notes_;
  bool tty_ = false;
  bool tty_known_ = false;
  std::chrono::steady_clock::time_point last_print_{};
};

}  // namespace phalanx::launch
