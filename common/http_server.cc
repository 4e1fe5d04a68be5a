#include "common/http_server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <exception>
#include <optional>
#include <thread>
#include <unordered_set>
#include <utility>

#include "common/metrics.h"

namespace phalanx {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// Limits that keep a misbehaving client from growing our memory: the page is
// served to scrapers and curl, whose requests are a few hundred bytes.
constexpr size_t kMaxHeaderBytes = 8 * 1024;
constexpr size_t kMaxBodyBytes = 16 * 1024;
constexpr size_t kMaxBufferBytes = kMaxHeaderBytes + kMaxBodyBytes + 1024;
// After an error reply the rest of the request is read and discarded for up
// to this long / this many bytes before closing ("lingering close"): closing
// with unread input makes the kernel send RST, which can destroy the reply
// before the client reads it.
constexpr std::chrono::seconds kLingerTimeout(2);
constexpr size_t kMaxLingerBytes = 1 << 20;

using Clock = std::chrono::steady_clock;

using Handlers = std::map<std::string, HttpHandler>;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

Response MakeTextResponse(unsigned status, unsigned version, std::string body) {
  Response res;
  res.version(version);
  res.result(status);
  res.set(http::field::server, "phalanx");
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.body() = std::move(body);
  return res;
}

// Builds the reply for a parsed request. Never throws: a throwing handler is
// reported as 500, so one buggy page cannot take the server thread down.
Response Dispatch(const Handlers& handlers, const Request& req) {
  if (req.method() != http::verb::get) {
    Response res = MakeTextResponse(405, req.version(), "method not allowed\n");
    res.set(http::field::allow, "GET");
    return res;
  }
  std::string_view target(req.target().data(), req.target().size());
  target = target.substr(0, target.find('?'));
  auto it = handlers.find(std::string(target));
  if (it == handlers.end() || !it->second) {
    return MakeTextResponse(404, req.version(), "not found\n");
  }
  HttpResponse out;
  try {
    out = it->second();
  } catch (const std::exception& e) {
    spdlog::error("HTTP handler for {} threw: {}", it->first, e.what());
    return MakeTextResponse(500, req.version(), "internal error\n");
  } catch (...) {
    spdlog::error("HTTP handler for {} threw a non-exception", it->first);
    return MakeTextResponse(500, req.version(), "internal error\n");
  }
  if (out.status < 100 || out.status > 599) {
    spdlog::error("HTTP handler for {} returned invalid status {}", it->first, out.status);
    return MakeTextResponse(500, req.version(), "internal error\n");
  }
  Response res =
      MakeTextResponse(static_cast<unsigned>(out.status), req.version(), std::move(out.body));
  // A CR or LF in a header value would let a handler split the response.
  std::string content_type = std::move(out.content_type);
  std::erase_if(content_type, [](char c) { return c == '\r' || c == '\n'; });
  res.set(http::field::content_type, content_type);
  return res;
}

bool IsHttpParseError(const beast::error_code& ec) {
  return &ec.category() == &http::make_error_code(http::error::bad_method).category();
}

class Session;

// The open connections, shared by the acceptor and the sessions so that a
// session can leave it from its destructor. Used on the io_context thread only.
struct SessionTable {
  std::unordered_set<Session*> open;
};

// One client connection. Lives as long as an operation holds a shared_ptr to
// it; runs only on the server's io_context thread.
class Session : public std::enable_shared_from_this<Session> {
 public:
  // What the connection is doing, in the order the cap evicts them: a
  // lingering close is nearly over, an idle keep-alive costs the client
  // nothing to reopen, a request in progress is the client's real work.
  enum class Phase { kLinger, kIdle, kRequest, kWriting, kClosed };

  Session(tcp::socket socket, const Handlers* handlers, const HttpLimits* limits,
          std::shared_ptr<SessionTable> table)
      : stream_(std::move(socket)),
        buffer_(kMaxBufferBytes),
        handlers_(handlers),
        limits_(limits),
        table_(std::move(table)) {
    table_->open.insert(this);
  }
  ~Session() { table_->open.erase(this); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void Start() { WaitForRequest(); }
  Phase phase() const { return phase_; }
  Clock::time_point since() const { return since_; }
  // Closes the connection to make room for a new one; the pending operation
  // completes with an error and releases the session.
  void Evict() { Close(); }

 private:
  void EnterPhase(Phase p) {
    phase_ = p;
    since_ = Clock::now();
  }

  // Keep-alive wait for the first byte of the next request, with the idle
  // timeout; the request itself then has its own, shorter, deadline.
  void WaitForRequest() {
    if (buffer_.size() > 0) return ReadRequest();  // pipelined bytes already here
    EnterPhase(Phase::kIdle);
    stream_.expires_after(std::chrono::milliseconds(limits_->idle_timeout_ms));
    stream_.async_read_some(buffer_.prepare(1024),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->buffer_.commit(n);
                              if (ec) return self->Close();
                              self->ReadRequest();
                            });
  }

  void ReadRequest() {
    EnterPhase(Phase::kRequest);
    parser_.emplace();
    parser_->header_limit(kMaxHeaderBytes);
    parser_->body_limit(kMaxBodyBytes);
    // The whole request, however it trickles in, within the deadline.
    stream_.expires_after(std::chrono::milliseconds(limits_->request_deadline_ms));
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == http::error::partial_message) {
      return Close();
    }
    if (ec && IsHttpParseError(ec)) {
      // Malformed or oversized request: answer once, then hang up, because
      // the rest of the stream cannot be framed.
      unsigned status = ec == http::error::header_limit ? 431
                        : ec == http::error::body_limit ? 413
                                                        : 400;
      res_ = MakeTextResponse(status, 11, fmt::format("bad request: {}\n", ec.message()));
      res_.keep_alive(false);
      linger_ = true;
      return DoWrite();
    }
    if (ec) return Close();  // timeout, reset, shutdown: nothing to answer
    const Request& req = parser_->get();
    res_ = Dispatch(*handlers_, req);
    res_.keep_alive(req.keep_alive());
    DoWrite();
  }

  void DoWrite() {
    EnterPhase(Phase::kWriting);
    res_.prepare_payload();
    stream_.expires_after(std::chrono::milliseconds(limits_->idle_timeout_ms));
    http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Close();
      if (!self->res_.keep_alive()) return self->linger_ ? self->LingerClose() : self->Close();
      self->WaitForRequest();
    });
  }

  void LingerClose() {
    EnterPhase(Phase::kLinger);
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(kLingerTimeout);
    DoDrain();
  }

  void DoDrain() {
    stream_.async_read_some(asio::buffer(drain_),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > kMaxLingerBytes) return self->Close();
                              self->DoDrain();
                            });
  }

  void Close() {
    if (phase_ == Phase::kClosed) return;
    EnterPhase(Phase::kClosed);
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Response res_;
  bool linger_ = false;
  std::array<char, 4096> drain_;
  size_t drained_ = 0;
  Phase phase_ = Phase::kIdle;
  Clock::time_point since_ = Clock::now();
  const Handlers* handlers_;
  const HttpLimits* limits_;
  std::shared_ptr<SessionTable> table_;
};

// At the cap: the connection to close for a new one, or nullptr when every
// open one is already closing. Lowest phase first, then the longest waiting.
Session* PickEviction(const SessionTable& table, int max_connections) {
  Session* victim = nullptr;
  int live = 0;
  for (Session* s : table.open) {
    if (s->phase() == Session::Phase::kClosed) continue;
    ++live;
    if (!victim || s->phase() < victim->phase() ||
        (s->phase() == victim->phase() && s->since() < victim->since())) {
      victim = s;
    }
  }
  return live >= max_connections ? victim : nullptr;
}

// The HttpServer behind the public interface; keeps Asio out of the header.
class AsioHttpServer final : public HttpServer {
 public:
  AsioHttpServer(Handlers handlers, const HttpLimits& limits)
      : handlers_(std::move(handlers)), limits_(limits) {}

  // Stops without draining: ioc_.stop() makes run() return at once, even
  // with idle clients connected; the sessions still queued in ioc_ are freed
  // when ioc_ is destroyed, after the acceptor.
  ~AsioHttpServer() override {
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
  }

  int port() const override { return port_; }

  Status Bind(const std::string& host, int port) {
    std::string where = fmt::format("{}:{}", host, port);
    beast::error_code ec;
    tcp::endpoint endpoint;
    asio::ip::address address = asio::ip::make_address(host.empty() ? "0.0.0.0" : host, ec);
    if (!ec) {
      endpoint = tcp::endpoint(address, static_cast<uint16_t>(port));
    } else {
      tcp::resolver resolver(ioc_);
      auto results = resolver.resolve(host, std::to_string(port), ec);
      if (ec || results.empty()) {
        return Unavailable(fmt::format("HTTP server cannot resolve {}: {}", where,
                                       ec ? ec.message() : "no addresses"));
      }
      endpoint = results.begin()->endpoint();
    }
    acceptor_.open(endpoint.protocol(), ec);
    if (ec)
      return Unavailable(
          fmt::format("HTTP server cannot open socket for {}: {}", where, ec.message()));
    // SO_REUSEADDR lets a restarted process rebind past TIME_WAIT; on Linux
    // it still refuses a port another socket is listening on.
    acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    acceptor_.bind(endpoint, ec);
    if (ec) return Unavailable(fmt::format("HTTP server cannot bind {}: {}", where, ec.message()));
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      return Unavailable(fmt::format("HTTP server cannot listen on {}: {}", where, ec.message()));
    port_ = acceptor_.local_endpoint(ec).port();
    if (ec) return Unavailable(fmt::format("HTTP server on {}: {}", where, ec.message()));
    return Status::Ok();
  }

  void Run() {
    DoAccept();
    thread_ = std::thread([this] {
      // run() only throws if a completion handler does; ours catch, but keep
      // serving rather than terminate the process if one slips through.
      for (;;) {
        try {
          ioc_.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("HTTP server loop: {}", e.what());
        } catch (...) {
          spdlog::error("HTTP server loop: unknown exception");
        }
      }
    });
  }

 private:
  void DoAccept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (ec) {
        // E.g. out of file descriptors: back off instead of spinning.
        spdlog::warn("HTTP accept failed: {}", ec.message());
        retry_timer_.expires_after(std::chrono::milliseconds(100));
        retry_timer_.async_wait([this](beast::error_code wait_ec) {
          if (!wait_ec) DoAccept();
        });
        return;
      }
      // A full house must not lock monitoring out: the new client takes the
      // place of the connection that has waited longest.
      if (Session* victim = PickEviction(*sessions_, limits_.max_connections)) {
        evictions_.Increment();
        victim->Evict();
      }
      std::make_shared<Session>(std::move(socket), &handlers_, &limits_, sessions_)->Start();
      DoAccept();
    });
  }

  // Declaration order matters: ioc_ is destroyed after the acceptor and the
  // timer, and handlers_ after ioc_ (queued sessions point at it).
  const Handlers handlers_;
  const HttpLimits limits_;
  std::shared_ptr<SessionTable> sessions_ = std::make_shared<SessionTable>();
  Counter& evictions_ = MetricsRegistry::Global().GetCounter(
      "phalanx_http_evicted_connections_total",
      "HTTP connections closed at the connection cap to admit a new client");
  asio::io_context ioc_{1};
  tcp::acceptor acceptor_{ioc_};
  asio::steady_timer retry_timer_{ioc_};
  int port_ = 0;
  std::thread thread_;
};

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& host, int port,
                                                      std::map<std::string, HttpHandler> handlers,
                                                      const HttpLimits& limits) {
  if (port < 0 || port > 65535) {
    return InvalidArgument(fmt::format("HTTP port {} out of range", port));
  }
  if (limits.request_deadline_ms <= 0 || limits.idle_timeout_ms <= 0 ||
      limits.max_connections <= 0) {
    return InvalidArgument("HTTP limits must be positive");
  }
  try {
    auto server = std::make_unique<AsioHttpServer>(std::move(handlers), limits);
    PHX_RETURN_IF_ERROR(server->Bind(host, port));
    server->Run();
    return std::unique_ptr<HttpServer>(std::move(server));
  } catch (const std::exception& e) {
    // Asio may still throw for resource exhaustion (e.g. epoll_create fails).
    return Unavailable(fmt::format("HTTP server on {}:{}: {}", host, port, e.what()));
  }
}

}  // namespace phalanx
