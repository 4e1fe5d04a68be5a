#pragma once
// ProgressStream: what the workers' PHX_PROGRESS and PHX_RESULT lines
// (common/node_lines.h) say about a run: a row per reported round (the mean
// loss over the workers that reported it; wall time, throughput, accuracy and
// staleness from rank 0), the highest round, the final accuracy; and the
// progress line the launcher prints from them.
//
// Thread-safety: the launcher's thread only.

#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>

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

  // Prints "round R/N  loss L  test acc A  rows/s X  Ts" on `out`: in place
  // every 250 ms on a terminal, a line every 5 s otherwise.
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

 private:
  std::map<int, RoundRow> rows_;
  double final_accuracy_ = -1;
  int last_round_ = 0;
  double last_loss_ = 0;
  std::string notes_;
  bool tty_ = false;
  bool tty_known_ = false;
  std::chrono::steady_clock::time_point last_print_{};
};

}  // namespace phalanx::launch
