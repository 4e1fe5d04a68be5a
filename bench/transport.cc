// bench_transport: end-to-end Phalanx pull/push over TCP loopback, each figure
// as a ratio to raw ZeroMQ moving the same bytes in the same run.
//
// Layout: a scheduler and one server (the real `phalanx` binary, async mode)
// and this process as the one worker (worker::Client). The raw baseline is a
// child (this binary again, bench/transport/raw_zmq.h) running a bare ZeroMQ ROUTER that answers
// every request with a reply of the requested size from one preallocated buffer (zero-copy), and
// this process's DEALER sending the same frames Phalanx sends: a 64-byte
// header, a key frame and a value frame. So the raw figure is what ZeroMQ
// alone costs for exactly Phalanx's traffic, and the ratio is what the
// framework (client routing, codec, checksums, server table, allocation)
// keeps of it.
//
// Both sides run one request at a time (Phalanx's Pull/Push are synchronous),
// and they alternate in blocks (raw, phalanx, raw, phalanx, ...) because the
// machine is shared: a noisy neighbour then hits both sides alike. Per-op
// times are reported as medians.
//
// Flags (--name=value) or environment variables (PHX_BENCH_NAME=value):
//   rows           embedding rows populated on the server (10000000)
//   batch          keys per sparse request (100000)
//   dense_floats   floats in the dense block (10000000)
//   dense_row_dim  tables.dense_row_dim (4096: 10M floats = 2442 keys)
//   rounds         alternating raw/phalanx blocks per case (5)
//   sparse_iters   requests per block, sparse cases (20)
//   dense_iters    requests per block, dense cases (6)
//   rtt_iters      requests per block, 1-key round trip (2000)
//   populate_batch keys per pull while populating (1000000)
//   breakdown      1: also time the pipeline's pieces in-process (1)
//   server_prefix  command put before the server, e.g. "valgrind --tool=callgrind"
//   phalanx        path of the phalanx binary ($PHX_BINARY_DIR/phalanx, else next
//                  to this build's bench/ directory)
//   config         job config (launch/configs/fashion-mnist-softmax.toml)
//   optimizer      the server's optimizer.kind: the config's (adam) unless set;
//                  sgd isolates the framework from the optimizer's own memory
//                  traffic (Adam reads and writes 3 floats per weight)
//   checksum       auto | always | never: the client's ChecksumMode (auto)
//   part_bytes     the client's max_part_bytes (1048576; 0 = no splitting): requests
//                  larger than this go out as parts, pipelined; the raw baseline
//                  sends the same parts the same way
//   set            extra config items for every role, space-separated, e.g.
//                  "tables.parallel_min_update=8192"
//   quick          1: rows=1M, fewer iterations (runs in well under 30 s)

//
// Code: the raw baseline in bench/transport/raw_zmq.cc, the cases in
// bench/transport/cases.cc, the in-process breakdown in
// bench/transport/breakdown.cc; flags, timing and the result table are shared
// bench utilities (bench/util/).

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bench/transport/breakdown.h"
#include "bench/transport/cases.h"
#include "bench/transport/options.h"
#include "bench/transport/raw_zmq.h"
#include "bench/util/children.h"
#include "bench/util/flags.h"
#include "bench/util/report.h"
#include "common/node_lines.h"
#include "launch/process/child_process.h"
#include "worker/client.h"

namespace phalanx::bench::transport {
namespace {

// The Phalanx scheduler and server, as child processes; stopped (SIGTERM, a
// grace period, SIGKILL) by Stop or when destroyed.
struct Cluster {
  launch::ChildProcess scheduler;
  launch::ChildProcess server;
  std::string endpoint;  // the scheduler's
  ~Cluster() { Stop(); }
  void Stop() {
    server.Terminate(kStopGraceMs);
    scheduler.Terminate(kStopGraceMs);
  }
};

bool StartCluster(const Options& o, Cluster* c) {
  std::vector<std::string> sets = {"cluster.servers=1", "cluster.workers=1", "cluster.mode=async",
                                   "model.embedding_dim=16",
                                   "tables.dense_row_dim=" + std::to_string(o.dense_row_dim)};
  if (!o.optimizer.empty()) sets.push_back("optimizer.kind=" + o.optimizer);
  for (const auto& extra : SplitWords(o.set)) sets.push_back(extra);
  auto args_for = [&](const std::string& role) {
    std::vector<std::string> a = {o.phalanx, role, "--config", o.config};
    for (const auto& s : sets) {
      a.push_back("--set");
      a.push_back(s);
    }
    return a;
  };
  auto sargs = args_for("scheduler");
  sargs.insert(sargs.end(), {"--port", "0"});
  if (!StartChild(&c->scheduler, sargs, "/tmp/phx_bench_transport_scheduler.log")) return false;
  auto endpoint = c->scheduler.WaitFor(std::string(kEndpointLinePrefix), 20000);
  if (!endpoint) {
    std::fprintf(stderr, "scheduler did not start; see /tmp/phx_bench_transport_scheduler.log\n");
    return false;
  }
  c->endpoint = *endpoint;
  std::vector<std::string> vargs = SplitWords(o.server_prefix);
  auto a = args_for("server");
  a.insert(a.end(), {"--scheduler", c->endpoint, "--rank", "0"});
  vargs.insert(vargs.end(), a.begin(), a.end());
  return StartChild(&c->server, vargs, "/tmp/phx_bench_transport_server.log");
}

std::unique_ptr<worker::Client> MakeClient(const Options& o, const std::string& endpoint) {
  worker::ClientOptions co;
  co.scheduler_endpoint = endpoint;
  co.max_part_bytes = static_cast<size_t>(o.part_bytes);
  co.split_pushes = true;  // the server runs async
  if (o.checksum == "always") {
    co.checksum = ChecksumMode::kAlways;
  } else if (o.checksum == "never") {
    co.checksum = ChecksumMode::kNever;
  } else if (o.checksum != "auto") {
    std::fprintf(stderr, "checksum must be auto, always or never\n");
    Die();
  }
  auto created = worker::Client::Create(co);
  Check(created.status(), "Client::Create");
  return std::move(created).value();
}

void PrintHeader(const Options& o) {
  const int64_t dense_keys = (o.dense_floats + o.dense_row_dim - 1) / o.dense_row_dim;
  const int64_t dense_floats = dense_keys * o.dense_row_dim;  // whole rows
  std::printf(
      "bench_transport: rows=%lld batch=%lld dense=%lld floats as %lld keys x %lld "
      "(dense_row_dim) rounds=%lld iters sparse/dense/rtt=%lld/%lld/%lld\n",
      (long long)o.rows, (long long)o.batch, (long long)dense_floats, (long long)dense_keys,
      (long long)o.dense_row_dim, (long long)o.rounds, (long long)o.sparse_iters,
      (long long)o.dense_iters, (long long)o.rtt_iters);
  std::printf("phalanx: %s\nconfig:  %s\noptimizer: %s, checksum: %s\n", o.phalanx.c_str(),
              o.config.c_str(), o.optimizer.empty() ? "(config's)" : o.optimizer.c_str(),
              o.checksum.c_str());
  std::fflush(stdout);
}

int Run(int argc, char** argv) {
  // The raw ZeroMQ server first, a process of its own (this binary again).
  launch::ChildProcess raw_server;
  if (!StartChild(&raw_server, {"/proc/self/exe", kRawServerFlag},
                  "/tmp/phx_bench_transport_raw.log")) {
    return 1;
  }
  auto raw_port = raw_server.WaitFor(kRawPortLine, 20000);
  if (!raw_port) {
    std::fprintf(stderr, "raw zeromq server did not start\n");
    return 1;
  }

  Options o = ParseOptions(argc, argv);
  PrintHeader(o);
  Cluster cluster;
  if (!StartCluster(o, &cluster)) return 1;
  auto client = MakeClient(o, cluster.endpoint);
  const int server_http = client->view().servers.at(0).http_port;

  RawClient raw(std::stoi(*raw_port));
  Cases cases(o, *client, raw, server_http);
  cases.Populate();
  cases.Sparse();
  cases.Dense();
  cases.RoundTrip();
  cases.PrintNotes();
  if (o.breakdown) Breakdown(o, *client, cases.first_key_set());

  // --- Shut down: the raw child by message, the Phalanx processes by signal.
  raw.Call(nullptr, 0, nullptr, 0, 0, /*quit=*/true);
  raw_server.Wait(20000);
  client->Leave();
  client.reset();
  cluster.Stop();
  PrintTable(cases.rows());
  // Measured with the cluster stopped, so nothing else touches memory.
  cases.PrintFloor(GatherFloorSeconds(static_cast<size_t>(o.rows), cases.batch()));
  bool all =
      std::all_of(cases.rows().begin(), cases.rows().end(), [](const Row& r) { return r.pass; });
  std::printf("\noverall: %s\n", all ? "PASS" : "FAIL (see rows above)");
  return 0;
}

}  // namespace
}  // namespace phalanx::bench::transport

int main(int argc, char** argv) {
  namespace t = phalanx::bench::transport;
  if (argc >= 2 && std::strcmp(argv[1], t::kRawServerFlag) == 0) t::RawServerMain();
  return t::Run(argc, argv);
}
