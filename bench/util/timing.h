#pragma once
// Timing helpers shared by the benches: wall-clock seconds, a sample set with
// medians and quantiles, and best-of-N timing. Not thread-safe; one owner.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

namespace phalanx::bench {

using Clock = std::chrono::steady_clock;

inline double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Per-op times in seconds.
struct Samples {
  std::vector<double> seconds;
  void Add(double s) { seconds.push_back(s); }
  // The q-quantile (nearest rank), NaN when empty.
  double Quantile(double q) const {
    if (seconds.empty()) return NAN;
    std::vector<double> v = seconds;
    size_t k = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
    std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
    return v[k];
  }
  double Median() const { return Quantile(0.5); }
};

// Best wall time of `reps` calls of fn, in seconds.
template <typename Fn>
double TimeBest(int reps, Fn&& fn) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    auto t0 = Clock::now();
    fn();
    best = std::min(best, Seconds(t0, Clock::now()));
  }
  return best;
}

}  // namespace phalanx::bench
