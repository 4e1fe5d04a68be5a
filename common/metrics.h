#pragma once
// Process-wide metrics: counters, gauges and histograms, rendered in the
// Prometheus text exposition format (version 0.0.4).
// Thread-safety: every method is safe from any thread; updates are lock-free
// (relaxed atomics) so hot paths can count freely. Only get-or-create and
// rendering take the registry mutex. Metric objects live as long as the
// registry that made them; references stay valid.

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/mutex.h"

namespace phalanx {

// Monotonic count. Lock-free; not copyable.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  void Increment(uint64_t by = 1) { value_.fetch_add(by, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down. Lock-free; not copyable.
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Cumulative-bucket histogram (upper bounds ascending; +Inf implied).
// A value v lands in the first bucket whose bound b satisfies v <= b
// (Prometheus `le` semantics); NaN lands in +Inf. Observe is lock-free.
// Snapshots taken while other threads observe may be off by the in-flight
// observations, but the rendered _count always equals the +Inf bucket.
class Histogram {
 public:
  // Bounds are sorted and de-duplicated; NaN and +Inf bounds are dropped
  // (+Inf is always implied).
  explicit Histogram(std::vector<double> upper_bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void Observe(double v);
  const std::vector<double>& upper_bounds() const { return bounds_; }
  // Per-bucket counts (not cumulative), size upper_bounds().size() + 1; the
  // last one is +Inf.
  std::vector<uint64_t> bucket_counts() const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0.0};
};

// Latency buckets in seconds, 10 us .. 10 s (1-2.5-5 steps).
std::vector<double> DefaultLatencyBuckets();

// Renders a label set for the `labels` argument below, escaping values as the
// exposition format requires (backslash, double quote, newline) and replacing
// characters not allowed in label names by '_'. Pairs keep their order, e.g.
// FormatLabels({{"table", "0"}, {"op", "pull"}}) == R"(table="0",op="pull")".
std::string FormatLabels(
    std::initializer_list<std::pair<std::string_view, std::string_view>> labels);

// Formats a sample value so that Prometheus parses it: shortest round-trip
// decimal, "+Inf", "-Inf" or "NaN".
std::string FormatPrometheusValue(double v);

// Owns metric families keyed by name; each family holds one series per label
// set. Thread-safety: all methods may be called concurrently.
class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Returns the metric with this name and label set, creating it on first
  // use. Names follow Prometheus rules ([a-zA-Z_:][a-zA-Z0-9_:]*); other
  // characters are replaced by '_'. `labels` is an optional pre-rendered label
  // set (use FormatLabels) making a distinct series. The first call's `help`
  // (and, per series, histogram bounds) wins. Asking for a name already
  // registered with another type is a programmer error: it is logged and a
  // working but unexported metric is returned, so the exposition stays valid
  // and the caller never crashes.
  Counter& GetCounter(const std::string& name, const std::string& help,
                      const std::string& labels = "");
  Gauge& GetGauge(const std::string& name, const std::string& help, const std::string& labels = "");
  Histogram& GetHistogram(const std::string& name, const std::string& help,
                          const std::vector<double>& upper_bounds = DefaultLatencyBuckets(),
                          const std::string& labels = "");

  // Prometheus text format, one HELP/TYPE block per metric name; families in
  // name order, series in label order.
  std::string RenderPrometheus() const;

  // The process-wide registry (never destroyed, so threads may still count
  // during static destruction).
  static MetricsRegistry& Global();

 private:
  struct Family;
  Family* GetFamily(const std::string& name, const std::string& help, int type) REQUIRES(mu_);

  mutable Mutex mu_;
  std::map<std::string, std::unique_ptr<Family>> families_ GUARDED_BY(mu_);
  // Metrics handed out for type conflicts; kept alive, never rendered.
  std::vector<std::unique_ptr<Family>> orphans_ GUARDED_BY(mu_);
};

}  // namespace phalanx
