// Fuzz target: the worker's Client (worker/client.h) receiving hostile or
// corrupt replies. A real scheduler and a fake server (a bare ROUTER socket
// registered as server rank 0) run in this process. Per input the client
// starts a pull or a push of 5 keys (flag bit 0; the pull's keys repeat one,
// bit 1); the fake server takes the request and answers with the fuzzed
// frames (chunks, fuzz_util.h), its header's request id set to the
// request's, then with a valid error for the same request. Wait must return
// either way, and a pull writes only its own output rows (ASan checks the
// guard rows around them stay untouched).

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/membership.h"
#include "common/message.h"
#include "common/transport.h"
#include "scheduler/scheduler.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/live_nodes.h"
#include "worker/client.h"

namespace {

using phalanx::fuzz::Violated;
namespace px = phalanx;

constexpr uint32_t kDim = 4;
constexpr float kGuard = 1234.5f;

// A function-local static made after ZeroMQ's context (see wire_fuzz.cc).
class Harness {
 public:
  Harness() : scheduler_(Options()) {
    auto router = px::Socket::Bind(px::Socket::Kind::kRouter, "tcp://127.0.0.1:0");
    if (!router.ok()) Violated("cannot bind the fake server");
    server_ = std::move(router).value();
    px::MembershipOptions mo;
    mo.scheduler_endpoint = scheduler_.endpoint();
    mo.self.role = px::Role::kServer;
    mo.self.host = "127.0.0.1";
    mo.self.data_port = server_->port();
    auto member = px::MembershipClient::Start(mo);
    if (!member.ok()) Violated("cannot register the fake server");
    server_member_ = std::move(member).value();

    px::worker::ClientOptions co;
    co.scheduler_endpoint = scheduler_.endpoint();
    co.request_timeout_ms = 20000;
    auto client = px::worker::Client::Create(co);
    if (!client.ok()) Violated("cannot create the client");
    client_ = std::move(client).value();
  }
  void Run(bool pull, bool repeats, std::vector<std::string> frames) {
    std::vector<uint64_t> keys = {11, 12, 13, 14, 15};
    if (repeats) keys[3] = 11;
    // Output rows with a guard row on each side.
    std::vector<float> out((keys.size() + 2) * kDim, kGuard);
    std::vector<float> grads(keys.size() * kDim, 0.5f);
    auto id = pull ? client_->PullAsync(1, keys, kDim, 0, out.data() + kDim)
                   : client_->PushAsync(1, keys, kDim, grads.data(), 0, true);
    if (!id.ok()) Violated("the client could not start a request");
    auto req = px::fuzz::ReceiveWithin(*server_, std::chrono::seconds(10),
                                       [](const auto& m) { return !m.peer.empty(); });
    if (!req || !req->status.ok()) Violated("the fake server got no valid request within 10 s");
    const uint64_t wire = req->msg.header.request_id;
    if (frames[0].size() == px::kHeaderBytes) {
      std::memcpy(frames[0].data() + 12, &wire, sizeof(wire));  // Header::request_id
    }
    if (!server_->SendRaw(frames, req->peer).ok()) Violated("the fake server could not reply");
    // Completes the request if the fuzzed reply did not (an answer to a
    // finished request is ignored).
    (void)server_->Send(px::MakeErrorMessage(0, wire, px::Unavailable("fuzz")), req->peer);
    const auto start = std::chrono::steady_clock::now();
    (void)client_->Wait(*id);
    if (std::chrono::steady_clock::now() - start > std::chrono::seconds(10)) {
      Violated("Wait took over 10 s after both replies");
    }
    for (uint32_t c = 0; c < kDim; ++c) {
      if (out[c] != kGuard || out[out.size() - 1 - c] != kGuard) {
        Violated("a pull wrote outside its output rows");
      }
    }
  }

 private:
  static px::scheduler::SchedulerOptions Options() {
    spdlog::set_level(spdlog::level::critical);  // refused replies are logged
    return {};
  }

  // Members stop in reverse order: client, fake server, scheduler.
  px::fuzz::SchedulerThread scheduler_;
  std::unique_ptr<px::Socket> server_;
  std::unique_ptr<px::MembershipClient> server_member_;
  std::unique_ptr<px::worker::Client> client_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > (1 << 16)) return 0;
  static Harness harness;
  px::fuzz::ChunkReader in(data + 1, size - 1);
  std::vector<std::string> frames = in.Chunks(8);
  if (frames.empty()) return 0;
  harness.Run((data[0] & 1) != 0, (data[0] & 2) != 0, std::move(frames));
  return 0;
}
