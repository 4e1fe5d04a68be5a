#include "bench/transport/breakdown.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench/util/huge_pages.h"
#include "bench/util/report.h"
#include "bench/util/timing.h"
#include "common/control.h"
#include "common/message.h"
#include "ps/table.h"

namespace phalanx::bench::transport {
namespace {

struct Item {
  std::string what;
  double seconds;
  std::string where;
};

// The inputs every piece is timed on (the benchmark's sizes) and the timed
// pieces so far, in the order they are printed.
struct BreakdownRun {
  BreakdownRun(const Options& options, const std::vector<uint64_t>& key_set)
      : o(options),
        keys(key_set),
        nk(keys.size()),
        vals(nk * 16, 0.5f),
        kb(Buffer::Copy(keys.data(), keys.size() * 8)),
        vb(Buffer::Copy(vals.data(), vals.size() * 4)),
        dense_bytes(static_cast<size_t>(o.dense_floats) * 4),
        dense(static_cast<size_t>(o.dense_floats), 0.5f),
        db(Buffer::Copy(dense.data(), dense_bytes)),
        nks(std::to_string(nk / 1000) + "k") {}

  void add(const std::string& w, double s, const std::string& where) {
    items.push_back({w, s, where});
  }

  // Checksums, allocations and copies of the payload.
  void PayloadPieces() {
    add("XXH3 checksum, " + nks + " keys (800 KB)",
        TimeBest(5, [&] { sink = sink + PayloadChecksum(kb, Buffer()); }),
        "only with checksums on (ChecksumMode): once per side");
    add("XXH3 checksum, keys+values (7.2 MB)",
        TimeBest(5, [&] { sink = sink + PayloadChecksum(kb, vb); }),
        "push: client makes it, server verifies it");
    add("XXH3 checksum, 6.4 MB values",
        TimeBest(5, [&] { sink = sink + PayloadChecksum(Buffer(), vb); }),
        "pull reply: server makes it, client verifies it");
    add("XXH3 checksum, dense 40 MB",
        TimeBest(3, [&] { sink = sink + PayloadChecksum(Buffer(), db); }),
        "dense pull/push, x2 per request");
    add("fresh std::vector<float> 6.4 MB (alloc+zero)",
        TimeBest(5,
                 [&] {
                   std::vector<float> v(nk * 16);
                   sink = sink + static_cast<uint64_t>(v[v.size() / 2]);
                 }),
        "what a fresh reply buffer per pull cost (now from BufferPool)");
    add("fresh std::vector<float> 40 MB (alloc+zero)",
        TimeBest(3,
                 [&] {
                   std::vector<float> v(static_cast<size_t>(o.dense_floats));
                   sink = sink + static_cast<uint64_t>(v[v.size() / 2]);
                 }),
        "same, dense (now pooled); ZeroMQ's receive buffers still pay it");
    add("memcpy 40 MB into a reused buffer",
        TimeBest(3,
                 [&] {
                   std::memcpy(dense.data(), db.data(), dense_bytes);
                   sink = sink + static_cast<uint64_t>(dense[7]);
                 }),
        "lower bound of any extra copy of the dense block");
    std::vector<uint32_t> pos(nk);
    std::iota(pos.begin(), pos.end(), 0u);
    add("per-row 64 B memcpy scatter, " + nks + " rows",
        TimeBest(5,
                 [&] {
                   for (size_t j = 0; j < nk; ++j) {
                     std::memcpy(vals.data() + static_cast<size_t>(pos[j]) * 16, vb.data() + j * 64,
                                 64);
                   }
                   sink = sink + static_cast<uint64_t>(vals[3]);
                 }),
        "client.cc Complete: reply -> out, one memcpy per row");
  }

  // The client's and the server's per-request bookkeeping.
  void BookkeepingPieces(worker::Client& client) {
    add("unordered_map dedup, " + nks + " keys",
        TimeBest(3,
                 [&] {
                   std::unordered_map<uint64_t, std::pair<int, uint32_t>> seen;
                   seen.reserve(nk);
                   for (size_t i = 0; i < nk; ++i)
                     seen.emplace(keys[i], std::make_pair(0, uint32_t(i)));
                   sink = sink + seen.size();
                 }),
        "the client's old dedup (now a reused open-addressing index)");
    add("copy + std::sort + adjacent_find, " + nks + " keys",
        TimeBest(3,
                 [&] {
                   std::vector<uint64_t> s(keys.begin(), keys.end());
                   std::sort(s.begin(), s.end());
                   sink = sink + (std::adjacent_find(s.begin(), s.end()) != s.end());
                 }),
        "server.cc HandlePush (async): duplicate check");
    add("slot routing (SlotOfKey) + push_back, " + nks + " keys",
        TimeBest(3,
                 [&] {
                   std::vector<uint64_t> sk;
                   std::vector<uint32_t> sp;
                   for (size_t i = 0; i < nk; ++i) {
                     if (SlotOfKey(keys[i], 1024) < 2048) {
                       sk.push_back(keys[i]);
                       sp.push_back(static_cast<uint32_t>(i));
                     }
                   }
                   sink = sink + sk.size();
                 }),
        "client.cc PullAsync/PushAsync; server CheckOwnership hashes again");
    add("isfinite scan, 6.4 MB",
        TimeBest(5,
                 [&] {
                   bool ok = true;
                   for (float x : vb.as<float>()) ok &= std::isfinite(x);
                   sink = sink + ok;
                 }),
        "server.cc HandlePush AllFinite");
    {
      Header h;
      h.type = MsgType::kPull;
      const int reps = 20000;
      double s = TimeBest(3, [&] {
        for (int i = 0; i < reps; ++i) {
          std::string e = EncodeHeader(h);
          auto d = DecodeHeader(e.data(), e.size());
          sink = sink + d->request_id;
        }
      });
      add("EncodeHeader + DecodeHeader (fixed layout, memcpy)", s / reps,
          "message.cc: once each per message, 2 messages per op");
    }
    {
      const int reps = 20000;
      double s = TimeBest(3, [&] {
        for (int i = 0; i < reps; ++i) sink = sink + client.view().slot_owner.size();
      });
      add("ClusterView copy (Client::view / membership->view)", s / reps,
          "client.cc Wait: now only when the view's epoch moved");
    }
    {
      const int reps = 20000;
      uint64_t k1 = 12345;
      Buffer one = Buffer::Copy(&k1, 8);
      double s = TimeBest(3, [&] {
        for (int i = 0; i < reps; ++i) sink = sink + PayloadChecksum(one, Buffer());
      });
      add("PayloadChecksum of 8 bytes (one-shot XXH3)", s / reps,
          "message.cc: no state allocation any more");
    }
  }

  // The server's table, in this process.
  void TablePieces() {
    {
      // The server's table, in this process: what Lookup/Apply alone cost for
      // one request, to set against the server's handler time. Same options as
      // the server's embedding table (Adam, 8 partitions); at most 1M rows
      // (196 MB with Adam state), still far beyond the effective L3.
      ps::TableOptions to;
      to.dim = 16;
      to.optimizer.kind = ServerOptimizerKind(o);
      const std::string opt_name = o.optimizer.empty() ? "adam" : o.optimizer;
      to.optimizer.learning_rate = 0.002f;
      const size_t t_rows = static_cast<size_t>(std::min<int64_t>(o.rows, 1'000'000));
      for (bool serial : {false, true}) {
        // The server fans updates of >= 4096 keys out over TBB (lookups only
        // from 262144); both variants show what that buys or costs on 2 cores.
        to.parallel_min_update = to.parallel_min_lookup = serial ? SIZE_MAX : 4096;
        auto table = ps::EmbeddingTable::Create(to);
        if (!table.ok()) continue;
        auto& t = **table;
        const std::string mode = serial ? "serial" : "TBB";
        std::vector<uint64_t> all(t_rows);
        std::iota(all.begin(), all.end(), 0);
        std::vector<float> tmp(t_rows * 16, 0.0f);
        auto t0 = Clock::now();
        t.Apply(all, tmp.data());  // rows come from updates; zeros keep the initial values
        add("table first touch, " + std::to_string(t_rows / 1000) + "k rows, " + mode,
            Seconds(t0, Clock::now()), "compare: the populate line at the top");
        std::mt19937_64 rng(5);
        std::shuffle(all.begin(), all.end(), rng);
        std::vector<uint64_t> tk(all.begin(),
                                 all.begin() + static_cast<long>(std::min(nk, t_rows)));
        std::vector<float> tout(tk.size() * 16);
        std::vector<float> tg(tk.size() * 16, 1e-4f);
        const std::string tks = std::to_string(tk.size() / 1000) + "k";
        add("table Lookup, " + tks + " random rows, " + mode,
            TimeBest(5, [&] { t.Lookup(tk, tout.data()); }),
            "server.cc AnswerPull: the necessary work");
        add("table Apply (" + opt_name + "), " + tks + " random rows, " + mode,
            TimeBest(5, [&] { t.Apply(tk, tg.data()); }),
            "server.cc HandlePush: the necessary work");
      }
    }
  }

  void Print() const {
    std::printf("\nbreakdown (in-process, best of a few reps):\n");
    std::printf("%-52s | %10s | %s\n", "piece", "time", "where it is paid");
    std::printf("%s\n", std::string(130, '-').c_str());
    for (const auto& it : items) {
      std::string t =
          it.seconds < 1e-4 ? Fmt("%7.2f us", it.seconds * 1e6) : Fmt("%7.2f ms", it.seconds * 1e3);
      std::printf("%-52s | %10s | %s\n", it.what.c_str(), t.c_str(), it.where.c_str());
    }
    std::fflush(stdout);
  }

  const Options& o;
  const std::vector<uint64_t>& keys;
  const size_t nk;
  std::vector<float> vals;
  Buffer kb;
  Buffer vb;
  const size_t dense_bytes;
  std::vector<float> dense;
  Buffer db;
  const std::string nks;
  volatile uint64_t sink = 0;
  std::vector<Item> items;
};

}  // namespace

// The memory floor of a sparse request on this machine: `batch` random
// 64-byte rows out of `rows`, gathered with prefetch from 2 MiB pages into a
// reply-sized buffer (as bench_table's "gather"). That is one cache line per
// row, what even an index-free array must read; a collisionless hash table
// reads at least one more (the index entry that holds the key) unless its
// index fits in cache, which at 10M keys it does not, and a push also
// rewrites the optimizer state. So (lines per key) x this time is a lower
// bound on the server's table work for one request, and raw / (raw + that)
// the best ratio a server that does not overlap the table with the transfer
// can reach here. Returns seconds (best of 5).
double GatherFloorSeconds(size_t rows, size_t batch) {
  constexpr size_t kRowFloats = 16;
  HugePageFloats region;
  if (!region.Allocate(rows * kRowFloats)) return 0;
  float* flat = region.data();
  std::fill(flat, flat + rows * kRowFloats, 1.0f);
  std::mt19937_64 rng(11);
  std::uniform_int_distribution<size_t> pick(0, rows - 1);
  std::vector<size_t> ids(batch);
  for (auto& id : ids) id = pick(rng);
  std::vector<float> out(batch * kRowFloats);
  constexpr size_t kAhead = 16;
  double s = TimeBest(5, [&] {
    for (size_t i = 0; i < batch; ++i) {
      if (i + kAhead < batch) __builtin_prefetch(flat + ids[i + kAhead] * kRowFloats);
      std::memcpy(out.data() + i * kRowFloats, flat + ids[i] * kRowFloats,
                  kRowFloats * sizeof(float));
    }
  });
  volatile float keep = out[batch / 2];
  (void)keep;
  return s;
}

void Breakdown(const Options& o, worker::Client& client, const std::vector<uint64_t>& keys) {
  BreakdownRun run(o, keys);
  run.PayloadPieces();
  run.BookkeepingPieces(client);
  run.TablePieces();
  run.Print();
}

}  // namespace phalanx::bench::transport
