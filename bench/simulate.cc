// Federated simulator throughput and memory (issue 5, "Scale"):
//  - simulated client updates per wall second, async FedAvg, softmax on
//    Fashion-MNIST, one local step of batch 32 per update, with 10 000 and
//    100 000 registered clients (1 000 training at once, exponential speeds);
//  - the baseline, measured in the same run: the raw cost of that local step
//    (the same gradient kernel, SGD step and delta) with no simulator, on the
//    same threads;
//  - both also per CPU second of this process, which stays meaningful when
//    the machine is shared (then wall rates only show our share of it);
//  - resident memory per idle registered client: RSS at the end of a run with
//    100 000 clients minus RSS with 1 000, over the 99 000 extra clients.
//
//   bench_simulate [--threads N] [--updates U]
// Targets: >= 1e4 updates/s on 2 cores; <= 1 KiB per idle client.

#include <sys/resource.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "launch/sim/sim_config.h"
#include "launch/sim/simulator.h"
#include "worker/dataset.h"
#include "worker/model.h"

namespace {

using Clock = std::chrono::steady_clock;
using phalanx::launch::ParseSimConfig;
using phalanx::launch::Simulator;

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// CPU seconds (user + system) this process has used so far, all threads.
double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

struct Rate {
  double per_wall = 0;  // per wall second
  double per_cpu = 0;   // per CPU second of this process (what a core we own does)
};

// Raw local steps per second: what a client update costs with no simulator.
// The same code path as a simulated client's one-step training
// (Model::DenseLossAndGradientFast, then the fused SGD step and delta), one
// TBB thread per core, with the model and scratch reused in cache.
Rate BaselineStepsPerSecond(const phalanx::worker::TrainTest& data, int threads, int steps) {
  phalanx::worker::ModelOptions mo;
  mo.kind = "softmax";
  auto model = phalanx::worker::CreateModel(mo);
  const size_t d = (*model)->dense_size();
  std::vector<float> theta(d, 0.01f);
  tbb::task_arena arena(threads);
  const auto t0 = Clock::now();
  const double c0 = CpuSeconds();
  arena.execute([&] {
    tbb::parallel_for(0, steps, [&](int s) {
      thread_local std::vector<float> g, delta;
      thread_local std::vector<size_t> batch(32);
      g.resize(d);
      delta.resize(d);
      for (size_t b = 0; b < 32; ++b) batch[b] = (static_cast<size_t>(s) * 32 + b * 7919) % 60000;
      (*model)->DenseLossAndGradientFast(data.train, batch, theta.data(), g.data());
      for (size_t j = 0; j < d; ++j) {
        const float t = theta[j] - 0.05f * g[j];
        delta[j] = t - theta[j];
      }
    });
  });
  return {steps / Seconds(t0), steps / (CpuSeconds() - c0)};
}

std::string Config(int64_t clients, double budget) {
  return R"(
[simulation]
clients = )" +
         std::to_string(clients) +
         R"(
concurrency = 1000
time_budget = )" +
         std::to_string(budget) +
         R"(
eval_every = 0
[data]
alpha = 0.1
samples_per_client = 32
max_test = 100
[model]
kind = "softmax"
[local]
steps = 1
batch_size = 32
[speed]
profile = "exponential"
fx = 80
[server]
algorithm = "async"
)";
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  int updates = 100000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--updates")) updates = std::atoi(argv[i + 1]);
  }
  auto data = phalanx::worker::LoadFashionMnist(phalanx::worker::kDefaultFashionMnistDir);
  if (!data.ok()) {
    std::fprintf(stderr, "%s\n", data.status().ToString().c_str());
    return 1;
  }
  const Rate base = BaselineStepsPerSecond(*data, threads, updates);
  std::printf(
      "threads %d\nbaseline: raw local step (softmax, batch 32) %.0f steps/s wall, %.0f per CPU "
      "second\n",
      threads, base.per_wall, base.per_cpu);
  // 1000 clients in flight with mean τ ≈ 0.6: about 1700 updates per time unit.
  const double budget = updates / 1650.0;
  int64_t rss_small = 0;
  for (int64_t m : {int64_t{1000}, int64_t{10000}, int64_t{100000}}) {
    auto c = ParseSimConfig(Config(m, m == 1000 ? 0.5 : budget));
    if (!c.ok()) return std::fprintf(stderr, "%s\n", c.status().ToString().c_str()), 1;
    auto sim = Simulator::Create(*c, &*data);
    if (!sim.ok()) return std::fprintf(stderr, "%s\n", sim.status().ToString().c_str()), 1;
    const auto t0 = Clock::now();
    const double c0 = CpuSeconds();
    auto r = (*sim)->Run(0, threads);
    const double wall = Seconds(t0);
    const double cpu = CpuSeconds() - c0;
    if (!r.ok()) return std::fprintf(stderr, "%s\n", r.status().ToString().c_str()), 1;
    if (m == 1000) {
      rss_small = r->resident_bytes;
      continue;
    }
    const double rate = static_cast<double>(r->trainings) / wall;
    const double per_cpu = static_cast<double>(r->trainings) / cpu;
    std::printf(
        "clients %6ld: %ld updates in %.2f s = %.0f updates/s (target >= 1e4), %.2fx the raw "
        "step baseline; %.0f%% of the wall in parallel training; %.0f updates per CPU second "
        "(%.2fx the baseline's), i.e. %.0f/s on %d cores of our own\n",
        static_cast<long>(m), static_cast<long>(r->trainings), wall, rate, rate / base.per_wall,
        100.0 * r->train_wall_seconds / wall, per_cpu, per_cpu / base.per_cpu, per_cpu * threads,
        threads);
    if (m == 100000) {
      const double per = static_cast<double>(r->resident_bytes - rss_small) / 99000.0;
      std::printf(
          "resident memory per registered client: %.0f B measured (RSS 100k - RSS 1k over 99k "
          "clients, target <= 1024), %zu B of population state by construction\n",
          per, Simulator::IdleClientBytes());
    }
  }
  return 0;
}
