#include "bench/transport/raw_zmq.h"

#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/util/timing.h"

namespace phalanx::bench::transport {
namespace {

// Header frame of the raw protocol, the size of Phalanx's encoded header so
// both send the same bytes. The server answers with a header, an empty key
// frame and reply_bytes of values, as a Phalanx server does.
struct RawHeader {
  uint64_t reply_bytes = 0;
  uint64_t quit = 0;
  char pad[48] = {};
};
static_assert(sizeof(RawHeader) == 64);

}  // namespace

// The child: a plain ROUTER echoing replies of the asked size from one
// buffer it never frees or writes (ZeroMQ may send it zero-copy), so the
// baseline carries no allocation or copy that ZeroMQ itself does not make.
[[noreturn]] void RawServerMain() {
  void* ctx = zmq_ctx_new();
  void* sock = zmq_socket(ctx, ZMQ_ROUTER);
  int64_t max_msg = -1;
  zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max_msg, sizeof(max_msg));
  if (zmq_bind(sock, "tcp://127.0.0.1:*") != 0) _exit(2);
  char ep[256];
  size_t ep_len = sizeof(ep);
  zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, ep, &ep_len);
  int port = std::atoi(std::strrchr(ep, ':') + 1);
  std::printf("%s%d\n", kRawPortLine, port);
  std::fflush(stdout);
  std::vector<char> reply;
  while (true) {
    zmq_msg_t id;
    zmq_msg_init(&id);
    if (zmq_msg_recv(&id, sock, 0) < 0) continue;
    RawHeader h;
    bool first = true;
    int more = 1;
    while (more) {
      zmq_msg_t part;
      zmq_msg_init(&part);
      zmq_msg_recv(&part, sock, 0);
      if (first && zmq_msg_size(&part) == sizeof(RawHeader)) {
        std::memcpy(&h, zmq_msg_data(&part), sizeof(h));
      }
      first = false;
      more = zmq_msg_more(&part);
      zmq_msg_close(&part);
    }
    if (h.quit) _exit(0);
    if (reply.size() < h.reply_bytes) reply.assign(h.reply_bytes, 1);
    zmq_msg_send(&id, sock, ZMQ_SNDMORE);
    zmq_send(sock, &h, sizeof(h), ZMQ_SNDMORE);
    zmq_send(sock, nullptr, 0, ZMQ_SNDMORE);
    zmq_msg_t values;
    zmq_msg_init_data(&values, reply.data(), h.reply_bytes, nullptr, nullptr);
    zmq_msg_send(&values, sock, 0);
  }
}

RawClient::RawClient(int port) {
  ctx_ = zmq_ctx_new();
  sock_ = zmq_socket(ctx_, ZMQ_DEALER);
  int64_t max_msg = -1;
  zmq_setsockopt(sock_, ZMQ_MAXMSGSIZE, &max_msg, sizeof(max_msg));
  int linger = 0;
  zmq_setsockopt(sock_, ZMQ_LINGER, &linger, sizeof(linger));
  std::string ep = "tcp://127.0.0.1:" + std::to_string(port);
  zmq_connect(sock_, ep.c_str());
}

RawClient::~RawClient() {
  zmq_close(sock_);
  zmq_ctx_term(ctx_);
}

void RawClient::CallParts(const uint64_t* keys, size_t n, const void* values, size_t row_bytes,
                          bool pull, size_t part_rows) {
  size_t parts = 0;
  for (size_t off = 0; off < n; off += part_rows) {
    const size_t rows = std::min(part_rows, n - off);
    RawHeader h;
    h.reply_bytes = pull ? rows * row_bytes : 0;
    zmq_send(sock_, &h, sizeof(h), ZMQ_SNDMORE);
    SendFrame(keys + off, rows * sizeof(uint64_t), ZMQ_SNDMORE);
    SendFrame(pull ? nullptr : static_cast<const char*>(values) + off * row_bytes,
              pull ? 0 : rows * row_bytes, 0);
    ++parts;
  }
  for (size_t p = 0; p < parts; ++p) {
    int more = 1;
    while (more) {
      zmq_msg_t part;
      zmq_msg_init(&part);
      zmq_msg_recv(&part, sock_, 0);
      more = zmq_msg_more(&part);
      zmq_msg_close(&part);
    }
  }
}

size_t RawClient::Call(const void* keys, size_t key_bytes, const void* values, size_t value_bytes,
                       size_t reply_bytes, bool quit) {
  RawHeader h;
  h.reply_bytes = reply_bytes;
  h.quit = quit ? 1 : 0;
  auto t0 = Clock::now();
  zmq_send(sock_, &h, sizeof(h), ZMQ_SNDMORE);
  SendFrame(keys, key_bytes, ZMQ_SNDMORE);
  SendFrame(values, value_bytes, 0);
  last_send_s = Seconds(t0, Clock::now());
  if (quit) return 0;
  size_t got = 0;
  int more = 1;
  int index = 0;
  while (more) {
    zmq_msg_t part;
    zmq_msg_init(&part);
    zmq_msg_recv(&part, sock_, 0);
    if (index++ == 2) got = zmq_msg_size(&part);
    more = zmq_msg_more(&part);
    zmq_msg_close(&part);
  }
  return got;
}

void RawClient::SendFrame(const void* data, size_t bytes, int flags) {
  if (bytes < 64) {
    zmq_send(sock_, data, bytes, flags);  // what Phalanx does with small frames
    return;
  }
  zmq_msg_t m;
  zmq_msg_init_data(&m, const_cast<void*>(data), bytes, nullptr, nullptr);
  zmq_msg_send(&m, sock_, flags);
}

}  // namespace phalanx::bench::transport
