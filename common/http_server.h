#pragma once
// A small HTTP/1.1 server (Boost.Beast) for /metrics and /status. It runs its
// own Asio io_context on one background thread, owned by this object; the
// handlers are called on that thread and must be thread-safe with respect to
// the rest of the process. Unknown paths get 404; only GET is served (other
// methods get 405). The query string is ignored when matching paths.
// Requests are bounded (8 KiB of headers -> 431, 16 KiB of body -> 413,
// malformed -> 400, idle connections dropped after 30 s, at most 64 open
// connections), and a handler that throws yields 500, so bytes from the
// network can never crash the process. Connections are kept alive when the
// client asks. Destruction stops the loop at once (open idle connections do
// not delay it) and joins the thread.

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

class HttpServer {
 public:
  // Binds host:port (port 0 picks a free port; host may be a name, an IP or
  // "" for all interfaces) and starts serving. Unavailable, naming host:port,
  // when the address cannot be resolved or bound (e.g. the port is in use);
  // InvalidArgument for a port outside 0..65535.
  static Result<std::unique_ptr<HttpServer>> Start(const std::string& host, int port,
                                                   std::map<std::string, HttpHandler> handlers);
  virtual ~HttpServer() = default;  // stops and joins the thread
  // The bound port (the real one when 0 was asked for).
  virtual int port() const = 0;
};

}  // namespace phalanx
