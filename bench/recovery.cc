// bench_recovery: server snapshots for a shard of N rows x dim floats (default
// 1M x 16, SGD: no optimizer state). Prints the snapshot size, capture and
// write (+fdatasync, rename) times, and the load time against the baseline of
// reading the same file with plain read() in the same run, both from a cold
// page cache (posix_fadvise DONTNEED after fdatasync; the resident fraction
// is printed so a drop that did not happen is visible) and warm. Then an
// end-to-end recovery in one process: scheduler, server and one worker over
// loopback TCP; the server is stopped without a goodbye (its heartbeats stop,
// as after SIGKILL), a replacement is started at once with --restore, and
// the time from the stop to the first round completed after the replacement
// joined is reported with its parts.
//
// Usage: bench_recovery [--rows=N] [--dim=N] [--reps=N] [--dir=PATH] [--e2e=0|1]

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "ps/server.h"
#include "ps/snapshot.h"
#include "scheduler/scheduler.h"
#include "worker/client.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using phalanx::ps::EmbeddingTable;
using phalanx::ps::TableOptions;

std::string Flag(int argc, char** argv, const char* name, const std::string& def) {
  const std::string prefix = std::string("--") + name + "=";
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]).starts_with(prefix)) return argv[i] + prefix.size();
  }
  return def;
}

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Fraction of the file's pages in the page cache.
double Resident(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  struct stat st {};
  ::fstat(fd, &st);
  size_t size = static_cast<size_t>(st.st_size);
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  long page = ::sysconf(_SC_PAGESIZE);
  size_t pages = (size + page - 1) / page;
  std::vector<unsigned char> vec(pages);
  double frac = -1;
  if (p != MAP_FAILED && ::mincore(p, size, vec.data()) == 0) {
    size_t in = 0;
    for (auto v : vec) in += v & 1;
    frac = static_cast<double>(in) / static_cast<double>(pages);
  }
  if (p != MAP_FAILED) ::munmap(p, size);
  ::close(fd);
  return frac;
}

void DropCache(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

// The baseline: read the whole file sequentially in 4 MiB read() calls.
double PlainRead(const std::string& path) {
  std::vector<char> buf(4 << 20);
  auto t = Clock::now();
  int fd = ::open(path.c_str(), O_RDONLY);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  uint64_t sum = 0;
  ssize_t n;
  while ((n = ::read(fd, buf.data(), buf.size())) > 0) sum += static_cast<uint64_t>(buf[0]);
  ::close(fd);
  double s = Since(t);
  if (sum == 42) std::printf(" ");  // keep the reads
  return s;
}

TableOptions Options(uint32_t dim) {
  TableOptions o;
  o.table_id = 0;
  o.dim = dim;
  o.optimizer.kind = phalanx::ps::OptimizerKind::kSgd;
  return o;
}

int EndToEnd(size_t rows, uint32_t dim, const std::string& dir) {
  using namespace phalanx;
  fs::remove_all(dir);
  scheduler::SchedulerOptions so;
  so.expected_servers = 1;
  so.expected_workers = 1;
  so.heartbeat_timeout_ms = 500;
  auto sched = scheduler::Scheduler::Create(so);
  if (!sched.ok()) return std::printf("scheduler: %s\n", sched.status().ToString().c_str()), 1;
  std::atomic<bool> sched_stop{false};
  std::thread st([&] { (void)(*sched)->Run(&sched_stop); });

  ps::ServerOptions o;
  o.scheduler_endpoint = (*sched)->endpoint();
  o.requested_rank = 0;
  o.heartbeat_ms = 100;
  o.round_timeout_ms = 30000;
  o.tables = {Options(dim)};
  o.tables[0].initial_capacity = rows + 1;
  o.checkpoint.dir = dir;
  o.checkpoint.every_rounds = 1;
  o.checkpoint.keep = 1;
  auto run_server = [](ps::ServerOptions opts, std::atomic<bool>* stop, Clock::time_point* ready) {
    return std::thread([opts, stop, ready] {
      auto s = ps::Server::Create(opts);
      if (!s.ok()) {
        std::printf("server: %s\n", s.status().ToString().c_str());
        return;
      }
      *ready = Clock::now();
      (void)(*s)->Run(stop);
    });
  };
  std::atomic<bool> stop1{false}, stop2{false};
  Clock::time_point ready1, ready2;
  std::thread s1 = run_server(o, &stop1, &ready1);

  worker::ClientOptions co;
  co.scheduler_endpoint = (*sched)->endpoint();
  co.heartbeat_ms = 100;
  co.request_timeout_ms = 120000;
  auto client = worker::Client::Create(co);
  if (!client.ok()) return std::printf("client: %s\n", client.status().ToString().c_str()), 1;
  std::vector<uint64_t> keys(rows);
  std::mt19937_64 rng(3);
  for (auto& k : keys) k = rng();
  std::vector<float> grads(rows * dim, 0.01f);
  // Round 0 creates every row; the server snapshots version 1 in the background.
  auto t = Clock::now();
  phalanx::Status s = (*client)->Push(0, keys, dim, grads.data(), 0, true, true);
  if (!s.ok()) return std::printf("push: %s\n", s.ToString().c_str()), 1;
  std::vector<float> few(8 * dim);
  s = (*client)->Pull(0, std::span<const uint64_t>(keys.data(), 8), dim, 1, few.data());
  std::printf("e2e: round 0 with %zu rows pushed and applied in %.3f s\n", rows, Since(t));
  while (phalanx::ps::ListSnapshots(dir, 0).empty()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // rename + prune done

  // "Kill": the server stops without leaving; its heartbeats stop.
  auto kill = Clock::now();
  stop1 = true;
  s1.join();
  // The replacement starts at once and restores.
  ps::ServerOptions r = o;
  r.restore = true;
  auto start2 = Clock::now();
  std::thread s2 = run_server(r, &stop2, &ready2);
  // The worker's next round: pull (retried while the rank is down), push, wait for the close.
  worker::PullResult pr;
  s = (*client)->Pull(0, std::span<const uint64_t>(keys.data(), 8), dim, 1, few.data(), &pr);
  auto pulled = Clock::now();
  if (s.ok())
    s = (*client)->Push(0, std::span<const uint64_t>(keys.data(), 8), dim, grads.data(), pr.version,
                        true, true);
  if (s.ok()) {
    s = (*client)->Pull(0, std::span<const uint64_t>(keys.data(), 8), dim, pr.version + 1,
                        few.data());
  }
  auto done = Clock::now();
  if (!s.ok()) std::printf("e2e: round after recovery failed: %s\n", s.ToString().c_str());
  auto& reg = MetricsRegistry::Global();
  double load = reg.GetGauge("phalanx_server_restore_seconds", "").value();
  auto secs = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  std::printf(
      "e2e recovery (heartbeat timeout %d ms): kill -> first round completed after the "
      "replacement joined: %.3f s\n"
      "  replacement start -> registered, snapshot loaded (%.3f s of it), serving: %.3f s\n"
      "  kill -> worker's pull answered by the replacement: %.3f s; -> round closed: %.3f s\n",
      so.heartbeat_timeout_ms, secs(kill, done), load, secs(start2, ready2), secs(kill, pulled),
      secs(kill, done));
  (*client)->Leave();
  stop2 = true;
  s2.join();
  sched_stop = true;
  st.join();
  return s.ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const size_t rows = std::stoull(Flag(argc, argv, "rows", "1000000"));
  const uint32_t dim = static_cast<uint32_t>(std::stoul(Flag(argc, argv, "dim", "16")));
  const int reps = std::stoi(Flag(argc, argv, "reps", "3"));
  const std::string dir = Flag(argc, argv, "dir", "/tmp/phalanx-bench-recovery");
  const bool e2e = Flag(argc, argv, "e2e", "1") == "1";
  spdlog::set_level(spdlog::level::warn);
  fs::remove_all(dir);

  auto table = EmbeddingTable::Create(Options(dim));
  if (!table.ok()) return 1;
  {
    std::vector<uint64_t> keys(rows);
    std::mt19937_64 rng(1);
    for (auto& k : keys) k = rng();
    std::vector<float> values(rows * (*table)->row_floats());
    for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 1000) * 1e-3f;
    (*table)->Import(keys, values.data());
  }
  std::printf("bench_recovery: %zu rows x %u floats (%zu floats stored per row)\n",
              (*table)->size(), dim, (*table)->row_floats());

  double best_capture = 1e9, best_write = 1e9;
  std::string path;
  uint64_t bytes = 0;
  for (int r = 0; r < reps; ++r) {
    auto t = Clock::now();
    auto img = phalanx::ps::SnapshotImage::Capture(0, 1024, 1, {table->get()}, {r + 1});
    double capture = Since(t);
    if (!img.ok()) return std::printf("capture: %s\n", img.status().ToString().c_str()), 1;
    t = Clock::now();
    auto info = (*img)->WriteTo(dir);
    double write = Since(t);
    if (!info.ok()) return std::printf("write: %s\n", info.status().ToString().c_str()), 1;
    best_capture = std::min(best_capture, capture);
    best_write = std::min(best_write, write);
    path = info->path;
    bytes = info->bytes;
  }
  (void)phalanx::ps::PruneSnapshots(dir, 0, 1);
  const double mb = static_cast<double>(bytes) / 1e6;
  std::printf(
      "snapshot: %.1f MB (%.1f B/row); capture %.3f s, write+fdatasync+rename %.3f s "
      "(%.0f MB/s)\n",
      mb, static_cast<double>(bytes) / static_cast<double>(rows), best_capture, best_write,
      mb / best_write);

  phalanx::ps::SnapshotExpectation e;
  e.rank = 0;
  e.tables = {Options(dim)};
  double cold_read = 1e9, cold_load = 1e9, warm_read = 1e9, warm_load = 1e9, resident = 0;
  for (int r = 0; r < reps; ++r) {
    DropCache(path);
    resident = std::max(resident, Resident(path));
    cold_read = std::min(cold_read, PlainRead(path));
    DropCache(path);
    auto t = Clock::now();
    auto loaded = phalanx::ps::LoadSnapshot(path, e);
    cold_load = std::min(cold_load, Since(t));
    if (!loaded.ok() || loaded->tables[0]->size() != rows) {
      return std::printf("load failed: %s\n", loaded.status().ToString().c_str()), 1;
    }
    loaded->tables.clear();  // free the tables before the warm runs
    warm_read = std::min(warm_read, PlainRead(path));
    t = Clock::now();
    auto again = phalanx::ps::LoadSnapshot(path, e);
    warm_load = std::min(warm_load, Since(t));
  }
  std::printf("page cache after DONTNEED: %.0f%% of the file resident (0%% = a true cold read)\n",
              resident * 100);
  std::printf(
      "cold: read() %.3f s (%.0f MB/s), load %.3f s (%.0f MB/s, %.2f M rows/s); "
      "load / read = %.2fx\n",
      cold_read, mb / cold_read, cold_load, mb / cold_load,
      static_cast<double>(rows) / cold_load / 1e6, cold_load / cold_read);
  std::printf("warm: read() %.3f s (%.0f MB/s), load %.3f s (%.0f MB/s); load / read = %.2fx\n",
              warm_read, mb / warm_read, warm_load, mb / warm_load, warm_load / warm_read);
  int rc = 0;
  if (e2e) rc = EndToEnd(rows, dim, dir + "-e2e");
  fs::remove_all(dir);
  fs::remove_all(dir + "-e2e");
  return rc;
}
