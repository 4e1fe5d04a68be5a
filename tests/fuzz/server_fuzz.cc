// Fuzz target: a live parameter-server shard (ps/server.h) behind its real
// ROUTER socket, with a real scheduler and one registered worker, all in this
// process. Input: one flag byte, then chunks (fuzz_util.h), one per frame of
// the message sent to the server. With flag bit 0 set and a 64-byte first
// frame, the harness writes the registered worker's node id into the header's
// sender field, so mutations get past the "unknown sender" check into the
// pull, push, round and honest-peek handling. After each message the harness
// sends a probe pull and waits for its answer (replies to the fuzzed message
// are drained before it): the server must keep serving, and the probed rows
// must stay finite. Synchronous mode, mean rule, honest peeks on (the one
// worker is rank 0, listed as Byzantine), tables 0 and 1 of dim 4.

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/membership.h"
#include "common/message.h"
#include "common/transport.h"
#include "ps/server.h"
#include "scheduler/scheduler.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/live_nodes.h"

namespace {

using phalanx::fuzz::Violated;
namespace px = phalanx;

constexpr uint32_t kDim = 4;
constexpr uint64_t kProbeRequest = 0xfeedf00dULL;

// Owns the cluster. A function-local static made after ZeroMQ's context, so
// it stops its threads and closes its sockets before the context terminates.
class Cluster {
 public:
  Cluster() : scheduler_(Options()) {
    // The worker first: Server::Create returns once the cluster has formed.
    px::MembershipOptions mo;
    mo.scheduler_endpoint = scheduler_.endpoint();
    mo.self.role = px::Role::kWorker;
    mo.self.host = "127.0.0.1";
    mo.heartbeat_ms = 100;
    auto worker = px::MembershipClient::Start(mo);
    if (!worker.ok()) Violated("cannot register the worker");
    worker_ = std::move(worker).value();
    px::ps::ServerOptions o;
    o.scheduler_endpoint = scheduler_.endpoint();
    o.synchronous = true;
    o.round_timeout_ms = 60000;
    o.honest_peeks = true;
    o.byzantine_ranks = {0};
    for (uint32_t t = 0; t < 2; ++t) {
      px::ps::TableOptions table;
      table.table_id = t;
      table.dim = kDim;
      o.tables.push_back(table);
    }
    o.limits.max_keys = 1 << 16;
    o.limits.max_values = 1 << 18;
    auto server = px::ps::Server::Create(o);
    if (!server.ok()) Violated("cannot start the server");
    server_ = std::move(server).value();
    server_thread_ = std::thread([this] { (void)server_->Run(&stop_); });

    // The server learns of the worker from its own view; wait for a probe.
    auto dealer = px::Socket::Connect(px::Socket::Kind::kDealer,
                                      px::TcpEndpoint("127.0.0.1", server_->port()));
    if (!dealer.ok()) Violated("cannot connect to the server");
    dealer_ = std::move(dealer).value();
    for (int i = 0; i < 100 && !Probe(false); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!Probe(false)) Violated("the server never answered a valid pull");
  }

  ~Cluster() {
    stop_ = true;
    dealer_.reset();
    if (server_thread_.joinable()) server_thread_.join();
  }

  int32_t worker_id() const { return worker_->node_id(); }
  px::Socket& dealer() { return *dealer_; }

  // Pulls two rows of table 1 at version 0 (always answerable) and waits
  // for that reply, dropping the replies before it. False on no answer or a
  // refusal; a non-finite row is a violation.
  bool Probe(bool must_answer) {
    const uint64_t keys[2] = {1, 12345};
    auto msg = px::MakeDataMessage(px::MsgType::kPull, worker_id(), kProbeRequest, 0, 1, kDim,
                                   px::Buffer::Copy(keys, sizeof(keys)), px::Buffer(), false);
    if (!dealer_->Send(msg).ok()) Violated("cannot send the probe");
    auto r = px::fuzz::ReceiveWithin(*dealer_, std::chrono::seconds(20), [](const auto& m) {
      return m.status.ok() && m.msg.header.request_id == kProbeRequest;
    });
    if (!r) {
      if (must_answer) Violated("the server stopped answering (no probe reply within 20 s)");
      return false;
    }
    if (r->msg.header.type != px::MsgType::kPullResponse) {
      if (must_answer) Violated("the server refused the probe pull");
      return false;
    }
    if (r->msg.value_span().size() != size_t{2} * kDim) Violated("probe reply of the wrong size");
    for (float v : r->msg.value_span()) {
      if (!std::isfinite(v)) Violated("a table row became non-finite");
    }
    return true;
  }

 private:
  static px::scheduler::SchedulerOptions Options() {
    // Refusals are logged as warnings; at fuzzing rates that is all I/O.
    spdlog::set_level(spdlog::level::critical);
    return {};
  }

  // Destroyed in reverse order: connection, worker, server (stopped and
  // joined in ~Cluster), scheduler.
  px::fuzz::SchedulerThread scheduler_;
  std::atomic<bool> stop_{false};  // the server's
  std::unique_ptr<px::ps::Server> server_;
  std::thread server_thread_;
  std::unique_ptr<px::MembershipClient> worker_;
  std::unique_ptr<px::Socket> dealer_;
};

Cluster& TheCluster() {
  static Cluster cluster;
  return cluster;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > (1 << 16)) return 0;
  Cluster& c = TheCluster();
  px::fuzz::ChunkReader in(data + 1, size - 1);
  std::vector<std::string> frames = in.Chunks(8);
  if (frames.empty()) return 0;
  if ((data[0] & 1) && frames[0].size() == px::kHeaderBytes) {
    const int32_t id = c.worker_id();
    std::memcpy(frames[0].data() + 8, &id, sizeof(id));  // Header::sender
  }
  if (!c.dealer().SendRaw(frames).ok()) Violated("cannot send to the server");
  c.Probe(true);
  return 0;
}
