#pragma once
// InProcessCluster: a scheduler and S ps::Servers, each on its own thread of
// the test process, talking over loopback TCP as real nodes do; the test
// joins as workers with worker::Clients (ConnectWorkers) or with a raw
// DEALER socket to a server. Server behaviour can so be tested without
// forking processes, as Gloo tests its ranks as threads.
//
// Formation needs every expected node: each server's Create waits for the
// workers, so servers start on their threads at construction and
// ConnectWorkers registers all the workers at once.
//
// Threading: construct, use and destroy on the test thread. Destruction stops
// the servers, then the scheduler; destroy the clients first (declare them
// after the cluster).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "common/transport.h"
#include "ps/server.h"
#include "scheduler/scheduler.h"
#include "worker/client.h"

namespace phalanx::testutil {

struct InProcessClusterOptions {
  int servers = 1;
  int workers = 1;
  uint32_t num_slots = 64;
  // Template for every server; scheduler_endpoint is filled in.
  ps::ServerOptions server;
};

class InProcessCluster {
 public:
  explicit InProcessCluster(InProcessClusterOptions options) : options_(std::move(options)) {
    scheduler::SchedulerOptions so;
    so.expected_servers = options_.servers;
    so.expected_workers = options_.workers;
    so.num_slots = options_.num_slots;
    so.heartbeat_timeout_ms = 20000;  // a loaded machine must not look dead
    auto s = scheduler::Scheduler::Create(so);
    if (!s.ok()) {
      start_error_ = s.status();
      return;
    }
    scheduler_ = std::move(s).value();
    scheduler_thread_ = std::thread([this] { (void)scheduler_->Run(&stop_scheduler_); });
    servers_.resize(static_cast<size_t>(options_.servers));
    for (auto& slot : servers_) {
      slot = std::make_unique<ServerSlot>();
      ps::ServerOptions o = options_.server;
      o.scheduler_endpoint = scheduler_->endpoint();
      // Create cannot be stopped: bound its wait for the workers.
      o.formation_timeout_ms = std::min(o.formation_timeout_ms, 30000);
      ServerSlot* sl = slot.get();
      sl->thread = std::thread([this, sl, o] {
        auto server = ps::Server::Create(o);
        if (!server.ok()) {
          sl->created.set_value(server.status());
          return;
        }
        sl->server = std::move(server).value();
        sl->created.set_value(Status::Ok());
        sl->result = sl->server->Run(&stop_servers_);
      });
    }
  }

  ~InProcessCluster() {
    stop_servers_ = true;
    for (auto& s : servers_) {
      if (s->thread.joinable()) s->thread.join();
    }
    servers_.clear();
    stop_scheduler_ = true;
    if (scheduler_thread_.joinable()) scheduler_thread_.join();
  }
  InProcessCluster(const InProcessCluster&) = delete;
  InProcessCluster& operator=(const InProcessCluster&) = delete;

  std::string scheduler_endpoint() const { return scheduler_ ? scheduler_->endpoint() : ""; }

  // Options for a worker::Client of this cluster.
  worker::ClientOptions ClientOptions() const {
    worker::ClientOptions o;
    o.scheduler_endpoint = scheduler_endpoint();
    o.register_timeout_ms = 20000;
    o.formation_timeout_ms = 20000;
    o.request_timeout_ms = 20000;
    return o;
  }

  // Registers every expected worker at once and waits for the servers.
  Result<std::vector<std::unique_ptr<worker::Client>>> ConnectWorkers() {
    PHX_RETURN_IF_ERROR(start_error_);
    std::vector<std::future<Result<std::unique_ptr<worker::Client>>>> pending;
    for (int i = 0; i < options_.workers; ++i) {
      pending.push_back(std::async(std::launch::async, [this, i] {
        worker::ClientOptions o = ClientOptions();
        o.requested_rank = i;
        return worker::Client::Create(o);
      }));
    }
    std::vector<std::unique_ptr<worker::Client>> clients;
    Status first = Status::Ok();
    for (auto& p : pending) {
      auto c = p.get();
      if (c.ok()) {
        clients.push_back(std::move(c).value());
      } else if (first.ok()) {
        first = c.status();
      }
    }
    PHX_RETURN_IF_ERROR(first);
    PHX_RETURN_IF_ERROR(WaitForServers());
    return clients;
  }

  // Server i once created (null until WaitForServers succeeded).
  ps::Server* server(int i) const { return servers_.at(static_cast<size_t>(i))->server.get(); }

  // A DEALER socket to server i, for requests a Client would never send.
  Result<std::unique_ptr<Socket>> ConnectRaw(int i) const {
    if (server(i) == nullptr) return FailedPrecondition("server not started");
    return Socket::Connect(Socket::Kind::kDealer, TcpEndpoint("127.0.0.1", server(i)->port()),
                           WireLimits());
  }

 private:
  struct ServerSlot {
    std::thread thread;
    std::unique_ptr<ps::Server> server;
    std::promise<Status> created;
    bool waited = false;
    Status create_status = Status::Ok();
    Status result = Status::Ok();
  };

  Status WaitForServers() {
    for (auto& s : servers_) {
      if (!s->waited) {
        auto f = s->created.get_future();
        if (f.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
          return DeadlineExceeded("server did not start within 30 s");
        }
        s->create_status = f.get();
        s->waited = true;
      }
      PHX_RETURN_IF_ERROR(s->create_status);
    }
    return Status::Ok();
  }

  InProcessClusterOptions options_;
  Status start_error_ = Status::Ok();
  std::unique_ptr<scheduler::Scheduler> scheduler_;
  std::thread scheduler_thread_;
  std::atomic<bool> stop_scheduler_{false};
  std::atomic<bool> stop_servers_{false};
  std::vector<std::unique_ptr<ServerSlot>> servers_;
};

}  // namespace phalanx::testutil
