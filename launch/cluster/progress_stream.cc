#include "launch/cluster/progress_stream.h"

#include <fmt/format.h>
#include <unistd.h>

#include "common/node_lines.h"

namespace phalanx::launch {

void ProgressStream::Consume(std::string_view line) {
  if (auto q = ParseQuorumLine(line)) {
    return ConsumeQuorum(q->table, q->round, q->worker, q->worker_rank, q->excluded);
  }
  if (auto result = ParseResultLine(line)) {
    final_accuracy_ = result->final_test_accuracy;
    return;
  }
  auto p = ParseProgressLine(line);
  if (!p) return;
  int round = static_cast<int>(p->round);
  RoundRow& r = rows_[round];
  r.round = round;
  r.loss_sum += p->loss.value_or(0.0);
  r.loss_n++;
  if (p->rank == 0) {
    r.wall = p->wall.value_or(0.0);
    r.rows_per_s = p->rows_per_s.value_or(0.0);
    if (p->test_accuracy) r.accuracy = *p->test_accuracy;
    r.staleness = p->staleness_mean.value_or(-1.0);
  }
  if (round >= last_round_) {
    last_round_ = round;
    last_loss_ = r.loss_sum / r.loss_n;
  }
}

void ProgressStream::ConsumeQuorum(int64_t table, int64_t round, int worker, int worker_rank,
                                   bool excluded) {
  if (!quorum_seen_.insert({table, worker, round, excluded}).second) return;
  if (excluded) {
    exclusions_++;
    exclusions_by_worker_[worker_rank]++;
  } else {
    rejoins_++;
  }
  auto& now = quorum_now_[{table, worker}];
  if (round >= std::get<0>(now)) now = {round, excluded, worker_rank};
}

int ProgressStream::out_of_quorum() const {
  std::set<int> out;
  for (const auto& [key, change] : quorum_now_) {
    if (std::get<1>(change)) out.insert(key.second);
  }
  return static_cast<int>(out.size());
}

void ProgressStream::MaybePrint(std::FILE* out, int total_rounds,
                                std::chrono::steady_clock::time_point start) {
  using Clock = std::chrono::steady_clock;
  if (!tty_known_) {
    tty_ = isatty(fileno(out));
    tty_known_ = true;
  }
  if (last_print_ != Clock::time_point{} &&
      Clock::now() - last_print_ <= std::chrono::milliseconds(tty_ ? 250 : 5000)) {
    return;
  }
  double acc = -1;
  for (auto it = rows_.rbegin(); it != rows_.rend(); ++it) {
    if (it->second.accuracy >= 0) {
      acc = it->second.accuracy;
      break;
    }
  }
  double el = std::chrono::duration<double>(Clock::now() - start).count();
  double rps = rows_.empty() ? 0 : rows_.rbegin()->second.rows_per_s;
  const std::string quorum =
      exclusions_ > 0 ? fmt::format("  quorum -{} ({} excluded)", out_of_quorum(), exclusions_)
                      : std::string();
  std::fprintf(out, "%sround %5d/%d  loss %.4f  test acc %s  rows/s %.3g  %.1fs%s%s%s",
               tty_ ? "\r" : "", last_round_, total_rounds, last_loss_,
               acc >= 0 ? fmt::format("{:.4f}", acc).c_str() : "  -   ", rps, el, quorum.c_str(),
               notes_.c_str(),
               tty_ ? "   " : "\n");
  std::fflush(out);
  last_print_ = Clock::now();
}

void ProgressStream::Finish(std::FILE* out) const {
  if (tty_known_ && tty_) std::fprintf(out, "\n");
}

}  // namespace phalanx::launch
