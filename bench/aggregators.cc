// Aggregation rules, direct form vs two-phase Gram form, against the cost of
// reading the n input vectors once (a plain summation over the same memory,
// measured in the same run: ratios, not absolute times, on a shared machine).
//
//   bench_aggregators                       n in {7,15,31}, d in {1e5,1e6}
//   bench_aggregators --big                 adds d = 1e7 (needs ~30 GB for n=31)
//   bench_aggregators --benchmark_filter=gram/flag/15/1000000
//
// Counters: x_read = time / read baseline of the same (n, d) and precision
// (float64 for the direct form, float32 for the Gram form, which is how
// shards store gradients). The Gram form is timed as a server round runs it:
// partial Gram of the float32 slice (+ extra columns, generated once and
// cached: flag's seeded subspace and the CC centre do not change within a
// round), the p-space plan, and the plan applied to the slice.

#include <benchmark/benchmark.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_reduce.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "aggregators/aggregator.h"
#include "aggregators/gram.h"
#include "ps/server.h"

namespace phalanx::aggregators {
namespace {

struct Rule {
  std::string name;
  std::map<std::string, double> params;
};

const std::vector<Rule>& Rules() {
  static const std::vector<Rule> kRules = {{"mean", {}},
                                           {"median", {}},
                                           {"trimmed-mean", {}},
                                           {"meamed", {}},
                                           {"krum", {}},
                                           {"multi-krum", {}},
                                           {"geometric-median", {}},
                                           {"centered-clipping", {{"tau", 10}, {"L", 3}}},
                                           {"mda", {}},
                                           {"bulyan", {}},
                                           {"nna", {}},
                                           {"monna", {}},
                                           {"flag", {}},
                                           {"nnm+krum", {}},
                                           {"nnm+trimmed-mean", {}}};
  return kRules;
}

struct Data {
  Eigen::MatrixXf f32;
  Eigen::MatrixXd f64;
  double read_f32 = 0;  // seconds
  double read_f64 = 0;
};

template <typename M>
double ParallelSum(const M& m) {
  const Eigen::Index size = m.size();
  const auto* p = m.data();
  return tbb::parallel_reduce(
      tbb::blocked_range<Eigen::Index>(0, size, 1 << 16), 0.0,
      [&](const tbb::blocked_range<Eigen::Index>& r, double acc) {
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        Eigen::Index i = r.begin();
        for (; i + 4 <= r.end(); i += 4) {
          s0 += p[i];
          s1 += p[i + 1];
          s2 += p[i + 2];
          s3 += p[i + 3];
        }
        for (; i < r.end(); ++i) s0 += p[i];
        return acc + (s0 + s1) + (s2 + s3);
      },
      std::plus<double>());
}

template <typename M>
double TimeRead(const M& m) {
  // Best of at least 15 reads and of at least 1 s of reading: on a shared
  // machine a short series can miss every quiet moment, and this time is the
  // denominator of every x_read ratio of its (n, d).
  double best = 1e30, spent = 0;
  for (int rep = 0; rep < 400 && (rep < 15 || spent < 1.0); ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(ParallelSum(m));
    const auto t1 = std::chrono::steady_clock::now();
    const double t = std::chrono::duration<double>(t1 - t0).count();
    best = std::min(best, t);
    spent += t;
  }
  return best;
}

// One data set per (n, d), built lazily and kept for all rules.
Data& GetData(int n, int64_t d) {
  static std::map<std::pair<int, int64_t>, std::unique_ptr<Data>> cache;
  if (cache.find({n, d}) == cache.end()) {
    // Drop other sizes first: d = 1e7 with n = 31 is 3.7 GB per copy.
    cache.clear();
    auto data = std::make_unique<Data>();
    std::mt19937_64 rng(n * 7919 + d);
    std::normal_distribution<float> normal;
    data->f32.resize(d, n);
    Eigen::VectorXf centre(d);
    for (auto& v : centre) v = normal(rng);
    for (int i = 0; i < n; ++i) {
      for (int64_t j = 0; j < d; ++j) data->f32(j, i) = centre[j] + normal(rng);
    }
    const int f = (n - 3) / 4;
    for (int i = 0; i < f; ++i) data->f32.col(i) *= -10.0f;  // sign-flip-like outliers
    data->f64 = data->f32.cast<double>();
    data->read_f32 = TimeRead(data->f32);
    data->read_f64 = TimeRead(data->f64);
    cache[{n, d}] = std::move(data);
  }
  return *cache[{n, d}];
}

std::unique_ptr<Aggregator> Make(const Rule& rule, int n) {
  AggregatorOptions o{rule.name, (n - 3) / 4, rule.params, 1};
  auto r = CreateAggregator(o);
  return r.ok() ? std::move(r).value() : nullptr;
}

void BM_Read(benchmark::State& state, int n, int64_t d, bool f32) {
  Data& data = GetData(n, d);
  for (auto _ : state) {
    benchmark::DoNotOptimize(f32 ? ParallelSum(data.f32) : ParallelSum(data.f64));
  }
  const double bytes = static_cast<double>(d) * n * (f32 ? 4 : 8);
  state.SetBytesProcessed(static_cast<int64_t>(bytes * state.iterations()));
  state.counters["read_ms"] = (f32 ? data.read_f32 : data.read_f64) * 1e3;
}

void BM_PartialGram(benchmark::State& state, int n, int64_t d) {
  Data& data = GetData(n, d);
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) benchmark::DoNotOptimize(PartialGram(data.f32));
  const double per = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
                     static_cast<double>(state.iterations());
  state.counters["x_read"] = per / data.read_f32;
}

// The same, on one thread: what the TBB chunking over both cores gains.
void BM_PartialGramSerial(benchmark::State& state, int n, int64_t d) {
  Data& data = GetData(n, d);
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) benchmark::DoNotOptimize(PartialGram(data.f32, /*parallel=*/false));
  const double per = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
                     static_cast<double>(state.iterations());
  state.counters["x_read"] = per / data.read_f32;
}

void BM_Direct(benchmark::State& state, const Rule& rule, int n, int64_t d) {
  Data& data = GetData(n, d);
  auto agg = Make(rule, n);
  if (!agg) {
    state.SkipWithError("invalid rule");
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    auto out = agg->Aggregate(data.f64);
    if (!out.ok()) {
      state.SkipWithError(out.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(out);
  }
  const double per = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
                     static_cast<double>(std::max<int64_t>(1, state.iterations()));
  state.counters["x_read"] = per / data.read_f64;
}

void BM_GramForm(benchmark::State& state, const Rule& rule, int n, int64_t d) {
  Data& data = GetData(n, d);
  auto agg = Make(rule, n);
  if (!agg) {
    state.SkipWithError("invalid rule");
    return;
  }
  auto extras = agg->ExtraColumns(n, 0, d, Eigen::VectorXd());
  if (!extras.ok()) {
    state.SkipWithError(extras.status().ToString().c_str());
    return;
  }
  const bool cw = agg->coordinate_wise();
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    if (cw) {
      // Coordinate-wise rules need no coordination: the shard runs the rule
      // on its slice (here: the float slice widened to float64).
      auto out = agg->Aggregate(data.f32.cast<double>());
      benchmark::DoNotOptimize(out);
      continue;
    }
    auto gram = PartialGram(data.f32, *extras);
    auto plan = agg->PlanFromGram(*gram, n);
    if (!plan.ok()) {
      state.SkipWithError(plan.status().ToString().c_str());
      break;
    }
    auto out = ApplyGramPlan(*plan, data.f32, *extras);
    benchmark::DoNotOptimize(out);
  }
  const double per = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
                     static_cast<double>(std::max<int64_t>(1, state.iterations()));
  state.counters["x_read"] = per / data.read_f32;
}

void RegisterAll(bool big) {
  std::vector<int64_t> sizes = {100000, 1000000};
  if (big) sizes.push_back(10000000);
  for (int64_t d : sizes) {
    for (int n : {7, 15, 31}) {
      const std::string suffix = "/" + std::to_string(n) + "/" + std::to_string(d);
      benchmark::RegisterBenchmark(("read_f64" + suffix).c_str(), BM_Read, n, d, false)
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("read_f32" + suffix).c_str(), BM_Read, n, d, true)
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("partial_gram_f32" + suffix).c_str(), BM_PartialGram, n, d)
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("partial_gram_serial_f32" + suffix).c_str(),
                                   BM_PartialGramSerial, n, d)
          ->Unit(benchmark::kMillisecond);
      for (const Rule& rule : Rules()) {
        benchmark::RegisterBenchmark(("direct/" + rule.name + suffix).c_str(), BM_Direct, rule, n,
                                     d)
            ->Unit(benchmark::kMillisecond)
            ->MinTime(0.2);
        benchmark::RegisterBenchmark(("gram/" + rule.name + suffix).c_str(), BM_GramForm, rule, n,
                                     d)
            ->Unit(benchmark::kMillisecond)
            ->MinTime(0.2);
      }
    }
  }
}

}  // namespace
}  // namespace phalanx::aggregators

int main(int argc, char** argv) {
  bool big = false;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--big") == 0) {
      big = true;
    } else {
      args.push_back(argv[i]);
    }
  }
  int count = static_cast<int>(args.size());
  benchmark::Initialize(&count, args.data());
  // The header says which machine and kernels the figures are for.
  const phalanx::BuildInfo& info = phalanx::ps::ProcessBuildInfo();
  benchmark::AddCustomContext("cpu_model", info.cpu_model);
  benchmark::AddCustomContext("x86_level", info.x86_level);
  for (const auto& k : info.kernels) benchmark::AddCustomContext(k.kernel + "_kernel", k.variant);
  phalanx::aggregators::RegisterAll(big);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
