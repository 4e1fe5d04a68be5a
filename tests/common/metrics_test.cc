#include "common/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <thread>
#include <vector>

namespace phalanx {
namespace {

TEST(MetricsTest, RendersSmallRegistryExactly) {
  MetricsRegistry registry;
  registry.GetCounter("phx_pushes_total", "Pushes received.", FormatLabels({{"table", "0"}}))
      .Increment(3);
  registry
      .GetCounter("phx_pushes_total", "ignored: first help wins", FormatLabels({{"table", "1"}}))
      .Increment();
  registry.GetGauge("phx_live_workers", "Live workers.\nSecond line with \\.").Set(2.5);
  Histogram& h = registry.GetHistogram("phx_round_seconds", "Round time.", {0.1, 1});
  h.Observe(0.05);
  h.Observe(0.1);  // on the edge: belongs to le="0.1"
  h.Observe(0.5);
  h.Observe(7);

  EXPECT_EQ(registry.RenderPrometheus(),
            "# HELP phx_live_workers Live workers.\\nSecond line with \\\\.\n"
            "# TYPE phx_live_workers gauge\n"
            "phx_live_workers 2.5\n"
            "# HELP phx_pushes_total Pushes received.\n"
            "# TYPE phx_pushes_total counter\n"
            "phx_pushes_total{table=\"0\"} 3\n"
            "phx_pushes_total{table=\"1\"} 1\n"
            "# HELP phx_round_seconds Round time.\n"
            "# TYPE phx_round_seconds histogram\n"
            "phx_round_seconds_bucket{le=\"0.1\"} 2\n"
            "phx_round_seconds_bucket{le=\"1\"} 3\n"
            "phx_round_seconds_bucket{le=\"+Inf\"} 4\n"
            "phx_round_seconds_sum 7.65\n"
            "phx_round_seconds_count 4\n");
}

TEST(MetricsTest, HistogramWithLabelsAddsLeLast) {
  MetricsRegistry registry;
  registry.GetHistogram("lat", "h", {1}, FormatLabels({{"op", "pull"}})).Observe(2);
  EXPECT_EQ(registry.RenderPrometheus(),
            "# HELP lat h\n"
            "# TYPE lat histogram\n"
            "lat_bucket{op=\"pull\",le=\"1\"} 0\n"
            "lat_bucket{op=\"pull\",le=\"+Inf\"} 1\n"
            "lat_sum{op=\"pull\"} 2\n"
            "lat_count{op=\"pull\"} 1\n");
}

TEST(MetricsTest, GetOrCreateReturnsSameObject) {
  MetricsRegistry registry;
  Counter& a = registry.GetCounter("c", "h", "x=\"1\"");
  Counter& b = registry.GetCounter("c", "h", "x=\"1\"");
  Counter& other = registry.GetCounter("c", "h", "x=\"2\"");
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &other);
  EXPECT_EQ(&registry.GetGauge("g", "h"), &registry.GetGauge("g", "h"));
  EXPECT_EQ(&registry.GetHistogram("h", "h"), &registry.GetHistogram("h", "h"));
}

TEST(MetricsTest, TypeConflictReturnsUnexportedMetric) {
  MetricsRegistry registry;
  registry.GetCounter("m", "counter").Increment(5);
  Gauge& g = registry.GetGauge("m", "gauge");  // logged, not exported
  g.Set(1);
  EXPECT_EQ(registry.RenderPrometheus(), "# HELP m counter\n# TYPE m counter\nm 5\n");
}

TEST(MetricsTest, InvalidNameCharactersAreReplaced) {
  MetricsRegistry registry;
  registry.GetCounter("9bad-name.x", "h").Increment();
  EXPECT_EQ(registry.RenderPrometheus(),
            "# HELP _bad_name_x h\n# TYPE _bad_name_x counter\n_bad_name_x 1\n");
}

TEST(MetricsTest, FormatLabelsEscapes) {
  EXPECT_EQ(FormatLabels({{"path", "a\\b\"c\nd"}, {"bad-name", "v"}}),
            "path=\"a\\\\b\\\"c\\nd\",bad_name=\"v\"");
  EXPECT_EQ(FormatLabels({}), "");
}

TEST(MetricsTest, FormatsValuesPrometheusCanParse) {
  EXPECT_EQ(FormatPrometheusValue(0), "0");
  EXPECT_EQ(FormatPrometheusValue(42), "42");
  EXPECT_EQ(FormatPrometheusValue(0.25), "0.25");
  EXPECT_EQ(FormatPrometheusValue(-1.5), "-1.5");
  EXPECT_EQ(FormatPrometheusValue(1e-5), "1e-05");
  EXPECT_EQ(FormatPrometheusValue(1e300), "1e+300");
  EXPECT_EQ(FormatPrometheusValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatPrometheusValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatPrometheusValue(std::nan("")), "NaN");
  // Round-trips exactly.
  EXPECT_EQ(std::stod(FormatPrometheusValue(0.1 + 0.2)), 0.1 + 0.2);
}

TEST(MetricsTest, HistogramBucketEdges) {
  Histogram h({5, 1, 1, 2, std::numeric_limits<double>::infinity(), std::nan("")});
  ASSERT_EQ(h.upper_bounds(), (std::vector<double>{1, 2, 5}));  // sorted, deduplicated
  for (double v : {-3.0, 1.0, std::nextafter(1.0, 2.0), 2.0, 5.0, 5.0001, 1e9,
                   std::numeric_limits<double>::infinity()}) {
    h.Observe(v);
  }
  h.Observe(std::nan(""));
  // le=1: -3, 1; le=2: 1+eps, 2; le=5: 5; +Inf: 5.0001, 1e9, inf, NaN.
  EXPECT_EQ(h.bucket_counts(), (std::vector<uint64_t>{2, 2, 1, 4}));
  EXPECT_EQ(h.count(), 9u);
}

TEST(MetricsTest, EmptyBoundsHistogramHasOnlyInf) {
  MetricsRegistry registry;
  registry.GetHistogram("e", "h", {}).Observe(1);
  EXPECT_EQ(registry.RenderPrometheus(),
            "# HELP e h\n# TYPE e histogram\ne_bucket{le=\"+Inf\"} 1\ne_sum 1\ne_count 1\n");
}

TEST(MetricsTest, DefaultLatencyBucketsAscendFrom10usTo10s) {
  std::vector<double> b = DefaultLatencyBuckets();
  ASSERT_FALSE(b.empty());
  EXPECT_DOUBLE_EQ(b.front(), 1e-5);
  EXPECT_DOUBLE_EQ(b.back(), 10);
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
}

TEST(MetricsTest, ConcurrentUpdatesAreNotLost) {
  MetricsRegistry registry;
  constexpr int kThreads = 8;
  constexpr int kIters = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&registry, t] {
      // Each thread also races on get-or-create.
      Counter& c = registry.GetCounter("ops_total", "ops");
      Gauge& g = registry.GetGauge("level", "level");
      Histogram& h = registry.GetHistogram("size", "size", {10});
      for (int i = 0; i < kIters; ++i) {
        c.Increment();
        g.Add(1);
        h.Observe(i % 2 == 0 ? 1.0 : 100.0);
        if (i % 1000 == 0) (void)registry.RenderPrometheus();  // readers race too
      }
      (void)t;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(registry.GetCounter("ops_total", "ops").value(), uint64_t{kThreads} * kIters);
  EXPECT_DOUBLE_EQ(registry.GetGauge("level", "level").value(), double{kThreads} * kIters);
  Histogram& h = registry.GetHistogram("size", "size", {10});
  EXPECT_EQ(h.count(), uint64_t{kThreads} * kIters);
  EXPECT_EQ(h.bucket_counts(),
            (std::vector<uint64_t>{kThreads * kIters / 2, kThreads * kIters / 2}));
  EXPECT_DOUBLE_EQ(h.sum(), kThreads * (kIters / 2) * 101.0);
}

TEST(MetricsTest, GlobalIsASingleton) {
  EXPECT_EQ(&MetricsRegistry::Global(), &MetricsRegistry::Global());
}

}  // namespace
}  // namespace phalanx
