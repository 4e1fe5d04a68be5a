#pragma once
// A small HTTP/1.1 server (Boost.Beast) for /metrics and /status. It runs its
// own Asio io_context on one background thread, owned by this object; the
// handlers are called on that thread and must be thread-safe with respect to
// the rest of the process. Unknown paths get 404; only GET is served (other
// methods get 405). The query string is ignored when matching paths.
// Requests are bounded (8 KiB of headers -> 431, 16 KiB of body -> 413,
// malformed -> 400), and a handler that throws yields 500, so bytes from the
// network can never crash the process. Slow clients cannot lock the page out
// (slowloris): a request must arrive whole within a deadline from its first
// byte, an idle keep-alive connection is dropped after its own timeout, and
// at the connection cap a new client takes the place of the connection that
// has waited longest (idle ones first) instead of being turned away. Connections are kept alive
// when the client asks. Destruction stops the loop at once (open idle connections do not delay it)
// and joins the thread.

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/status.h"

namespace phalanx {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; version=0.0.4";
  std::string body;
};

using HttpHandler = std::function<HttpResponse()>;

// What a client may hold on to. The defaults suit a Prometheus scraper and
// curl, whose requests are a few hundred bytes sent at once.
struct HttpLimits {
  int request_deadline_ms = 5000;  // first byte of a request to its last
  int idle_timeout_ms = 30000;     // keep-alive wait for the next request
  int max_connections = 64;        // open at once; the newest client wins
};

class HttpServer {
 public:
  // Binds host:port (port 0 picks a free port; host may be a name, an IP or
  // "" for all interfaces) and starts serving. Unavailable, naming host:port,
  // when the address cannot be resolved or bound (e.g. the port is in use);
  // InvalidArgument for a port outside 0..65535.
  static Result<std::unique_ptr<HttpServer>> Start(const std::string& host, int port,
                                                   std::map<std::string, HttpHandler> handlers,
                                                   const HttpLimits& limits = {});
  virtual ~HttpServer() = default;  // stops and joins the thread
  // The bound port (the real one when 0 was asked for).
  virtual int port() const = 0;
};

}  // namespace phalanx
