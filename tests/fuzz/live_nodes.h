#pragma once
// Helpers for the targets that talk to live roles over real sockets (wire,
// server, scheduler, client): waiting for a reply, and a scheduler running on
// a thread of this process.

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "common/transport.h"
#include "scheduler/scheduler.h"
#include "tests/fuzz/fuzz_util.h"

namespace phalanx::fuzz {

// The first message on `socket` for which done(received) holds, or nothing
// after `limit`. Waits in a loop: libFuzzer's timeout alarm interrupts a
// ZeroMQ poll, and Recv then reports "nothing yet" (by design, so loops can
// check a stop flag), so a single wait would give up early.
template <typename Done>
std::optional<Received> ReceiveWithin(Socket& socket, std::chrono::seconds limit,
                                      const Done& done) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    Received r = socket.Recv(1000);
    if (done(r)) return r;
  }
  return std::nullopt;
}

// A scheduler serving on its own thread until this is destroyed. Make it a
// member of a function-local static created after ZeroMQ's context (any
// socket creates the context first), so it stops before the context ends.
class SchedulerThread {
 public:
  explicit SchedulerThread(scheduler::SchedulerOptions options) {
    options.heartbeat_timeout_ms = 600000;  // a slow sanitizer build must not look dead
    auto s = scheduler::Scheduler::Create(options);
    if (!s.ok()) Violated("cannot start the scheduler");
    scheduler_ = std::move(s).value();
    thread_ = std::thread([this] { (void)scheduler_->Run(&stop_); });
  }
  ~SchedulerThread() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  SchedulerThread(const SchedulerThread&) = delete;
  SchedulerThread& operator=(const SchedulerThread&) = delete;

  std::string endpoint() const { return scheduler_->endpoint(); }
  std::string StatusJson() const { return scheduler_->StatusJson(); }

 private:
  std::atomic<bool> stop_{false};
  std::unique_ptr<scheduler::Scheduler> scheduler_;
  std::thread thread_;
};

}  // namespace phalanx::fuzz
