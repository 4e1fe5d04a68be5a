#include "launch/faults/fault_proxy.h"

#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio.hpp>
#include <chrono>
#include <deque>
#include <future>
#include <map>
#include <random>
#include <set>
#include <thread>

namespace phalanx::launch {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// Bytes a direction may hold before it stops reading (backpressure reaches
// the sender through TCP, as on a slow link).
constexpr size_t kMaxQueued = 4 << 20;
// Poll interval while a direction is stalled.
constexpr auto kStallPoll = std::chrono::milliseconds(20);

void ResetSocket(tcp::socket& s) {
  boost::system::error_code ec;
  if (!s.is_open()) return;
  s.set_option(asio::socket_base::linger(true, 0), ec);  // close sends RST
  s.close(ec);
}

}  // namespace

class Connection;

struct RouteState {
  int id = 0;
  std::unique_ptr<tcp::acceptor> acceptor;
  tcp::endpoint target;
  Toxics up, down;
  bool refuse = false;
  ProxyStats stats;
  std::set<std::shared_ptr<Connection>> connections;
};

// One proxied connection: client <-> target, two independent directions.
// Lives on the io thread only.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(RouteState* route, tcp::socket client, std::mt19937_64* rng)
      : route_(route),
        client_(std::move(client)),
        target_(client_.get_executor()),
        rng_(rng),
        up_(&client_, &target_, true, client_.get_executor()),
        down_(&target_, &client_, false, client_.get_executor()) {}

  void Start() {
    auto self = shared_from_this();
    target_.async_connect(route_->target, [self](const boost::system::error_code& ec) {
      if (self->closed_) return;
      if (ec) {
        // The target is down: the client sees a reset, as with a dead peer.
        self->Close(true);
        return;
      }
      boost::system::error_code ignored;
      self->target_.set_option(tcp::no_delay(true), ignored);
      self->client_.set_option(tcp::no_delay(true), ignored);
      self->Read(self->up_);
      self->Read(self->down_);
    });
  }

  // Closes both sockets; with `reset`, both peers see RST.
  void Close(bool reset) {
    if (closed_) return;
    closed_ = true;
    up_.timer.cancel();
    down_.timer.cancel();
    if (reset) {
      ResetSocket(client_);
      ResetSocket(target_);
    } else {
      boost::system::error_code ec;
      client_.close(ec);
      target_.close(ec);
    }
    route_->stats.open--;
    route_->connections.erase(shared_from_this());
  }

 private:
  struct Chunk {
    std::vector<char> data;
    size_t offset = 0;
    Clock::time_point due;
  };
  struct Pipe {
    Pipe(tcp::socket* f, tcp::socket* t, bool u, const asio::any_io_executor& ex)
        : from(f), to(t), is_up(u), timer(ex) {}
    tcp::socket* from;
    tcp::socket* to;
    bool is_up;
    asio::steady_timer timer;
    std::deque<Chunk> queue;
    size_t queued = 0;
    bool reading = false;
    bool writing = false;
    bool eof = false;
    bool shut = false;
    Clock::time_point next_free{};
    Clock::time_point last_due{};
    std::array<char, 65536> buf{};
  };

  const Toxics& toxics(const Pipe& p) const { return p.is_up ? route_->up : route_->down; }

  void Read(Pipe& p) {
    if (closed_ || p.reading || p.eof || p.queued >= kMaxQueued) return;
    p.reading = true;
    auto self = shared_from_this();
    p.from->async_read_some(asio::buffer(p.buf),
                            [self, &p](const boost::system::error_code& ec, size_t n) {
                              p.reading = false;
                              if (self->closed_) return;
                              if (ec) {
                                if (ec == asio::error::eof) {
                                  p.eof = true;
                                  self->MaybeShutdown(p);
                                } else {
                                  self->Close(true);  // pass a reset on
                                }
                                return;
                              }
                              self->Enqueue(p, n);
                              self->Write(p);
                              self->Read(p);
                            });
  }

  void Enqueue(Pipe& p, size_t n) {
    const Toxics& t = toxics(p);
    double wait_ms = t.delay_ms;
    if (t.jitter_ms > 0) wait_ms += std::uniform_real_distribution<double>(0, t.jitter_ms)(*rng_);
    auto due = Clock::now() + std::chrono::microseconds(static_cast<int64_t>(wait_ms * 1000));
    // A stream keeps its order: a chunk never overtakes the one before it.
    due = std::max(due, p.last_due);
    p.last_due = due;
    Chunk c;
    c.data.assign(p.buf.begin(), p.buf.begin() + static_cast<ptrdiff_t>(n));
    c.due = due;
    p.queue.push_back(std::move(c));
    p.queued += n;
    (p.is_up ? route_->stats.bytes_up : route_->stats.bytes_down) += n;
  }

  void Write(Pipe& p) {
    if (closed_ || p.writing) return;
    if (p.queue.empty()) {
      MaybeShutdown(p);
      return;
    }
    const Toxics& t = toxics(p);
    auto now = Clock::now();
    Chunk& c = p.queue.front();
    auto ready = c.due;
    if (t.rate_kbit > 0) ready = std::max(ready, p.next_free);
    if (t.stall) ready = now + kStallPoll;
    auto self = shared_from_this();
    if (ready > now) {
      p.writing = true;
      p.timer.expires_at(ready);
      p.timer.async_wait([self, &p](const boost::system::error_code&) {
        p.writing = false;
        self->Write(p);
      });
      return;
    }
    size_t n = c.data.size() - c.offset;
    double bytes_per_s = t.rate_kbit * 1000 / 8;
    // Throttled: write about 5 ms worth at a time, so the rate is smooth.
    if (t.rate_kbit > 0)
      n = std::min(n, std::max<size_t>(1, static_cast<size_t>(bytes_per_s / 200)));
    p.writing = true;
    asio::async_write(*p.to, asio::buffer(c.data.data() + c.offset, n),
                      [self, &p, bytes_per_s](const boost::system::error_code& ec, size_t written) {
                        p.writing = false;
                        if (self->closed_) return;
                        if (ec) {
                          self->Close(true);
                          return;
                        }
                        if (bytes_per_s > 0) {
                          auto start = std::max(Clock::now(), p.next_free);
                          p.next_free =
                              start + std::chrono::microseconds(static_cast<int64_t>(
                                          static_cast<double>(written) / bytes_per_s * 1e6));
                        }
                        Chunk& front = p.queue.front();
                        front.offset += written;
                        p.queued -= written;
                        if (front.offset == front.data.size()) p.queue.pop_front();
                        self->Read(p);  // resumes reading if backpressure had stopped it
                        self->Write(p);
                      });
  }

  void MaybeShutdown(Pipe& p) {
    if (!p.eof || !p.queue.empty() || p.writing || p.shut || closed_) return;
    boost::system::error_code ec;
    p.to->shutdown(tcp::socket::shutdown_send, ec);
    p.shut = true;
    if (up_.shut && down_.shut) Close(false);
  }

  RouteState* route_;
  tcp::socket client_;
  tcp::socket target_;
  std::mt19937_64* rng_;
  Pipe up_;
  Pipe down_;
  bool closed_ = false;
};

class FaultProxy::Impl {
 public:
  Impl() : work_(asio::make_work_guard(io_)), rng_(12345) {
    thread_ = std::thread([this] { io_.run(); });
  }

  ~Impl() {
    RunSync([this] {
      for (auto& [id, r] : routes_) {
        boost::system::error_code ec;
        r->acceptor->close(ec);
        auto conns = r->connections;
        for (auto& c : conns) c->Close(false);
      }
    });
    work_.reset();
    io_.stop();
    thread_.join();
  }

  // Runs fn on the io thread and waits for it.
  template <typename Fn>
  auto RunSync(Fn fn) -> decltype(fn()) {
    std::packaged_task<decltype(fn())()> task(std::move(fn));
    auto fut = task.get_future();
    asio::post(io_, [&task] { task(); });
    return fut.get();
  }

  Result<int> AddRoute(const std::string& listen_host, int listen_port,
                       const std::string& target_host, int target_port) {
    boost::system::error_code ec;
    auto listen_addr = asio::ip::make_address(listen_host, ec);
    if (ec) return InvalidArgument("proxy: bad listen address '" + listen_host + "'");
    auto target_addr = asio::ip::make_address(target_host, ec);
    if (ec) return InvalidArgument("proxy: bad target address '" + target_host + "'");
    if (listen_port < 0 || listen_port > 65535 || target_port <= 0 || target_port > 65535) {
      return InvalidArgument("proxy: port out of range");
    }
    return RunSync([&]() -> Result<int> {
      auto r = std::make_unique<RouteState>();
      r->id = next_id_++;
      r->target = tcp::endpoint(target_addr, static_cast<uint16_t>(target_port));
      r->acceptor = std::make_unique<tcp::acceptor>(io_);
      boost::system::error_code e;
      tcp::endpoint ep(listen_addr, static_cast<uint16_t>(listen_port));
      r->acceptor->open(ep.protocol(), e);
      if (!e) r->acceptor->set_option(tcp::acceptor::reuse_address(true), e);
      if (!e) r->acceptor->bind(ep, e);
      if (!e) r->acceptor->listen(asio::socket_base::max_listen_connections, e);
      if (e) {
        return Unavailable("proxy: cannot listen on " + listen_host + ":" +
                           std::to_string(listen_port) + ": " + e.message());
      }
      int id = r->id;
      RouteState* raw = r.get();
      routes_[id] = std::move(r);
      Accept(raw);
      return id;
    });
  }

  void Accept(RouteState* r) {
    r->acceptor->async_accept([this, r](const boost::system::error_code& ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted || !r->acceptor->is_open()) return;
      if (!ec) {
        r->stats.accepted++;
        if (r->refuse) {
          r->stats.resets++;
          ResetSocket(s);
        } else {
          auto c = std::make_shared<Connection>(r, std::move(s), &rng_);
          r->connections.insert(c);
          r->stats.open++;
          c->Start();
        }
      }
      Accept(r);
    });
  }

  RouteState* Find(int id) {
    auto it = routes_.find(id);
    return it == routes_.end() ? nullptr : it->second.get();
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::mt19937_64 rng_;
  std::map<int, std::unique_ptr<RouteState>> routes_;  // io thread only
  int next_id_ = 1;
  std::thread thread_;
};

Result<std::unique_ptr<FaultProxy>> FaultProxy::Start() {
  return std::unique_ptr<FaultProxy>(new FaultProxy(std::make_unique<Impl>()));
}

FaultProxy::FaultProxy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FaultProxy::~FaultProxy() = default;

Result<int> FaultProxy::AddRoute(const std::string& listen_host, int listen_port,
                                 const std::string& target_host, int target_port) {
  return impl_->AddRoute(listen_host, listen_port, target_host, target_port);
}

int FaultProxy::port(int route) const {
  return impl_->RunSync([&] {
    RouteState* r = impl_->Find(route);
    return r ? static_cast<int>(r->acceptor->local_endpoint().port()) : 0;
  });
}

void FaultProxy::SetToxics(int route, const Toxics& up, const Toxics& down) {
  impl_->RunSync([&] {
    if (RouteState* r = impl_->Find(route)) {
      r->up = up;
      r->down = down;
    }
  });
}

void FaultProxy::ResetConnections(int route) {
  impl_->RunSync([&] {
    if (RouteState* r = impl_->Find(route)) {
      auto conns = r->connections;
      for (auto& c : conns) {
        r->stats.resets++;
        c->Close(true);
      }
    }
  });
}

void FaultProxy::SetRefuse(int route, bool on) {
  impl_->RunSync([&] {
    if (RouteState* r = impl_->Find(route)) r->refuse = on;
  });
}

ProxyStats FaultProxy::stats(int route) const {
  return impl_->RunSync([&] {
    RouteState* r = impl_->Find(route);
    return r ? r->stats : ProxyStats{};
  });
}

}  // namespace phalanx::launch
