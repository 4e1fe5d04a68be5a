#pragma once
// bench_transport's baseline: bare ZeroMQ moving exactly Phalanx's frames.
//
// The server is a child process (this binary started with kRawServerFlag)
// running a plain ROUTER that answers every request with a reply of the
// requested size from one preallocated buffer (zero-copy). RawClient is this
// process's DEALER sending the same frames Phalanx sends: a 64-byte header, a
// key frame and a value frame. So the raw figure is what ZeroMQ alone costs
// for Phalanx's traffic. Each object belongs to the thread that made it.

#include <cstddef>
#include <cstdint>

namespace phalanx::bench::transport {

// argv[1] that makes bench_transport run as the raw server.
inline constexpr char kRawServerFlag[] = "--raw-zeromq-server";
// The raw server's first stdout line is this prefix and its port.
inline constexpr char kRawPortLine[] = "RAW_PORT ";

// The raw server's main: binds a free loopback port, prints kRawPortLine, and
// serves until a request asks it to quit.
[[noreturn]] void RawServerMain();

// A DEALER sending [header, keys, values] and waiting for the reply, with
// payload frames sent zero-copy from caller-owned buffers (safe: one request
// in flight, the buffers outlive it).
class RawClient {
 public:
  explicit RawClient(int port);
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  double last_send_s = 0;  // time spent in the send calls of the last Call

  // A request split into parts of at most part_rows rows, as Client splits
  // it (max_part_bytes): every part is sent at once, then every reply is
  // received. values (push) or reply (pull) rows are row_bytes each.
  void CallParts(const uint64_t* keys, size_t n, const void* values, size_t row_bytes, bool pull,
                 size_t part_rows);

  // One request/reply; returns the reply's value bytes.
  size_t Call(const void* keys, size_t key_bytes, const void* values, size_t value_bytes,
              size_t reply_bytes, bool quit = false);

 private:
  void SendFrame(const void* data, size_t bytes, int flags);

  void* ctx_ = nullptr;
  void* sock_ = nullptr;
};

}  // namespace phalanx::bench::transport
