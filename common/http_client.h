#pragma once
// A small blocking HTTP/1.1 GET client for tests and benches reading the
// /metrics and /status pages of a running node (common/http_server.h). One
// request per connection (Connection: close), the whole reply read into
// memory; no TLS, redirects or chunked bodies. Stateless and thread-safe.

#include <string>

#include "common/status.h"

namespace phalanx {

struct HttpReply {
  int status = 0;    // e.g. 200, 404
  std::string body;  // everything after the header block
};

// GET http://host:port/path. host is an IPv4 address or a name. Unavailable
// when the connection fails or the reply is not HTTP; DeadlineExceeded when
// the reply is not complete within timeout_ms.
Result<HttpReply> HttpGet(const std::string& host, int port, const std::string& path,
                          int timeout_ms);

}  // namespace phalanx
