// bench_transport: end-to-end Phalanx pull/push over TCP loopback, each figure
// as a ratio to raw ZeroMQ moving the same bytes in the same run.
//
// Layout: a scheduler and one server (the real `phalanx` binary, async mode)
// and this process as the one worker (worker::Client). The raw baseline is a
// forked child running a bare ZeroMQ ROUTER that answers every request with a
// reply of the requested size from one preallocated buffer (zero-copy), and
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

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/control.h"
#include "common/message.h"
#include "ps/internal/mapped_region.h"
#include "ps/table.h"
#include "worker/client.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// ---------------------------------------------------------------------------
// Options

struct Options {
  int64_t rows = 10'000'000;
  int64_t batch = 100'000;
  int64_t dense_floats = 10'000'000;
  int64_t dense_row_dim = 4096;
  int64_t rounds = 5;
  int64_t sparse_iters = 20;
  int64_t dense_iters = 6;
  int64_t rtt_iters = 2000;
  int64_t populate_batch = 1'000'000;
  int64_t breakdown = 1;
  int64_t quick = 0;
  std::string server_prefix;
  std::string phalanx;
  std::string config;
  std::string optimizer;
  std::string checksum = "auto";
  // Client::max_part_bytes (split_pushes on: the server runs async). The raw
  // baseline splits its requests the same way, so both move the same bytes in
  // messages of the same size. 0: one message per request.
  int64_t part_bytes = int64_t{1} << 20;
  std::string set;  // extra config items for every role, space-separated
};

// Flag value for `name`: --name=value wins over PHX_BENCH_NAME.
std::optional<std::string> Lookup(int argc, char** argv, const std::string& name) {
  const std::string flag = "--" + name + "=";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], flag.c_str(), flag.size()) == 0) return argv[i] + flag.size();
  }
  std::string env = "PHX_BENCH_" + name;
  std::transform(env.begin(), env.end(), env.begin(), ::toupper);
  if (const char* v = std::getenv(env.c_str())) return std::string(v);
  return std::nullopt;
}

void ReadInt(int argc, char** argv, const std::string& name, int64_t* out) {
  if (auto v = Lookup(argc, argv, name)) *out = std::stoll(*v);
}

std::filesystem::path SelfDir() {
  return std::filesystem::read_symlink("/proc/self/exe").parent_path();
}

Options ParseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) o.quick = 1;
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::printf(
          "usage: bench_transport [--quick] [--name=value ...]; names: rows batch "
          "dense_floats dense_row_dim rounds sparse_iters dense_iters rtt_iters "
          "populate_batch breakdown server_prefix phalanx config optimizer checksum "
          "part_bytes set (also "
          "PHX_BENCH_<NAME>)\n");
      std::exit(0);
    }
  }
  ReadInt(argc, argv, "quick", &o.quick);
  if (o.quick) {
    // Small enough for < 30 s including start-up, large enough that the
    // table does not fit in cache.
    o.rows = 1'000'000;
    o.rounds = 3;
    o.sparse_iters = 8;
    o.dense_iters = 3;
    o.rtt_iters = 500;
  }
  ReadInt(argc, argv, "rows", &o.rows);
  ReadInt(argc, argv, "batch", &o.batch);
  ReadInt(argc, argv, "dense_floats", &o.dense_floats);
  ReadInt(argc, argv, "dense_row_dim", &o.dense_row_dim);
  ReadInt(argc, argv, "rounds", &o.rounds);
  ReadInt(argc, argv, "sparse_iters", &o.sparse_iters);
  ReadInt(argc, argv, "dense_iters", &o.dense_iters);
  ReadInt(argc, argv, "rtt_iters", &o.rtt_iters);
  ReadInt(argc, argv, "populate_batch", &o.populate_batch);
  ReadInt(argc, argv, "breakdown", &o.breakdown);
  ReadInt(argc, argv, "part_bytes", &o.part_bytes);
  o.batch = std::min(o.batch, o.rows);
  if (auto v = Lookup(argc, argv, "server_prefix")) o.server_prefix = *v;
  if (auto v = Lookup(argc, argv, "optimizer")) o.optimizer = *v;
  if (auto v = Lookup(argc, argv, "checksum")) o.checksum = *v;
  if (auto v = Lookup(argc, argv, "set")) o.set = *v;
  if (auto v = Lookup(argc, argv, "phalanx")) {
    o.phalanx = *v;
  } else if (const char* dir = std::getenv("PHX_BINARY_DIR")) {
    o.phalanx = std::string(dir) + "/phalanx";
  } else {
    o.phalanx = (SelfDir().parent_path() / "phalanx").string();  // <build>/bench/..
  }
  if (auto v = Lookup(argc, argv, "config")) {
    o.config = *v;
  } else {
    // The source tree is the build directory's parent in this project's
    // layout (build*/ sits next to launch/).
    o.config = (std::filesystem::path(o.phalanx).parent_path().parent_path() / "launch" /
                "configs" / "fashion-mnist-softmax.toml")
                   .string();
  }
  return o;
}

// ---------------------------------------------------------------------------
// Child processes

// Pids of the running children, so a failure can kill them before exiting.
std::vector<pid_t> g_children;

// Exits at once after killing the children. std::exit would run static
// destructors, and ZeroMQ's context destructor blocks on the Client's open
// sockets, hanging the run.
[[noreturn]] void Die() {
  for (pid_t p : g_children) kill(p, SIGKILL);
  std::fflush(stdout);
  _exit(1);
}

// A child process with its stdout on a pipe; killed when destroyed.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { Stop(); }

  bool Start(const std::vector<std::string>& args, const std::string& log_path) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return false;
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a killed bench
      dup2(fds[1], 1);
      int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (log >= 0) dup2(log, 2);
      std::vector<char*> argv;
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execvp(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    fd_ = fds[0];
    if (pid_ > 0) g_children.push_back(pid_);
    return pid_ > 0;
  }

  // Reads stdout lines until one starts with `prefix`; returns the rest.
  std::optional<std::string> WaitFor(const std::string& prefix, int timeout_ms) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (Clock::now() < deadline) {
      auto pos = buf_.find('\n');
      if (pos != std::string::npos) {
        std::string line = buf_.substr(0, pos);
        buf_.erase(0, pos + 1);
        if (line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
        continue;
      }
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char tmp[4096];
      ssize_t n = read(fd_, tmp, sizeof(tmp));
      if (n <= 0) return std::nullopt;
      buf_.append(tmp, static_cast<size_t>(n));
    }
    return std::nullopt;
  }

  // SIGTERM, a grace period for a clean exit (callgrind writes its profile
  // then), then SIGKILL.
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 300; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      usleep(20'000);
    }
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string buf_;
};

std::vector<std::string> SplitWords(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// GET http://127.0.0.1:port/path; returns the body ("" on failure).
std::string HttpGet(int port, const std::string& path) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  timeval tv{5, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(s);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  (void)!write(s, req.data(), req.size());
  std::string resp;
  char buf[8192];
  ssize_t n;
  while ((n = read(s, buf, sizeof(buf))) > 0) resp.append(buf, static_cast<size_t>(n));
  close(s);
  auto pos = resp.find("\r\n\r\n");
  return pos == std::string::npos ? "" : resp.substr(pos + 4);
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

// ---------------------------------------------------------------------------
// Raw ZeroMQ baseline

// Header frame of the raw protocol, the size of Phalanx's encoded header so
// both send the same bytes. The server answers with a header, an empty key
// frame and reply_bytes of values, as a Phalanx server does.
struct RawHeader {
  uint64_t reply_bytes = 0;
  uint64_t quit = 0;
  char pad[48] = {};
};
static_assert(sizeof(RawHeader) == 64);

// The forked child: a plain ROUTER echoing replies of the asked size from one
// buffer it never frees or writes (ZeroMQ may send it zero-copy), so the
// baseline carries no allocation or copy that ZeroMQ itself does not make.
[[noreturn]] void RawServerMain(int port_fd) {
  void* ctx = zmq_ctx_new();
  void* sock = zmq_socket(ctx, ZMQ_ROUTER);
  int64_t max_msg = -1;
  zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max_msg, sizeof(max_msg));
  if (zmq_bind(sock, "tcp://127.0.0.1:*") != 0) _exit(2);
  char ep[256];
  size_t ep_len = sizeof(ep);
  zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, ep, &ep_len);
  int port = std::atoi(std::strrchr(ep, ':') + 1);
  (void)!write(port_fd, &port, sizeof(port));
  close(port_fd);
  std::vector<char> reply;
  while (true) {
    zmq_msg_t id;
    zmq_msg_init(&id);
    if (zmq_msg_recv(&id, sock, 0) < 0) continue;
    RawHeader h;
    bool first = true;
    int more = 1;
    while (more) {
      zmq_msg_t part;
      zmq_msg_init(&part);
      zmq_msg_recv(&part, sock, 0);
      if (first && zmq_msg_size(&part) == sizeof(RawHeader)) {
        std::memcpy(&h, zmq_msg_data(&part), sizeof(h));
      }
      first = false;
      more = zmq_msg_more(&part);
      zmq_msg_close(&part);
    }
    if (h.quit) _exit(0);
    if (reply.size() < h.reply_bytes) reply.assign(h.reply_bytes, 1);
    zmq_msg_send(&id, sock, ZMQ_SNDMORE);
    zmq_send(sock, &h, sizeof(h), ZMQ_SNDMORE);
    zmq_send(sock, nullptr, 0, ZMQ_SNDMORE);
    zmq_msg_t values;
    zmq_msg_init_data(&values, reply.data(), h.reply_bytes, nullptr, nullptr);
    zmq_msg_send(&values, sock, 0);
  }
}

// The parent's side: a DEALER sending [header, keys, values] and waiting for
// the reply, with payload frames sent zero-copy from caller-owned buffers
// (safe: one request in flight, the buffers outlive it).
class RawClient {
 public:
  explicit RawClient(int port) {
    ctx_ = zmq_ctx_new();
    sock_ = zmq_socket(ctx_, ZMQ_DEALER);
    int64_t max_msg = -1;
    zmq_setsockopt(sock_, ZMQ_MAXMSGSIZE, &max_msg, sizeof(max_msg));
    int linger = 0;
    zmq_setsockopt(sock_, ZMQ_LINGER, &linger, sizeof(linger));
    std::string ep = "tcp://127.0.0.1:" + std::to_string(port);
    zmq_connect(sock_, ep.c_str());
  }
  double last_send_s = 0;  // time spent in the send calls of the last Call

  ~RawClient() {
    zmq_close(sock_);
    zmq_ctx_term(ctx_);
  }

  // A request split into parts of at most part_rows rows, as Client splits
  // it (max_part_bytes): every part is sent at once, then every reply is
  // received. values (push) or reply (pull) rows are row_bytes each.
  void CallParts(const uint64_t* keys, size_t n, const void* values, size_t row_bytes, bool pull,
                 size_t part_rows) {
    size_t parts = 0;
    for (size_t off = 0; off < n; off += part_rows) {
      const size_t rows = std::min(part_rows, n - off);
      RawHeader h;
      h.reply_bytes = pull ? rows * row_bytes : 0;
      zmq_send(sock_, &h, sizeof(h), ZMQ_SNDMORE);
      SendFrame(keys + off, rows * sizeof(uint64_t), ZMQ_SNDMORE);
      SendFrame(pull ? nullptr : static_cast<const char*>(values) + off * row_bytes,
                pull ? 0 : rows * row_bytes, 0);
      ++parts;
    }
    for (size_t p = 0; p < parts; ++p) {
      int more = 1;
      while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        zmq_msg_recv(&part, sock_, 0);
        more = zmq_msg_more(&part);
        zmq_msg_close(&part);
      }
    }
  }

  // One request/reply; returns the reply's value bytes.
  size_t Call(const void* keys, size_t key_bytes, const void* values, size_t value_bytes,
              size_t reply_bytes, bool quit = false) {
    RawHeader h;
    h.reply_bytes = reply_bytes;
    h.quit = quit ? 1 : 0;
    auto t0 = Clock::now();
    zmq_send(sock_, &h, sizeof(h), ZMQ_SNDMORE);
    SendFrame(keys, key_bytes, ZMQ_SNDMORE);
    SendFrame(values, value_bytes, 0);
    last_send_s = Seconds(t0, Clock::now());
    if (quit) return 0;
    size_t got = 0;
    int more = 1;
    int index = 0;
    while (more) {
      zmq_msg_t part;
      zmq_msg_init(&part);
      zmq_msg_recv(&part, sock_, 0);
      if (index++ == 2) got = zmq_msg_size(&part);
      more = zmq_msg_more(&part);
      zmq_msg_close(&part);
    }
    return got;
  }

 private:
  void SendFrame(const void* data, size_t bytes, int flags) {
    if (bytes < 64) {
      zmq_send(sock_, data, bytes, flags);  // what Phalanx does with small frames
      return;
    }
    zmq_msg_t m;
    zmq_msg_init_data(&m, const_cast<void*>(data), bytes, nullptr, nullptr);
    zmq_msg_send(&m, sock_, flags);
  }

  void* ctx_ = nullptr;
  void* sock_ = nullptr;
};

// ---------------------------------------------------------------------------
// Measurement helpers

struct Samples {
  std::vector<double> seconds;
  void Add(double s) { seconds.push_back(s); }
  double Quantile(double q) const {
    if (seconds.empty()) return NAN;
    std::vector<double> v = seconds;
    size_t k = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
    std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
    return v[k];
  }
  double Median() const { return Quantile(0.5); }
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

struct Row {
  std::string op;
  std::string phx;
  std::string raw;
  double ratio;
  std::string target;
  bool pass;
};

std::string Fmt(const char* fmt, double a, double b = 0, double c = 0) {
  char buf[128];
  std::snprintf(buf, sizeof(buf), fmt, a, b, c);
  return buf;
}

// A throughput row: ratio = phalanx throughput / raw throughput.
Row ThroughputRow(const std::string& op, const Samples& phx, const Samples& raw, double bytes,
                  double keys) {
  double tp = phx.Median();
  double tr = raw.Median();
  Row r;
  r.op = op;
  r.phx = Fmt("%7.2f ms %5.2f GB/s %6.1f Mk/s", tp * 1e3, bytes / tp / 1e9, keys / tp / 1e6);
  r.raw = Fmt("%7.2f ms %5.2f GB/s", tr * 1e3, bytes / tr / 1e9);
  r.ratio = tr / tp;
  r.target = ">= 0.50x";
  r.pass = r.ratio >= 0.5;
  return r;
}

// A latency row: ratio = phalanx time / raw time.
Row LatencyRow(const std::string& op, double phx_s, double raw_s) {
  Row r;
  r.op = op;
  r.phx = Fmt("%8.1f us", phx_s * 1e6);
  r.raw = Fmt("%8.1f us", raw_s * 1e6);
  r.ratio = phx_s / raw_s;
  r.target = "<= 1.20x";
  r.pass = r.ratio <= 1.2;
  return r;
}

void PrintTable(const std::vector<Row>& rows) {
  std::printf("\n%-38s | %-36s | %-23s | %6s | %-8s | %s\n", "operation", "phalanx (median per op)",
              "raw zeromq (median)", "ratio", "target", "result");
  std::printf("%s\n", std::string(130, '-').c_str());
  for (const auto& r : rows) {
    std::printf("%-38s | %-36s | %-23s | %5.2fx | %-8s | %s\n", r.op.c_str(), r.phx.c_str(),
                r.raw.c_str(), r.ratio, r.target.c_str(), r.pass ? "PASS" : "FAIL");
  }
  std::fflush(stdout);
}

void Check(const phalanx::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "bench_transport: %s failed: %s\n", what, s.ToString().c_str());
    Die();
  }
}

// ---------------------------------------------------------------------------
// In-process breakdown: the pieces of the Phalanx pipeline at the benchmark's
// sizes, timed alone. They say where the end-to-end time goes without a
// profiler (perf has no counters on this VM).

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

// The server's optimizer: --optimizer, else the config's (Adam).
phalanx::ps::OptimizerKind ServerOptimizerKind(const Options& o) {
  if (o.optimizer == "sgd") return phalanx::ps::OptimizerKind::kSgd;
  if (o.optimizer == "adagrad") return phalanx::ps::OptimizerKind::kAdagrad;
  return phalanx::ps::OptimizerKind::kAdam;
}

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
  phalanx::ps::internal::MappedRegion region;
  if (!region.Reserve(rows * kRowFloats * sizeof(float))) return 0;
  auto* flat = reinterpret_cast<float*>(region.data());
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

void Breakdown(const Options& o, phalanx::worker::Client& client,
               const std::vector<uint64_t>& keys) {
  using phalanx::Buffer;
  const size_t nk = keys.size();
  std::vector<float> vals(nk * 16, 0.5f);
  Buffer kb = Buffer::Copy(keys.data(), keys.size() * 8);
  Buffer vb = Buffer::Copy(vals.data(), vals.size() * 4);
  const size_t dense_bytes = static_cast<size_t>(o.dense_floats) * 4;
  std::vector<float> dense(static_cast<size_t>(o.dense_floats), 0.5f);
  Buffer db = Buffer::Copy(dense.data(), dense_bytes);
  volatile uint64_t sink = 0;

  struct Item {
    std::string what;
    double seconds;
    std::string where;
  };
  std::vector<Item> items;
  auto add = [&](const std::string& w, double s, const std::string& where) {
    items.push_back({w, s, where});
  };
  const std::string nks = std::to_string(nk / 1000) + "k";

  add("XXH3 checksum, " + nks + " keys (800 KB)",
      TimeBest(5, [&] { sink = sink + phalanx::PayloadChecksum(kb, Buffer()); }),
      "only with checksums on (ChecksumMode): once per side");
  add("XXH3 checksum, keys+values (7.2 MB)",
      TimeBest(5, [&] { sink = sink + phalanx::PayloadChecksum(kb, vb); }),
      "push: client makes it, server verifies it");
  add("XXH3 checksum, 6.4 MB values",
      TimeBest(5, [&] { sink = sink + phalanx::PayloadChecksum(Buffer(), vb); }),
      "pull reply: server makes it, client verifies it");
  add("XXH3 checksum, dense 40 MB",
      TimeBest(3, [&] { sink = sink + phalanx::PayloadChecksum(Buffer(), db); }),
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
                   if (phalanx::SlotOfKey(keys[i], 1024) < 2048) {
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
    phalanx::Header h;
    h.type = phalanx::MsgType::kPull;
    const int reps = 20000;
    double s = TimeBest(3, [&] {
      for (int i = 0; i < reps; ++i) {
        std::string e = phalanx::EncodeHeader(h);
        auto d = phalanx::DecodeHeader(e.data(), e.size());
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
      for (int i = 0; i < reps; ++i) sink = sink + phalanx::PayloadChecksum(one, Buffer());
    });
    add("PayloadChecksum of 8 bytes (one-shot XXH3)", s / reps,
        "message.cc: no state allocation any more");
  }

  {
    // The server's table, in this process: what Lookup/Apply alone cost for
    // one request, to set against the server's handler time. Same options as
    // the server's embedding table (Adam, 8 partitions); at most 1M rows
    // (196 MB with Adam state), still far beyond the effective L3.
    phalanx::ps::TableOptions to;
    to.dim = 16;
    to.optimizer.kind = ServerOptimizerKind(o);
    const std::string opt_name = o.optimizer.empty() ? "adam" : o.optimizer;
    to.optimizer.learning_rate = 0.002f;
    const size_t t_rows = static_cast<size_t>(std::min<int64_t>(o.rows, 1'000'000));
    for (bool serial : {false, true}) {
      // The server fans updates of >= 4096 keys out over TBB (lookups only
      // from 262144); both variants show what that buys or costs on 2 cores.
      to.parallel_min_update = to.parallel_min_lookup = serial ? SIZE_MAX : 4096;
      auto table = phalanx::ps::EmbeddingTable::Create(to);
      if (!table.ok()) continue;
      auto& t = **table;
      const std::string mode = serial ? "serial" : "TBB";
      std::vector<uint64_t> all(t_rows);
      std::iota(all.begin(), all.end(), 0);
      std::vector<float> tmp(t_rows * 16);
      auto t0 = Clock::now();
      t.Lookup(all, tmp.data());
      add("table first touch, " + std::to_string(t_rows / 1000) + "k rows, " + mode,
          Seconds(t0, Clock::now()), "compare: the populate line at the top");
      std::mt19937_64 rng(5);
      std::shuffle(all.begin(), all.end(), rng);
      std::vector<uint64_t> tk(all.begin(), all.begin() + static_cast<long>(std::min(nk, t_rows)));
      std::vector<float> tout(tk.size() * 16);
      std::vector<float> tg(tk.size() * 16, 1e-4f);
      const std::string tks = std::to_string(tk.size() / 1000) + "k";
      add("table Lookup, " + tks + " random rows, " + mode,
          TimeBest(5, [&] { t.Lookup(tk, tout.data()); }),
          "server.cc AnswerPull: the necessary work");
      add("table Apply (" + opt_name + "), " + tks + " random rows, " + mode,
          TimeBest(5, [&] { t.Apply(tk, tg.data()); }), "server.cc HandlePush: the necessary work");
    }
  }

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

}  // namespace

int main(int argc, char** argv) {
  // Fork the raw ZeroMQ server before this process starts any thread (ZeroMQ,
  // TBB, the membership heartbeat): fork copies only the calling thread.
  int port_pipe[2];
  if (pipe(port_pipe) != 0) return 1;
  pid_t raw_pid = fork();
  if (raw_pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(port_pipe[0]);
    RawServerMain(port_pipe[1]);
  }
  close(port_pipe[1]);
  g_children.push_back(raw_pid);
  int raw_port = 0;
  if (read(port_pipe[0], &raw_port, sizeof(raw_port)) != sizeof(raw_port)) {
    std::fprintf(stderr, "raw zeromq server did not start\n");
    return 1;
  }
  close(port_pipe[0]);

  Options o = ParseOptions(argc, argv);
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

  // --- Start the Phalanx scheduler and server.
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
  Child scheduler;
  auto sargs = args_for("scheduler");
  sargs.insert(sargs.end(), {"--port", "0"});
  if (!scheduler.Start(sargs, "/tmp/phx_bench_transport_scheduler.log")) return 1;
  auto endpoint = scheduler.WaitFor("PHX_ENDPOINT ", 20000);
  if (!endpoint) {
    std::fprintf(stderr, "scheduler did not start; see /tmp/phx_bench_transport_scheduler.log\n");
    return 1;
  }
  Child server;
  std::vector<std::string> vargs = SplitWords(o.server_prefix);
  auto a = args_for("server");
  a.insert(a.end(), {"--scheduler", *endpoint, "--rank", "0"});
  vargs.insert(vargs.end(), a.begin(), a.end());
  if (!server.Start(vargs, "/tmp/phx_bench_transport_server.log")) return 1;

  phalanx::worker::ClientOptions co;
  co.scheduler_endpoint = *endpoint;
  co.max_part_bytes = static_cast<size_t>(o.part_bytes);
  co.split_pushes = true;  // the server runs async
  // Rows per part for rows of `row_floats` floats, as the client computes it.
  auto part_rows = [&](size_t row_floats) -> size_t {
    if (o.part_bytes <= 0) return SIZE_MAX;
    return std::max<size_t>(1, static_cast<size_t>(o.part_bytes) / (row_floats * 4));
  };
  // Messages one request of `rows` rows is split into.
  auto parts_of = [&](int64_t rows, size_t row_floats) -> double {
    const size_t per = part_rows(row_floats);
    return per == SIZE_MAX ? 1.0 : static_cast<double>((static_cast<size_t>(rows) + per - 1) / per);
  };
  if (o.checksum == "always") {
    co.checksum = phalanx::ChecksumMode::kAlways;
  } else if (o.checksum == "never") {
    co.checksum = phalanx::ChecksumMode::kNever;
  } else if (o.checksum != "auto") {
    std::fprintf(stderr, "checksum must be auto, always or never\n");
    Die();
  }
  auto created = phalanx::worker::Client::Create(co);
  Check(created.status(), "Client::Create");
  auto client = std::move(created).value();
  const int server_http = client->view().servers.at(0).http_port;

  // Median time of the client's *Async call alone (routing, dedup, copies,
  // checksum, encode, hand-off to ZeroMQ); the Wait that follows is untimed.
  auto send_side = [&](int iters, const std::function<uint64_t(int)>& start) {
    Samples s;
    for (int i = 0; i < iters; ++i) {
      auto t0 = Clock::now();
      uint64_t id = start(i);
      s.Add(Seconds(t0, Clock::now()));
      Check(client->Wait(id), "wait");
    }
    return s.Median();
  };
  auto ok = [](phalanx::Result<uint64_t> r) {
    Check(r.status(), "async start");
    return *r;
  };

  constexpr uint32_t kDense = 0;
  constexpr uint32_t kEmb = 1;
  constexpr uint32_t kDim = 16;
  RawClient raw(raw_port);
  std::vector<Row> rows;
  // Per case: the Phalanx median next to the server's mean handler time, so
  // the rest (client + transport + wake-ups) is visible too.
  std::vector<std::string> notes;
  struct SparseCase {
    std::string op;
    double phx_s, raw_s, server_s;
    int lines_per_row;  // random cache lines the table must touch per key
  };
  std::vector<SparseCase> sparse_cases;  // for the memory floor printed at the end
  // Lines per key: the index entry and the 64-byte weights; a push also
  // rewrites the optimizer's state (Adam: 132 bytes, 3 lines).
  constexpr int kPullLines = 2;
  phalanx::ps::OptimizerOptions bench_opt;
  bench_opt.kind = ServerOptimizerKind(o);
  const size_t state_bytes = phalanx::ps::OptimizerStateFloats(bench_opt, kDim) * sizeof(float);
  const int push_lines = kPullLines + static_cast<int>((state_bytes + 63) / 64);
  auto note = [&](const std::string& op, double phx_s, double raw_s, double server_s,
                  double send_s) {
    char buf[320];
    std::snprintf(buf, sizeof(buf),
                  "%-38s phalanx %8.3f ms = client send %8.3f + server handler %8.3f + rest %8.3f"
                  " ms (raw zeromq %8.3f ms)",
                  op.c_str(), phx_s * 1e3, send_s * 1e3, server_s * 1e3,
                  (phx_s - server_s - send_s) * 1e3, raw_s * 1e3);
    notes.push_back(buf);
    // Progress while the run goes on; the table comes at the end.
    std::printf("done: %s\n", buf);
    std::fflush(stdout);
  };

  // --- Populate: first touch of every embedding row, timed.
  {
    std::vector<uint64_t> keys;
    std::vector<float> out;
    auto t0 = Clock::now();
    for (int64_t b = 0; b < o.rows; b += o.populate_batch) {
      int64_t e = std::min(o.rows, b + o.populate_batch);
      keys.resize(static_cast<size_t>(e - b));
      std::iota(keys.begin(), keys.end(), static_cast<uint64_t>(b));
      out.resize(keys.size() * kDim);
      Check(client->Pull(kEmb, keys, kDim, 0, out.data(), nullptr, true), "populate pull");
    }
    double s = Seconds(t0, Clock::now());
    std::printf("populated %lld rows x %u floats in %.2f s (%.1f M rows/s, batches of %lld)\n",
                (long long)o.rows, kDim, s, static_cast<double>(o.rows) / s / 1e6,
                (long long)o.populate_batch);
    std::fflush(stdout);
  }

  // --- (1) Sparse: batch random distinct keys x 16 floats.
  const size_t nb = static_cast<size_t>(o.batch);
  constexpr int kKeySets = 8;  // distinct key sets, cycled, so no request hits a warm cache
  std::vector<std::vector<uint64_t>> key_sets(kKeySets);
  {
    std::vector<uint64_t> perm(static_cast<size_t>(o.rows));
    std::iota(perm.begin(), perm.end(), 0);
    std::mt19937_64 rng(42);
    for (auto& ks : key_sets) {
      // Partial Fisher-Yates: nb distinct keys from [0, rows).
      for (size_t i = 0; i < nb; ++i) {
        std::uniform_int_distribution<size_t> d(i, perm.size() - 1);
        std::swap(perm[i], perm[d(rng)]);
      }
      ks.assign(perm.begin(), perm.begin() + static_cast<long>(nb));
    }
  }
  std::vector<float> out(nb * kDim);
  std::vector<float> grads(nb * kDim, 1e-4f);
  const double sparse_bytes_pull = static_cast<double>(nb) * (8 + kDim * 4);
  {
    Samples rs, ps;
    ServerTimes before = ServerTimes::Read(server_http);
    Alternate(
        o.rounds, o.sparse_iters,
        [&](int64_t i) {
          raw.CallParts(key_sets[i % kKeySets].data(), nb, nullptr, kDim * 4, true,
                        part_rows(kDim));
        },
        [&](int64_t i) {
          Check(client->Pull(kEmb, key_sets[i % kKeySets], kDim, 0, out.data(), nullptr, true),
                "sparse pull");
        },
        &rs, &ps);
    rows.push_back(ThroughputRow("pull " + std::to_string(nb / 1000) + "k keys x 16 f", ps, rs,
                                 sparse_bytes_pull, static_cast<double>(nb)));
    // The histogram is per message: a request of several parts costs their sum.
    const double server_s = ServerTimes::Read(server_http).MeanPull(before) * parts_of(nb, kDim);
    sparse_cases.push_back({rows.back().op, ps.Median(), rs.Median(), server_s, kPullLines});
    note(rows.back().op, ps.Median(), rs.Median(), server_s, send_side(5, [&](int i) {
           return ok(client->PullAsync(kEmb, key_sets[i % kKeySets], kDim, 0, out.data(), true));
         }));
  }
  {
    Samples rs, ps;
    ServerTimes before = ServerTimes::Read(server_http);
    Alternate(
        o.rounds, o.sparse_iters,
        [&](int64_t i) {
          raw.CallParts(key_sets[i % kKeySets].data(), nb, grads.data(), kDim * 4, false,
                        part_rows(kDim));
        },
        [&](int64_t i) {
          Check(client->Push(kEmb, key_sets[i % kKeySets], kDim, grads.data(), 0, false),
                "sparse push");
        },
        &rs, &ps);
    rows.push_back(ThroughputRow("push " + std::to_string(nb / 1000) + "k keys x 16 f", ps, rs,
                                 sparse_bytes_pull, static_cast<double>(nb)));
    const double server_s = ServerTimes::Read(server_http).MeanPush(before) * parts_of(nb, kDim);
    sparse_cases.push_back({rows.back().op, ps.Median(), rs.Median(), server_s, push_lines});
    note(rows.back().op, ps.Median(), rs.Median(), server_s, send_side(5, [&](int i) {
           return ok(client->PushAsync(kEmb, key_sets[i % kKeySets], kDim, grads.data(), 0, false));
         }));
    notes.back() += Fmt(" [client send with keys_unique %.3f ms]",
                        send_side(5, [&](int i) {
                          return ok(client->PushAsync(kEmb, key_sets[i % kKeySets], kDim,
                                                      grads.data(), 0, false, true));
                        }) * 1e3);
  }
  // --- (2) Dense: one block of dense_floats as dense_keys rows.
  {
    std::vector<uint64_t> dkeys(static_cast<size_t>(dense_keys));
    std::iota(dkeys.begin(), dkeys.end(), 0);
    std::vector<float> dout(static_cast<size_t>(dense_floats));
    std::vector<float> dgrad(static_cast<size_t>(dense_floats), 1e-4f);
    const double dbytes =
        static_cast<double>(dense_floats) * 4 + static_cast<double>(dense_keys) * 8;
    const uint32_t ddim = static_cast<uint32_t>(o.dense_row_dim);
    // First touch of the dense rows, outside the timing.
    Check(client->Pull(kDense, dkeys, ddim, 0, dout.data(), nullptr, true), "dense populate");
    const std::string name = std::to_string(dense_floats / 1'000'000) + "M floats (" +
                             std::to_string(dense_keys) + " x " + std::to_string(ddim) + ")";
    Samples rs, ps;
    ServerTimes before = ServerTimes::Read(server_http);
    Alternate(
        o.rounds, o.dense_iters,
        [&](int64_t) {
          raw.CallParts(dkeys.data(), dkeys.size(), nullptr, ddim * 4, true, part_rows(ddim));
        },
        [&](int64_t) {
          Check(client->Pull(kDense, dkeys, ddim, 0, dout.data(), nullptr, true), "dense pull");
        },
        &rs, &ps);
    rows.push_back(
        ThroughputRow("dense pull " + name, ps, rs, dbytes, static_cast<double>(dense_keys)));
    const double pull_server_s =
        ServerTimes::Read(server_http).MeanPull(before) * parts_of(dense_keys, ddim);
    note(rows.back().op, ps.Median(), rs.Median(), pull_server_s, send_side(3, [&](int) {
           return ok(client->PullAsync(kDense, dkeys, ddim, 0, dout.data(), true));
         }));
    Samples rs2, ps2;
    before = ServerTimes::Read(server_http);
    Alternate(
        o.rounds, o.dense_iters,
        [&](int64_t) {
          raw.CallParts(dkeys.data(), dkeys.size(), dgrad.data(), ddim * 4, false, part_rows(ddim));
        },
        [&](int64_t) {
          Check(client->Push(kDense, dkeys, ddim, dgrad.data(), 0, false), "dense push");
        },
        &rs2, &ps2);
    rows.push_back(
        ThroughputRow("dense push " + name, ps2, rs2, dbytes, static_cast<double>(dense_keys)));
    const double push_server_s =
        ServerTimes::Read(server_http).MeanPush(before) * parts_of(dense_keys, ddim);
    note(rows.back().op, ps2.Median(), rs2.Median(), push_server_s, send_side(3, [&](int) {
           return ok(client->PushAsync(kDense, dkeys, ddim, dgrad.data(), 0, false));
         }));
  }
  // --- (3) Round trip of a 1-key pull (64 B of values back).
  double rtt_send = 0;
  double raw_send_side = 0;
  {
    Samples rs, ps;
    ServerTimes before = ServerTimes::Read(server_http);
    uint64_t key = 77;
    float one[kDim];
    Alternate(
        o.rounds, o.rtt_iters, [&](int64_t) { raw.Call(&key, 8, nullptr, 0, kDim * 4); },
        [&](int64_t i) {
          key = static_cast<uint64_t>(i) % static_cast<uint64_t>(o.rows);
          Check(client->Pull(kEmb, {&key, 1}, kDim, 0, one, nullptr, true), "1-key pull");
        },
        &rs, &ps);
    rows.push_back(LatencyRow("1-key pull round trip, median", ps.Median(), rs.Median()));
    Samples raw_send;
    for (int i = 0; i < 2000; ++i) {
      raw.Call(&key, 8, nullptr, 0, kDim * 4);
      raw_send.Add(raw.last_send_s);
    }
    raw_send_side = raw_send.Median();
    rows.push_back(LatencyRow("1-key pull round trip, p99", ps.Quantile(0.99), rs.Quantile(0.99)));
    note("1-key pull round trip, median", ps.Median(), rs.Median(),
         ServerTimes::Read(server_http).MeanPull(before), 0);
    // How much of the round trip is the client's own send path.
    Samples send;
    for (int i = 0; i < 2000; ++i) {
      auto t0 = Clock::now();
      auto id = client->PullAsync(kEmb, {&key, 1}, kDim, 0, one, true);
      send.Add(Seconds(t0, Clock::now()));
      Check(client->Wait(*id), "1-key pull wait");
    }
    rtt_send = send.Median();
    notes.back() += Fmt(" [client send %.1f us]", rtt_send * 1e6);
  }

  std::printf(
      "\nwhere the Phalanx time goes (server handler = mean of the server's own "
      "pull/push histogram over the case times the parts per request; with parts it "
      "overlaps the transfer, so 'rest' can be below the raw time; client send = the *Async call "
      "alone, timed in a "
      "separate short loop, so the parts need not sum exactly on a noisy machine):\n");
  for (const auto& n : notes) std::printf("%s\n", n.c_str());
  std::printf(
      "send side of a 1-key pull: Client::PullAsync median %.1f us; raw zmq_send of the "
      "same 3 frames median %.1f us\n",
      rtt_send * 1e6, raw_send_side * 1e6);
  std::fflush(stdout);

  {
    auto ps = phalanx::BufferPool::Global().stats();
    std::printf(
        "client payload pool: %llu hits, %llu misses (fresh blocks), %zu blocks / %.1f MB cached\n",
        (unsigned long long)ps.hits, (unsigned long long)ps.misses, ps.cached_blocks,
        static_cast<double>(ps.cached_bytes) / 1e6);
  }
  if (o.breakdown) Breakdown(o, *client, key_sets[0]);

  // --- Shut down: the raw child by message, the Phalanx processes by signal.
  raw.Call(nullptr, 0, nullptr, 0, 0, /*quit=*/true);
  waitpid(raw_pid, nullptr, 0);
  client->Leave();
  client.reset();
  server.Stop();
  scheduler.Stop();
  PrintTable(rows);
  // Measured with the cluster stopped, so nothing else touches memory.
  const double gather_s = GatherFloorSeconds(static_cast<size_t>(o.rows), nb);
  if (gather_s > 0) {
    std::printf(
        "\nmemory floor of a sparse request here: %zu random 64-byte rows gathered from %lld "
        "(2 MiB pages, prefetched) in %.2f ms = %.1f M lines/s. A hash table touches at least "
        "the key's index entry and its row (a push also the optimizer state) at random:\n",
        nb, (long long)o.rows, gather_s * 1e3, static_cast<double>(nb) / gather_s / 1e6);
    for (const auto& c : sparse_cases) {
      const double floor_s = c.lines_per_row * gather_s;
      std::printf(
          "  %-28s %d lines/key: floor %.2f ms; raw %.2f ms + floor -> best ratio without "
          "overlap %.2fx (measured %.2fx; server handler %.2f ms = %.1fx the floor)\n",
          c.op.c_str(), c.lines_per_row, floor_s * 1e3, c.raw_s * 1e3,
          c.raw_s / (c.raw_s + floor_s), c.raw_s / c.phx_s, c.server_s * 1e3, c.server_s / floor_s);
    }
  }
  bool all = std::all_of(rows.begin(), rows.end(), [](const Row& r) { return r.pass; });
  std::printf("\noverall: %s\n", all ? "PASS" : "FAIL (see rows above)");
  return 0;
}
