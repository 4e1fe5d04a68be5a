// bench_table: single-thread throughput of the embedding table against a
// naive std::unordered_map table and a plain row gather over a flat array of
// the same rows (the DRAM ceiling once a row's address is known), for
// uniform and Zipf(1.05) keys; plus memory per row. The flat array sits on
// 2 MiB pages, as the table's slabs do.
//
// Usage: bench_table [--rows=N] [--ops=N] [--batch=N] [--dim=N] [--reps=N]
// [--optimizer=sgd|momentum|adagrad|adam]
// (or env PHX_BENCH_ROWS, _OPS, _BATCH, _DIM, _REPS, _OPTIMIZER). Defaults:
// 10M rows x 16 floats, 10M ops per measurement, batches of 16384 keys, best
// of 3, SGD. PHX_KERNEL=scalar|avx2|avx512 forces the optimizer rows' variant
// (the header says which one ran).
// A quick run: bench_table --rows=1000000 --ops=2000000

#include "ps/table.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bench/util/flags.h"
#include "bench/util/huge_pages.h"
#include "bench/util/report.h"
#include "ps/server.h"

namespace {

using phalanx::ps::EmbeddingTable;
using phalanx::ps::TableOptions;

struct Config {
  size_t rows = 10'000'000;
  size_t ops = 10'000'000;
  size_t batch = 16384;
  size_t dim = 16;
  int reps = 3;
  std::string optimizer = "sgd";
};

// --name=N, else $PHX_BENCH_<NAME>, else def.
size_t Flag(int argc, char** argv, const char* name, size_t def) {
  if (auto v = phalanx::bench::FlagValue(argc, argv, name)) {
    return std::strtoull(v->c_str(), nullptr, 10);
  }
  return def;
}

// This thread's CPU time. Single-thread rates use it rather than wall time
// because the machine is shared: time spent descheduled is not ours.
double ThreadCpu() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

size_t RssBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long pages_total = 0, pages_rss = 0;
  if (std::fscanf(f, "%llu %llu", &pages_total, &pages_rss) != 2) pages_rss = 0;
  std::fclose(f);
  return pages_rss * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// Distinct, scattered keys: a bijective mixer of the row number.
uint64_t KeyOfRow(uint64_t r) {
  r += 0x9E3779B97F4A7C15ULL;
  r = (r ^ (r >> 30)) * 0xBF58476D1CE4E5B9ULL;
  r = (r ^ (r >> 27)) * 0x94D049BB133111EBULL;
  return r ^ (r >> 31);
}

// Zipf(s) over ranks [0, n) by rejection-inversion (Hoermann and Derflinger
// 1996, as in Apache Commons RNG): O(1) per sample, no n-sized table.
class ZipfSampler {
 public:
  ZipfSampler(size_t n, double s) : n_(static_cast<double>(n)), s_(s) {
    h_x1_ = HIntegral(1.5) - 1.0;
    h_n_ = HIntegral(n_ + 0.5);
    sv_ = 2.0 - HIntegralInverse(HIntegral(2.5) - H(2.0));
  }
  template <typename Rng>
  size_t operator()(Rng& rng) {
    std::uniform_real_distribution<double> uni(0.0, 1.0);
    for (;;) {
      const double u = h_n_ + uni(rng) * (h_x1_ - h_n_);
      const double x = HIntegralInverse(u);
      double k = std::floor(x + 0.5);
      k = std::clamp(k, 1.0, n_);
      if (k - x <= sv_ || u >= HIntegral(k + 0.5) - H(k)) return static_cast<size_t>(k) - 1;
    }
  }

 private:
  static double Helper1(double x) { return std::abs(x) > 1e-8 ? std::log1p(x) / x : 1.0; }
  static double Helper2(double x) { return std::abs(x) > 1e-8 ? std::expm1(x) / x : 1.0; }
  double H(double x) const { return std::exp(-s_ * std::log(x)); }
  double HIntegral(double x) const {
    const double lx = std::log(x);
    return Helper2((1.0 - s_) * lx) * lx;
  }
  double HIntegralInverse(double x) const {
    double t = x * (1.0 - s_);
    if (t < -1.0) t = -1.0;
    return std::exp(Helper1(t) * x);
  }
  double n_, s_, h_x1_, h_n_, sv_;
};

// The naive table: one heap vector per row.
using NaiveTable = std::unordered_map<uint64_t, std::vector<float>>;

struct Workload {
  const char* name;
  std::vector<uint32_t> rows;  // row of each op (position in the flat array)
  std::vector<uint64_t> keys;  // key of each op
};

// Runs fn(begin, count) over the op stream in batches; returns M ops/s of
// this thread's CPU time, or of wall time if `wall`.
template <typename Fn>
double Rate(const Workload& w, size_t batch, const Fn& fn, bool wall = false) {
  const double t0 = wall ? Now() : ThreadCpu();
  for (size_t b = 0; b < w.keys.size(); b += batch) fn(b, std::min(batch, w.keys.size() - b));
  const double t = (wall ? Now() : ThreadCpu()) - t0;
  return static_cast<double>(w.keys.size()) / t / 1e6;
}

// Flags over PHX_BENCH_<NAME>; false when a size is out of range.
bool ReadConfig(int argc, char** argv, Config* cfg) {
  cfg->rows = Flag(argc, argv, "rows", cfg->rows);
  cfg->ops = Flag(argc, argv, "ops", cfg->ops);
  cfg->batch = Flag(argc, argv, "batch", cfg->batch);
  cfg->dim = Flag(argc, argv, "dim", cfg->dim);
  cfg->reps = static_cast<int>(Flag(argc, argv, "reps", cfg->reps));
  if (auto v = phalanx::bench::FlagValue(argc, argv, "optimizer")) cfg->optimizer = *v;
  const std::string& o = cfg->optimizer;
  if (o != "sgd" && o != "momentum" && o != "adagrad" && o != "adam") return false;
  return !(cfg->rows == 0 || cfg->rows > UINT32_MAX || cfg->ops == 0 || cfg->batch == 0 ||
           cfg->dim == 0 || cfg->reps < 1);
}

// --optimizer: the table's; the baselines always do a plain SGD step.
phalanx::ps::OptimizerOptions OptimizerOf(const Config& cfg) {
  phalanx::ps::OptimizerOptions o;
  o.learning_rate = 0.01f;
  if (cfg.optimizer == "momentum") o.momentum = 0.9f;
  if (cfg.optimizer == "adagrad") o.kind = phalanx::ps::OptimizerKind::kAdagrad;
  if (cfg.optimizer == "adam") o.kind = phalanx::ps::OptimizerKind::kAdam;
  return o;
}

struct Workloads {
  Workload uniform{"uniform", {}, {}};
  Workload zipf{"zipf(1.05)", {}, {}};
  std::vector<uint64_t> all_keys;  // key of each row, in row order
};

Workloads MakeWorkloads(const Config& cfg) {
  std::mt19937_64 rng(1);
  // Rows are created in row order 0..rows-1, and a Zipf rank maps to a random
  // row, so hot keys are not neighbours in any of the three structures.
  std::vector<uint32_t> row_of_rank(cfg.rows);
  std::iota(row_of_rank.begin(), row_of_rank.end(), 0u);
  std::shuffle(row_of_rank.begin(), row_of_rank.end(), rng);
  Workloads wl;
  Workload& uniform = wl.uniform;
  Workload& zipf = wl.zipf;
  {
    std::uniform_int_distribution<uint32_t> uni(0, static_cast<uint32_t>(cfg.rows - 1));
    ZipfSampler zs(cfg.rows, 1.05);
    for (Workload* w : {&uniform, &zipf}) {
      w->rows.resize(cfg.ops);
      w->keys.resize(cfg.ops);
    }
    for (size_t i = 0; i < cfg.ops; ++i) {
      uniform.rows[i] = uni(rng);
      zipf.rows[i] = row_of_rank[zs(rng)];
    }
    for (Workload* w : {&uniform, &zipf}) {
      for (size_t i = 0; i < cfg.ops; ++i) w->keys[i] = KeyOfRow(w->rows[i]);
    }
  }
  wl.all_keys.resize(cfg.rows);
  for (size_t r = 0; r < cfg.rows; ++r) wl.all_keys[r] = KeyOfRow(r);
  return wl;
}

// Inserts every row of all_keys (ours' initial rows) into naive; returns M
// rows/s of thread CPU time.
double FillNaive(const EmbeddingTable& ours, const std::vector<uint64_t>& all_keys, size_t dim,
                 NaiveTable* naive) {
  const double t0 = ThreadCpu();
  naive->reserve(all_keys.size());
  for (uint64_t key : all_keys) {
    std::vector<float> row(dim);
    ours.InitialRow(key, row.data());
    naive->emplace(key, std::move(row));
  }
  return static_cast<double>(all_keys.size()) / (ThreadCpu() - t0) / 1e6;
}

// The implementations measured, as indices of Best.
enum { kOurs, kNaive, kGatherNaive, kGather, kOurs2, kOursWall, kImpls };
// M ops/s, best of reps: [implementation][workload][lookup, update].
using Best = double[kImpls][2][2];

// Ours on both cores against ours on one, both on wall time, into best.
void MeasureParallel(const Config& cfg, const TableOptions& options,
                     const std::vector<uint64_t>& all_keys, const Workload* const workloads[2],
                     EmbeddingTable& ours, std::vector<float>& out, const std::vector<float>& grads,
                     float* sink, Best& best) {
  // Ours on both cores: the same table with the TBB fan-out enabled.
  TableOptions parallel_options = options;
  parallel_options.parallel_min_update = parallel_options.parallel_min_lookup = 4096;
  // A second table with the same rows; made after the serial runs so that
  // those ran with only their own structures in memory.
  {
    auto par = std::move(EmbeddingTable::Create(parallel_options)).value();
    const std::vector<float> zeros(cfg.batch * cfg.dim, 0.0f);
    for (size_t b = 0; b < cfg.rows; b += cfg.batch) {
      par->Apply({all_keys.data() + b, std::min(cfg.batch, cfg.rows - b)}, zeros.data());
    }
    for (int rep = 0; rep < cfg.reps; ++rep) {
      for (int wi = 0; wi < 2; ++wi) {
        const Workload& w = *workloads[wi];
        const double l = Rate(
            w, cfg.batch,
            [&](size_t b, size_t n) {
              par->Lookup({w.keys.data() + b, n}, out.data());
              *sink += out[0];
            },
            /*wall=*/true);
        const double u = Rate(
            w, cfg.batch,
            [&](size_t b, size_t n) {
              par->Apply({w.keys.data() + b, n}, grads.data());
            },
            /*wall=*/true);
        best[kOurs2][wi][0] = std::max(best[kOurs2][wi][0], l);
        best[kOurs2][wi][1] = std::max(best[kOurs2][wi][1], u);
        // The serial table on wall time too, interleaved, for a like-for-like speedup.
        const double l1 = Rate(
            w, cfg.batch,
            [&](size_t b, size_t n) {
              ours.Lookup({w.keys.data() + b, n}, out.data());
              *sink += out[0];
            },
            /*wall=*/true);
        const double u1 = Rate(
            w, cfg.batch,
            [&](size_t b, size_t n) {
              ours.Apply({w.keys.data() + b, n}, grads.data());
            },
            /*wall=*/true);
        best[kOursWall][wi][0] = std::max(best[kOursWall][wi][0], l1);
        best[kOursWall][wi][1] = std::max(best[kOursWall][wi][1], u1);
      }
    }
  }
}

void PrintResults(const Config& cfg, const Best& best, const EmbeddingTable& ours, size_t ours_rss,
                  size_t naive_rss, float sink) {
  const double row_bytes = static_cast<double>(cfg.dim * sizeof(float));
  std::printf("\nthroughput, M rows/s of thread CPU time (rows marked wall: wall time)\n");
  std::printf("                                uniform              zipf(1.05)\n");
  std::printf("                              lookup   update      lookup   update\n");
  const char* names[kImpls] = {
      "ours (1 thread)",       "std::unordered_map",          "flat gather, naive",
      "flat gather, prefetch", "ours (2 threads, TBB), wall", "ours (1 thread), wall"};
  for (int i = 0; i < kImpls; ++i) {
    std::printf("%-28s %8.1f %8.1f    %8.1f %8.1f\n", names[i], best[i][0][0], best[i][0][1],
                best[i][1][0], best[i][1][1]);
  }
  auto ratio_row = [&](const char* name, int num, int den) {
    std::printf("%-28s %7.2fx %7.2fx    %7.2fx %7.2fx\n", name, best[num][0][0] / best[den][0][0],
                best[num][0][1] / best[den][0][1], best[num][1][0] / best[den][1][0],
                best[num][1][1] / best[den][1][1]);
  };
  std::printf("\nratios\n");
  ratio_row("ours / unordered_map", kOurs, kNaive);
  std::printf("  (targets: >= 4x lookup, >= 6x update)\n");
  ratio_row("ours / gather (prefetch)", kOurs, kGather);
  ratio_row("ours 2 threads / 1, wall", kOurs2, kOursWall);

  const double bound = 1.5 * row_bytes;  // SGD without momentum: no state
  const double per_row = static_cast<double>(ours.memory_bytes()) / ours.size();
  std::printf("\nmemory per row at %zu rows (payload %.0f B, bound 1.5x = %.0f B)\n", ours.size(),
              row_bytes, bound);
  std::printf("  ours memory_bytes()   %6.1f B  (%.2fx payload) %s\n", per_row, per_row / row_bytes,
              per_row <= bound ? "within bound" : "OVER BOUND");
  std::printf("  ours RSS growth       %6.1f B\n", static_cast<double>(ours_rss) / cfg.rows);
  std::printf("  unordered_map RSS     %6.1f B\n", static_cast<double>(naive_rss) / cfg.rows);
  double load[1] = {0};
  if (getloadavg(load, 1) == 1) {
    std::printf(
        "load average %.1f on %ld CPUs: other tenants share caches and DRAM, so compare\n"
        "rows of this run with each other, not with other runs\n",
        load[0], sysconf(_SC_NPROCESSORS_ONLN));
  }
  std::printf("(checksum %g)\n", static_cast<double>(sink));
}

void PrintHeader(const Config& cfg) {
  phalanx::bench::PrintBuildHeader(phalanx::ps::ProcessBuildInfo());
  std::printf(
      "bench_table: %zu rows x %zu floats, %zu ops per run in batches of %zu, best of %d, %s\n",
      cfg.rows, cfg.dim, cfg.ops, cfg.batch, cfg.reps, cfg.optimizer.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  if (!ReadConfig(argc, argv, &cfg)) {
    std::fprintf(stderr, "bad sizes or --optimizer (sgd, momentum, adagrad, adam)\n");
    return 2;
  }
  const size_t dim = cfg.dim;
  PrintHeader(cfg);
  const double t_setup = Now();

  const Workloads wl = MakeWorkloads(cfg);
  const Workload& uniform = wl.uniform;
  const Workload& zipf = wl.zipf;
  const std::vector<uint64_t>& all_keys = wl.all_keys;

  // (a) ours, serial: every call stays on this thread.
  TableOptions options;
  options.dim = static_cast<uint32_t>(dim);
  options.optimizer = OptimizerOf(cfg);
  options.parallel_min_update = options.parallel_min_lookup = SIZE_MAX;
  options.initial_capacity = 1 << 16;  // grows by rehash, as a live shard would
  std::vector<float> out(cfg.batch * dim);
  std::vector<float> grads(cfg.batch * dim, 1e-3f);
  const std::vector<float> zeros(cfg.batch * dim, 0.0f);
  const size_t rss0 = RssBytes();
  auto created = EmbeddingTable::Create(options);
  if (!created.ok()) {
    std::fprintf(stderr, "%s\n", created.status().ToString().c_str());
    return 1;
  }
  auto& ours = *created.value();
  const double t0 = ThreadCpu();
  // Rows are created by updates (a lookup of an unknown key does not insert):
  // zero gradients create them with their initial values.
  for (size_t b = 0; b < cfg.rows; b += cfg.batch) {
    ours.Apply({all_keys.data() + b, std::min(cfg.batch, cfg.rows - b)}, zeros.data());
  }
  const double ours_insert = static_cast<double>(cfg.rows) / (ThreadCpu() - t0) / 1e6;
  const size_t ours_rss = RssBytes() - rss0;

  // (b) naive std::unordered_map, reserved up front (its best case).
  const size_t rss1 = RssBytes();
  NaiveTable naive;
  const double naive_insert = FillNaive(ours, all_keys, dim, &naive);
  const size_t naive_rss = RssBytes() - rss1;

  // (c) the same rows in a flat array, addressed by row number, on 2 MiB
  // pages like the table's slabs (on 4 KiB pages this VM's gathers ran at
  // about 60% of the speed, TLB-bound, which made the ceiling look lower).
  phalanx::bench::HugePageFloats flat_pages;
  if (!flat_pages.Allocate(cfg.rows * dim)) {
    std::fprintf(stderr, "cannot map the flat array\n");
    return 1;
  }
  std::span<float> flat(flat_pages.data(), cfg.rows * dim);
  for (size_t r = 0; r < cfg.rows; ++r) ours.InitialRow(all_keys[r], flat.data() + r * dim);
  std::printf("setup %.1f s; inserts: ours %.1f M rows/s, unordered_map %.1f M rows/s\n",
              Now() - t_setup, ours_insert, naive_insert);

  float sink = 0;
  const float lr = options.optimizer.learning_rate;
  auto ours_lookup = [&](const Workload& w) {
    return Rate(w, cfg.batch, [&](size_t b, size_t n) {
      ours.Lookup({w.keys.data() + b, n}, out.data());
      sink += out[0];
    });
  };
  auto ours_update = [&](const Workload& w) {
    return Rate(w, cfg.batch, [&](size_t b, size_t n) {
      ours.Apply({w.keys.data() + b, n}, grads.data());
    });
  };
  auto naive_lookup = [&](const Workload& w) {
    return Rate(w, cfg.batch, [&](size_t b, size_t n) {
      for (size_t i = 0; i < n; ++i) {
        auto it = naive.find(w.keys[b + i]);
        if (it == naive.end()) {
          it = naive.emplace(w.keys[b + i], std::vector<float>(dim)).first;
          ours.InitialRow(w.keys[b + i], it->second.data());
        }
        std::memcpy(out.data() + i * dim, it->second.data(), dim * sizeof(float));
      }
      sink += out[0];
    });
  };
  auto naive_update = [&](const Workload& w) {
    return Rate(w, cfg.batch, [&](size_t b, size_t n) {
      for (size_t i = 0; i < n; ++i) {
        auto it = naive.find(w.keys[b + i]);
        if (it == naive.end()) {
          it = naive.emplace(w.keys[b + i], std::vector<float>(dim)).first;
          ours.InitialRow(w.keys[b + i], it->second.data());
        }
        float* row = it->second.data();
        const float* g = grads.data() + i * dim;
        for (size_t c = 0; c < dim; ++c) row[c] -= lr * g[c];
      }
    });
  };
  // The gathers prefetch kAhead rows ahead when `prefetch` is set; the
  // prefetched one is the ceiling a hash index in front can approach.
  constexpr size_t kAhead = 16;
  auto gather_lookup = [&](const Workload& w, bool prefetch) {
    return Rate(w, cfg.batch, [&](size_t b, size_t n) {
      const uint32_t* rows = w.rows.data() + b;
      for (size_t i = 0; i < n; ++i) {
        if (prefetch && i + kAhead < n) __builtin_prefetch(flat.data() + rows[i + kAhead] * dim);
        std::memcpy(out.data() + i * dim, flat.data() + rows[i] * dim, dim * sizeof(float));
      }
      sink += out[0];
    });
  };
  auto gather_update = [&](const Workload& w, bool prefetch) {
    return Rate(w, cfg.batch, [&](size_t b, size_t n) {
      const uint32_t* rows = w.rows.data() + b;
      for (size_t i = 0; i < n; ++i) {
        if (prefetch && i + kAhead < n) {
          __builtin_prefetch(flat.data() + rows[i + kAhead] * dim, 1);
        }
        float* row = flat.data() + rows[i] * dim;
        const float* g = grads.data() + i * dim;
        for (size_t c = 0; c < dim; ++c) row[c] -= lr * g[c];
      }
    });
  };

  // result[impl][workload][op], best of reps; implementations interleaved
  // within each repetition so that load from other tenants hits all alike.
  Best best = {};
  const Workload* workloads[2] = {&uniform, &zipf};
  for (int rep = 0; rep < cfg.reps; ++rep) {
    for (int wi = 0; wi < 2; ++wi) {
      const Workload& w = *workloads[wi];
      const double r[kOurs2][2] = {
          {ours_lookup(w), ours_update(w)},
          {naive_lookup(w), naive_update(w)},
          {gather_lookup(w, false), gather_update(w, false)},
          {gather_lookup(w, true), gather_update(w, true)},
      };
      for (int i = 0; i < kOurs2; ++i) {
        for (int op = 0; op < 2; ++op) best[i][wi][op] = std::max(best[i][wi][op], r[i][op]);
      }
    }
  }
  MeasureParallel(cfg, options, all_keys, workloads, ours, out, grads, &sink, best);

  PrintResults(cfg, best, ours, ours_rss, naive_rss, sink);
  return 0;
}
