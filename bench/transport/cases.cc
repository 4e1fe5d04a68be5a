#include "bench/transport/cases.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <sstream>

#include "bench/util/children.h"
#include "bench/util/timing.h"
#include "common/control.h"
#include "common/http_client.h"
#include "ps/table.h"

namespace phalanx::bench::transport {
namespace {

constexpr uint32_t kDense = 0;
constexpr uint32_t kEmb = 1;
constexpr uint32_t kDim = 16;
constexpr int kKeySets = 8;  // distinct key sets, cycled, so no request hits a warm cache
// Lines per key: the index entry and the 64-byte weights; a push also
// rewrites the optimizer's state (Adam: 132 bytes, 3 lines).
constexpr int kPullLines = 2;

// GET http://127.0.0.1:port/path; returns the body ("" on failure).
std::string HttpGet(int port, const std::string& path) {
  auto reply = phalanx::HttpGet("127.0.0.1", port, path, 5000);
  return reply.ok() ? reply->body : "";
}

// Value of a Prometheus sample line "name value" (0 when absent).
double MetricValue(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + " ", 0) == 0) return std::atof(line.c_str() + name.size() + 1);
  }
  return 0;
}

// Cumulative server handler time (AnswerPull / async HandlePush), read from
// the server's /metrics between cases so that no HTTP request lands inside a
// timed section.
struct ServerTimes {
  double pulls = 0, pull_s = 0, pushes = 0, push_s = 0;
  static ServerTimes Read(int port) {
    std::string m = HttpGet(port, "/metrics");
    return {MetricValue(m, "phalanx_server_pull_seconds_count"),
            MetricValue(m, "phalanx_server_pull_seconds_sum"),
            MetricValue(m, "phalanx_server_push_seconds_count"),
            MetricValue(m, "phalanx_server_push_seconds_sum")};
  }
  // Mean handler seconds per op since `before`.
  double MeanPull(const ServerTimes& before) const {
    double n = pulls - before.pulls;
    return n > 0 ? (pull_s - before.pull_s) / n : NAN;
  }
  double MeanPush(const ServerTimes& before) const {
    double n = pushes - before.pushes;
    return n > 0 ? (push_s - before.push_s) / n : NAN;
  }
};

// Runs `rounds` alternating blocks of raw then phalanx, `iters` timed calls
// each (after one untimed warm-up call per block).
void Alternate(int64_t rounds, int64_t iters, const std::function<void(int64_t)>& raw,
               const std::function<void(int64_t)>& phx, Samples* raw_s, Samples* phx_s) {
  int64_t n = 0;
  for (int64_t r = 0; r < rounds; ++r) {
    for (int side = 0; side < 2; ++side) {
      const auto& fn = side == 0 ? raw : phx;
      Samples* s = side == 0 ? raw_s : phx_s;
      fn(n++);
      for (int64_t i = 0; i < iters; ++i) {
        auto t0 = Clock::now();
        fn(n++);
        s->Add(Seconds(t0, Clock::now()));
      }
    }
  }
}

uint64_t Ok(Result<uint64_t> r) {
  Check(r.status(), "async start");
  return *r;
}

}  // namespace

Cases::Cases(const Options& o, worker::Client& client, RawClient& raw, int server_http)
    : o_(o),
      client_(client),
      raw_(raw),
      server_http_(server_http),
      dense_keys_((o.dense_floats + o.dense_row_dim - 1) / o.dense_row_dim),
      dense_floats_(dense_keys_ * o.dense_row_dim),
      nb_(static_cast<size_t>(o.batch)) {
  ps::OptimizerOptions bench_opt;
  bench_opt.kind = ServerOptimizerKind(o);
  const size_t state_bytes = ps::OptimizerStateFloats(bench_opt, kDim) * sizeof(float);
  push_lines_ = kPullLines + static_cast<int>((state_bytes + 63) / 64);
}

size_t Cases::PartRows(size_t row_floats) const {
  if (o_.part_bytes <= 0) return SIZE_MAX;
  return std::max<size_t>(1, static_cast<size_t>(o_.part_bytes) / (row_floats * 4));
}

double Cases::PartsOf(int64_t rows, size_t row_floats) const {
  const size_t per = PartRows(row_floats);
  if (per == SIZE_MAX) return 1.0;
  const size_t parts = (static_cast<size_t>(rows) + per - 1) / per;  // rounded up
  return static_cast<double>(parts);
}

double Cases::SendSide(int iters, const std::function<uint64_t(int)>& start) {
  Samples s;
  for (int i = 0; i < iters; ++i) {
    auto t0 = Clock::now();
    uint64_t id = start(i);
    s.Add(Seconds(t0, Clock::now()));
    Check(client_.Wait(id), "wait");
  }
  return s.Median();
}

void Cases::Note(const std::string& op, double phx_s, double raw_s, double server_s,
                 double send_s) {
  char buf[320];
  std::snprintf(buf, sizeof(buf),
                "%-38s phalanx %8.3f ms = client send %8.3f + server handler %8.3f + rest %8.3f"
                " ms (raw zeromq %8.3f ms)",
                op.c_str(), phx_s * 1e3, send_s * 1e3, server_s * 1e3,
                (phx_s - server_s - send_s) * 1e3, raw_s * 1e3);
  notes_.push_back(buf);
  // Progress while the run goes on; the table comes at the end.
  std::printf("done: %s\n", buf);
  std::fflush(stdout);
}

void Cases::Populate() {
  // Rows are created by updates (a pull of an unknown key only reads its
  // initial row), so population pushes zero gradients: the rows keep their
  // initial values.
  std::vector<uint64_t> keys;
  std::vector<float> zeros;
  auto t0 = Clock::now();
  for (int64_t b = 0; b < o_.rows; b += o_.populate_batch) {
    int64_t e = std::min(o_.rows, b + o_.populate_batch);
    keys.resize(static_cast<size_t>(e - b));
    std::iota(keys.begin(), keys.end(), static_cast<uint64_t>(b));
    zeros.assign(keys.size() * kDim, 0.0f);
    Check(client_.Push(kEmb, keys, kDim, zeros.data(), 0, false, true), "populate push");
  }
  double s = Seconds(t0, Clock::now());
  std::printf("populated %lld rows x %u floats in %.2f s (%.1f M rows/s, batches of %lld)\n",
              (long long)o_.rows, kDim, s, static_cast<double>(o_.rows) / s / 1e6,
              (long long)o_.populate_batch);
  std::fflush(stdout);
}

void Cases::MakeKeySets() {
  key_sets_.assign(kKeySets, {});
  std::vector<uint64_t> perm(static_cast<size_t>(o_.rows));
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937_64 rng(42);
  for (auto& ks : key_sets_) {
    // Partial Fisher-Yates: batch distinct keys from [0, rows).
    for (size_t i = 0; i < nb_; ++i) {
      std::uniform_int_distribution<size_t> d(i, perm.size() - 1);
      std::swap(perm[i], perm[d(rng)]);
    }
    ks.assign(perm.begin(), perm.begin() + static_cast<long>(nb_));
  }
}

void Cases::Sparse() {
  MakeKeySets();
  out_.assign(nb_ * kDim, 0.0f);
  grads_.assign(nb_ * kDim, 1e-4f);
  sparse_bytes_pull_ = static_cast<double>(nb_) * (8 + kDim * sizeof(float));
  RunSparse(/*pull=*/true);
  RunSparse(/*pull=*/false);
}

Cases::Measured Cases::RunThroughput(const ThroughputCase& c) {
  Samples rs, ps;
  ServerTimes before = ServerTimes::Read(server_http_);
  Alternate(
      o_.rounds, c.iters, c.raw, [&](int64_t i) { Check(c.phx(i), c.what); }, &rs, &ps);
  rows_.push_back(ThroughputRow(c.op, ps, rs, c.bytes, c.keys));
  // The histogram is per message: a request of several parts costs their sum.
  const ServerTimes after = ServerTimes::Read(server_http_);
  const double server_s = (c.pull ? after.MeanPull(before) : after.MeanPush(before)) * c.parts;
  Note(c.op, ps.Median(), rs.Median(), server_s, SendSide(c.send_iters, c.send));
  return {ps.Median(), rs.Median(), server_s};
}

void Cases::RunSparse(bool pull) {
  ThroughputCase c;
  c.op = std::string(pull ? "pull " : "push ") + std::to_string(nb_ / 1000) + "k keys x 16 f";
  c.pull = pull;
  c.what = pull ? "sparse pull" : "sparse push";
  c.iters = o_.sparse_iters;
  c.raw = [&](int64_t i) {
    raw_.CallParts(key_sets_[i % kKeySets].data(), nb_, pull ? nullptr : grads_.data(),
                   kDim * sizeof(float), pull, PartRows(kDim));
  };
  c.phx = [&](int64_t i) {
    const auto& keys = key_sets_[i % kKeySets];
    return pull ? client_.Pull(kEmb, keys, kDim, 0, out_.data(), nullptr, true)
                : client_.Push(kEmb, keys, kDim, grads_.data(), 0, false);
  };
  c.bytes = sparse_bytes_pull_;
  c.keys = static_cast<double>(nb_);
  c.parts = PartsOf(static_cast<int64_t>(nb_), kDim);
  c.send_iters = 5;
  c.send = [&](int i) {
    const auto& keys = key_sets_[i % kKeySets];
    return Ok(pull ? client_.PullAsync(kEmb, keys, kDim, 0, out_.data(), true)
                   : client_.PushAsync(kEmb, keys, kDim, grads_.data(), 0, false));
  };
  const Measured m = RunThroughput(c);
  sparse_cases_.push_back({c.op, m.phx_s, m.raw_s, m.server_s, pull ? kPullLines : push_lines_});
  if (pull) return;
  notes_.back() += Fmt(" [client send with keys_unique %.3f ms]",
                       SendSide(5, [&](int i) {
                         return Ok(client_.PushAsync(kEmb, key_sets_[i % kKeySets], kDim,
                                                     grads_.data(), 0, false, true));
                       }) * 1e3);
}

void Cases::Dense() {
  std::vector<uint64_t> dkeys(static_cast<size_t>(dense_keys_));
  std::iota(dkeys.begin(), dkeys.end(), 0);
  std::vector<float> dout(static_cast<size_t>(dense_floats_));
  std::vector<float> dgrad(static_cast<size_t>(dense_floats_), 1e-4f);
  const uint32_t ddim = static_cast<uint32_t>(o_.dense_row_dim);
  // First touch of the dense rows, outside the timing.
  Check(client_.Pull(kDense, dkeys, ddim, 0, dout.data(), nullptr, true), "dense populate");
  const std::string name = std::to_string(dense_floats_ / 1'000'000) + "M floats (" +
                           std::to_string(dense_keys_) + " x " + std::to_string(ddim) + ")";
  for (bool pull : {true, false}) {
    ThroughputCase c;
    c.op = (pull ? "dense pull " : "dense push ") + name;
    c.pull = pull;
    c.what = pull ? "dense pull" : "dense push";
    c.iters = o_.dense_iters;
    c.raw = [&](int64_t) {
      raw_.CallParts(dkeys.data(), dkeys.size(), pull ? nullptr : dgrad.data(),
                     ddim * sizeof(float), pull, PartRows(ddim));
    };
    c.phx = [&](int64_t) {
      return pull ? client_.Pull(kDense, dkeys, ddim, 0, dout.data(), nullptr, true)
                  : client_.Push(kDense, dkeys, ddim, dgrad.data(), 0, false);
    };
    c.bytes = static_cast<double>(dense_floats_) * 4 + static_cast<double>(dense_keys_) * 8;
    c.keys = static_cast<double>(dense_keys_);
    c.parts = PartsOf(dense_keys_, ddim);
    c.send_iters = 3;
    c.send = [&](int) {
      return Ok(pull ? client_.PullAsync(kDense, dkeys, ddim, 0, dout.data(), true)
                     : client_.PushAsync(kDense, dkeys, ddim, dgrad.data(), 0, false));
    };
    RunThroughput(c);
  }
}

void Cases::RoundTrip() {
  Samples rs, ps;
  ServerTimes before = ServerTimes::Read(server_http_);
  uint64_t key = 77;
  float one[kDim];
  Alternate(
      o_.rounds, o_.rtt_iters,
      [&](int64_t) { raw_.Call(&key, 8, nullptr, 0, kDim * sizeof(float)); },
      [&](int64_t i) {
        key = static_cast<uint64_t>(i) % static_cast<uint64_t>(o_.rows);
        Check(client_.Pull(kEmb, {&key, 1}, kDim, 0, one, nullptr, true), "1-key pull");
      },
      &rs, &ps);
  rows_.push_back(LatencyRow("1-key pull round trip, median", ps.Median(), rs.Median()));
  Samples raw_send;
  for (int i = 0; i < 2000; ++i) {
    raw_.Call(&key, 8, nullptr, 0, kDim * sizeof(float));
    raw_send.Add(raw_.last_send_s);
  }
  raw_send_side_ = raw_send.Median();
  rows_.push_back(LatencyRow("1-key pull round trip, p99", ps.Quantile(0.99), rs.Quantile(0.99)));
  Note("1-key pull round trip, median", ps.Median(), rs.Median(),
       ServerTimes::Read(server_http_).MeanPull(before), 0);
  // How much of the round trip is the client's own send path.
  Samples send;
  for (int i = 0; i < 2000; ++i) {
    auto t0 = Clock::now();
    auto id = client_.PullAsync(kEmb, {&key, 1}, kDim, 0, one, true);
    send.Add(Seconds(t0, Clock::now()));
    Check(client_.Wait(*id), "1-key pull wait");
  }
  rtt_send_ = send.Median();
  notes_.back() += Fmt(" [client send %.1f us]", rtt_send_ * 1e6);
}

void Cases::PrintNotes() const {
  std::printf(
      "\nwhere the Phalanx time goes (server handler = mean of the server's own "
      "pull/push histogram over the case times the parts per request; with parts it "
      "overlaps the transfer, so 'rest' can be below the raw time; client send = the *Async call "
      "alone, timed in a "
      "separate short loop, so the parts need not sum exactly on a noisy machine):\n");
  for (const auto& n : notes_) std::printf("%s\n", n.c_str());
  std::printf(
      "send side of a 1-key pull: Client::PullAsync median %.1f us; raw zmq_send of the "
      "same 3 frames median %.1f us\n",
      rtt_send_ * 1e6, raw_send_side_ * 1e6);
  std::fflush(stdout);

  {
    auto ps = BufferPool::Global().stats();
    std::printf(
        "client payload pool: %llu hits, %llu misses (fresh blocks), %zu blocks / %.1f MB cached\n",
        (unsigned long long)ps.hits, (unsigned long long)ps.misses, ps.cached_blocks,
        static_cast<double>(ps.cached_bytes) / 1e6);
  }
}

void Cases::PrintFloor(double gather_s) const {
  if (gather_s <= 0) return;
  std::printf(
      "\nmemory floor of a sparse request here: %zu random 64-byte rows gathered from %lld "
      "(2 MiB pages, prefetched) in %.2f ms = %.1f M lines/s. A hash table touches at least "
      "the key's index entry and its row (a push also the optimizer state) at random:\n",
      nb_, (long long)o_.rows, gather_s * 1e3, static_cast<double>(nb_) / gather_s / 1e6);
  for (const auto& c : sparse_cases_) {
    const double floor_s = c.lines_per_row * gather_s;
    std::printf(
        "  %-28s %d lines/key: floor %.2f ms; raw %.2f ms + floor -> best ratio without "
        "overlap %.2fx (measured %.2fx; server handler %.2f ms = %.1fx the floor)\n",
        c.op.c_str(), c.lines_per_row, floor_s * 1e3, c.raw_s * 1e3, c.raw_s / (c.raw_s + floor_s),
        c.raw_s / c.phx_s, c.server_s * 1e3, c.server_s / floor_s);
  }
}

}  // namespace phalanx::bench::transport
