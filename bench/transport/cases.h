#pragma once
// bench_transport's measured cases: each runs Phalanx (the worker::Client
// against the real server) and the raw ZeroMQ baseline in alternating blocks
// and adds a row to the result table and a note saying where the Phalanx time
// goes. Main thread only; the client and raw client outlive this object.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bench/transport/options.h"
#include "bench/transport/raw_zmq.h"
#include "bench/util/report.h"
#include "common/status.h"
#include "worker/client.h"

namespace phalanx::bench::transport {

class Cases {
 public:
  // server_http: the server's /metrics port.
  Cases(const Options& o, worker::Client& client, RawClient& raw, int server_http);

  // First touch of every embedding row, timed.
  void Populate();
  // (1) Sparse: batch random distinct keys x 16 floats, pull and push.
  void Sparse();
  // (2) Dense: one block of dense_floats as dense_keys rows, pull and push.
  void Dense();
  // (3) Round trip of a 1-key pull (64 B of values back).
  void RoundTrip();
  // Where the Phalanx time goes, the send side, the payload pool.
  void PrintNotes() const;
  // The memory floor of each sparse case, given the floor of one gather.
  void PrintFloor(double gather_s) const;

  const std::vector<Row>& rows() const { return rows_; }
  const std::vector<uint64_t>& first_key_set() const { return key_sets_[0]; }
  size_t batch() const { return nb_; }

 private:
  struct SparseCase {
    std::string op;
    double phx_s, raw_s, server_s;
    int lines_per_row;  // random cache lines the table must touch per key
  };

  // Rows per part for rows of `row_floats` floats, as the client computes it.
  size_t PartRows(size_t row_floats) const;
  // Messages one request of `rows` rows is split into.
  double PartsOf(int64_t rows, size_t row_floats) const;
  // Median time of the client's *Async call alone (routing, dedup, copies,
  // checksum, encode, hand-off to ZeroMQ); the Wait that follows is untimed.
  double SendSide(int iters, const std::function<uint64_t(int)>& start);
  void Note(const std::string& op, double phx_s, double raw_s, double server_s, double send_s);
  void MakeKeySets();
  // A throughput case: what to time on each side and how to report it.
  struct ThroughputCase {
    std::string op;    // the row's and the note's label
    bool pull = true;  // selects the server's pull or push histogram
    const char* what = "";
    int64_t iters = 0;  // timed requests per block
    std::function<void(int64_t)> raw;
    std::function<Status(int64_t)> phx;
    double bytes = 0, keys = 0;  // per request, for the throughput columns
    double parts = 1;            // messages per request
    int send_iters = 0;
    std::function<uint64_t(int)> send;  // starts one *Async request
  };
  struct Measured {
    double phx_s, raw_s, server_s;
  };
  // Runs c (alternating blocks), adds its row and its note.
  Measured RunThroughput(const ThroughputCase& c);
  // One sparse case: pull (true) or push of one key set per request.
  void RunSparse(bool pull);

  const Options& o_;
  worker::Client& client_;
  RawClient& raw_;
  const int server_http_;
  const int64_t dense_keys_;
  const int64_t dense_floats_;  // whole rows
  const size_t nb_;
  int push_lines_ = 0;
  std::vector<std::vector<uint64_t>> key_sets_;
  std::vector<float> out_;
  std::vector<float> grads_;
  double sparse_bytes_pull_ = 0;
  double rtt_send_ = 0;
  double raw_send_side_ = 0;
  std::vector<Row> rows_;
  // Per case: the Phalanx median next to the server's mean handler time, so
  // the rest (client + transport + wake-ups) is visible too.
  std::vector<std::string> notes_;
  std::vector<SparseCase> sparse_cases_;  // for the memory floor printed at the end
};

}  // namespace phalanx::bench::transport
