// Fuzz target: the scheduler (scheduler/scheduler.h) behind its real ROUTER
// socket, in this process. Input: chunks (fuzz_util.h), one per frame of a
// message sent from one connection (registrations, heartbeats, barriers,
// leaves, garbage). After each message the harness sends a probe the
// scheduler always refuses (a pull) and waits for that refusal: the scheduler
// must keep serving, and its /status JSON must stay valid JSON.

#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/message.h"
#include "common/transport.h"
#include "scheduler/scheduler.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/live_nodes.h"

namespace {

using phalanx::fuzz::Violated;
namespace px = phalanx;

constexpr uint64_t kProbeRequest = 0xfeedf00dULL;

// A function-local static made after ZeroMQ's context (see wire_fuzz.cc).
class Harness {
 public:
  Harness() : scheduler_(Options()) {
    auto dealer = px::Socket::Connect(px::Socket::Kind::kDealer, scheduler_.endpoint());
    if (!dealer.ok()) Violated("cannot connect to the scheduler");
    dealer_ = std::move(dealer).value();
  }

  px::Socket& dealer() { return *dealer_; }

  void Probe() {
    auto msg = px::MakeDataMessage(px::MsgType::kPull, -1, kProbeRequest, 0, 0, 1, px::Buffer(),
                                   px::Buffer(), false);
    if (!dealer_->Send(msg).ok()) Violated("cannot send the probe");
    auto refusal = px::fuzz::ReceiveWithin(*dealer_, std::chrono::seconds(20), [](const auto& r) {
      return r.status.ok() && r.msg.header.request_id == kProbeRequest &&
             r.msg.header.type == px::MsgType::kError;
    });
    if (!refusal) Violated("the scheduler stopped answering (no refusal of the probe in 20 s)");
    if (nlohmann::json::parse(scheduler_.StatusJson(), nullptr, false).is_discarded()) {
      Violated("the scheduler's /status is not valid JSON");
    }
  }

 private:
  static px::scheduler::SchedulerOptions Options() {
    spdlog::set_level(spdlog::level::critical);  // refusals are logged
    px::scheduler::SchedulerOptions so;
    so.expected_servers = 2;
    so.expected_workers = 3;
    so.num_slots = 64;
    return so;
  }

  px::fuzz::SchedulerThread scheduler_;
  std::unique_ptr<px::Socket> dealer_;  // closed before the scheduler stops
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1 << 16)) return 0;
  static Harness harness;
  px::fuzz::ChunkReader in(data, size);
  const std::vector<std::string> frames = in.Chunks(8);
  if (frames.empty()) return 0;
  if (!harness.dealer().SendRaw(frames).ok()) Violated("cannot send to the scheduler");
  harness.Probe();
  return 0;
}
