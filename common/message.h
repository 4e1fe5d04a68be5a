#pragma once
// Phalanx wire messages. A message is a fixed-size header encoded with cereal
// (protocol version, type, sender, request id, round, federated client, table,
// counts, checksum)
// followed by raw payload frames: uint64 keys and float32 values for data
// messages, or one cereal-encoded body for control messages. The format is
// described in common/wire_format.md.
//
// Decoding never trusts the bytes: every count is checked against the frames
// received and against WireLimits, and failures come back as a Status.
// Message objects are values; Buffers share immutable bytes between threads.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace phalanx {

inline constexpr uint32_t kWireMagic = 0x584c4850;  // "PHLX" little-endian
// Version 2: Header::client (the federated client id, packed into round in
// version 1) and the kHonestPeek types (a flag bit on kPull in version 1).
// A peer speaking any other version is refused (DecodeHeader).
inline constexpr uint16_t kWireVersion = 2;

enum class MsgType : uint8_t {
  kInvalid = 0,
  // node <-> scheduler
  kRegister = 1,        // body: RegisterBody
  kRegisterAck = 2,     // body: RegisterAck
  kClusterView = 3,     // body: ClusterView
  kHeartbeat = 4,       // no body
  kBarrier = 5,         // body: BarrierBody
  kBarrierRelease = 6,  // body: BarrierBody
  kLeave = 7,           // worker finished; no body
  kShutdown = 8,        // scheduler tells nodes to exit; no body
  // worker <-> server
  kPull = 20,          // keys; round = min version to wait for
  kPullResponse = 21,  // keys echoed? no: values in key order; round = version served
  kPush = 22,          // keys + values; round = sync round or version pulled (async)
  kPushAck = 23,       // round = version after apply (async) or round accepted
  // Omniscient Byzantine experiments only (worker/honest_peek.h): "send me the
  // honest workers' pushed gradients of sync round `round` for these keys".
  kHonestPeek = 24,          // keys; round = the synchronous round
  kHonestPeekResponse = 25,  // h x num_keys x dim values, honest worker by worker (ascending id)
  kError = 30,               // status_code + body: error message
  // server <-> server (the round coordinator)
  kGramPartial = 40,  // round, table_id; body: ps::internal::GramPartial
  kGramPlan = 41,     // round, table_id; body: ps::internal::RoundPlan
};

// Bytes of an encoded Header (every field is fixed-size).
inline constexpr size_t kHeaderBytes = 68;

// Header::client when a message speaks for no federated client.
inline constexpr int32_t kNoClient = -1;
// Federated client ids are 0 .. kMaxFederatedClients - 1 (they fit Header::client).
inline constexpr int64_t kMaxFederatedClients = INT32_MAX;

const char* MsgTypeName(MsgType type);
bool IsDataMessage(MsgType type);

struct Header {
  uint32_t magic = kWireMagic;
  uint16_t version = kWireVersion;
  MsgType type = MsgType::kInvalid;
  uint8_t flags = 0;
  int32_t sender = -1;  // node id; -1 before registration
  uint64_t request_id = 0;
  int64_t round = 0;
  // Live federated mode (ps/federated_shard.h), a Pull or Push of table 0:
  // the client it speaks for; kNoClient otherwise (and for evaluation pulls).
  int32_t client = kNoClient;
  uint32_t table_id = 0;
  uint32_t dim = 0;  // floats per key in values
  uint64_t num_keys = 0;
  uint64_t num_values = 0;
  int32_t status_code = 0;  // StatusCode for kError
  uint64_t checksum = 0;    // XXH3 of key and value bytes; 0 when not computed
  // The encoding is cereal's binary archive of these fields in this order;
  // EncodeHeader writes the same bytes without going through iostreams.

  template <class Archive>
  void serialize(Archive& ar) {
    ar(magic, version, type, flags, sender, request_id, round, client, table_id, dim, num_keys,
       num_values, status_code, checksum);
  }
};

// Header::flags bits. (0x1 was the honest-peek flag of version 1; now the
// kHonestPeek type.)
// On an asynchronous kPush: more parts of the same push follow on this
// connection. The server applies the part at once (so applying overlaps the
// transfer of the next part) but counts the push, and moves its version, only
// with the last part. Synchronous servers refuse it.
inline constexpr uint8_t kFlagMoreParts = 0x2;

// Immutable bytes with shared ownership. Lets a received ZeroMQ frame or a
// moved-in vector become a payload without copying.
class Buffer {
 public:
  Buffer() = default;
  Buffer(std::shared_ptr<const void> owner, const std::byte* data, size_t size)
      : owner_(std::move(owner)), data_(data), size_(size) {}

  template <typename T>
  static Buffer FromVector(std::vector<T>&& v) {
    auto holder = std::make_shared<std::vector<T>>(std::move(v));
    const auto* data = reinterpret_cast<const std::byte*>(holder->data());
    size_t size = holder->size() * sizeof(T);
    return Buffer(std::shared_ptr<const void>(holder, holder.get()), data, size);
  }
  static Buffer Copy(const void* data, size_t size);
  // A buffer of n T's left uninitialized (no zero-fill: the caller writes
  // every element through *data before sending).
  template <typename T>
  static Buffer Uninitialized(size_t n, T** data) {
    std::shared_ptr<T[]> holder(new T[n]);
    *data = holder.get();
    return Buffer(std::shared_ptr<const void>(holder, holder.get()),
                  reinterpret_cast<const std::byte*>(holder.get()), n * sizeof(T));
  }

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  // Bytes [offset, offset + size) of this buffer, sharing its owner (no copy).
  Buffer Slice(size_t offset, size_t size) const { return Buffer(owner_, data_ + offset, size); }
  bool empty() const { return size_ == 0; }

  // Typed view. The caller has checked size % sizeof(T) == 0; data that is not
  // aligned for T was copied into aligned storage at construction time by the
  // transport (see Aligned()).
  template <typename T>
  std::span<const T> as() const {
    return {reinterpret_cast<const T*>(data_), size_ / sizeof(T)};
  }
  // Returns this buffer if its data is aligned to `alignment`, else an aligned copy.
  Buffer Aligned(size_t alignment) const;

 private:
  std::shared_ptr<const void> owner_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

// BufferPool: recycled storage for large payloads. A multi-MB block fresh from
// malloc is a fresh mmap, and filling it costs one page fault per 4 KiB (about
// 10k faults, several ms, for a 40 MB pull reply: more than filling it). The
// pool keeps released blocks and hands them out again. A Buffer made by the
// pool returns its block when its last reference goes, which after a
// zero-copy send happens on ZeroMQ's I/O thread (transport.cc's free
// callback). Requests below min_bytes get plain, unpooled storage.
//
// Thread-safety: every method is thread-safe. Buffers keep the pool's state
// alive, so a pool may be destroyed while its Buffers are still in use.
class BufferPool {
 public:
  struct Options {
    size_t min_bytes = size_t{128} << 10;       // smaller requests are not pooled
    size_t max_cached_bytes = size_t{1} << 30;  // free blocks kept, in bytes
    size_t max_cached_blocks = 32;              // free blocks kept
  };
  BufferPool() : BufferPool(Options()) {}
  explicit BufferPool(const Options& options);
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // The process-wide pool, used for wire payloads. Never destroyed: ZeroMQ's
  // I/O threads may release buffers while the process exits.
  static BufferPool& Global();

  // A buffer of n T's, left uninitialized (the caller writes every element
  // through *data before sharing it); from a recycled block when one fits.
  template <typename T>
  Buffer Uninitialized(size_t n, T** data) {
    void* p = nullptr;
    Buffer b = Acquire(n * sizeof(T), alignof(T), &p);
    *data = static_cast<T*>(p);
    return b;
  }
  // A pooled copy of `size` bytes.
  Buffer Copy(const void* data, size_t size);

  struct Stats {
    uint64_t hits = 0;    // requests served from a recycled block
    uint64_t misses = 0;  // pooled-size requests that allocated
    size_t cached_bytes = 0;
    size_t cached_blocks = 0;
  };
  Stats stats() const;

 private:
  struct State;
  Buffer Acquire(size_t bytes, size_t alignment, void** data);
  std::shared_ptr<State> state_;
};

struct Message {
  Header header;
  Buffer keys;       // num_keys uint64
  Buffer values;     // num_values float
  std::string body;  // control body (cereal) or error text

  std::span<const uint64_t> key_span() const { return keys.as<uint64_t>(); }
  std::span<const float> value_span() const { return values.as<float>(); }
};

// Bounds applied when decoding bytes from the network.
struct WireLimits {
  uint64_t max_keys = 64ull << 20;     // 64 M keys per message
  uint64_t max_values = 512ull << 20;  // 512 M floats (2 GiB) per message
  uint32_t max_dim = 1 << 16;
  size_t max_body_bytes = 4 << 20;  // control bodies and error texts
  bool verify_checksum = true;
};

// Limits for a socket that carries only control messages (the scheduler's
// and the membership client's): no keys or values, so ZeroMQ refuses any
// frame larger than a control body (ZMQ_MAXMSGSIZE, transport.cc) before it
// is buffered.
inline WireLimits ControlOnlyLimits() {
  WireLimits l;
  l.max_keys = 0;
  l.max_values = 0;
  return l;
}

// Encodes a header into its frame bytes (kHeaderBytes).
std::string EncodeHeader(const Header& header);
void EncodeHeaderTo(const Header& header, std::byte* out);
// Decodes a header frame. InvalidArgument on wrong size, magic or version;
// a peer of another protocol version is named as such, whatever the size its
// headers have (magic and version lead every version's header).
Result<Header> DecodeHeader(const void* data, size_t size);

// Checks a decoded message's counts against its payload frames and limits,
// and the checksum when present. Returns the first problem found.
Status ValidateMessage(const Message& msg, const WireLimits& limits);

// XXH3 over keys then values (what Header::checksum carries).
uint64_t PayloadChecksum(const Buffer& keys, const Buffer& values);

// When data messages carry a payload checksum (see wire_format.md). kAuto:
// only on links that leave the host; loopback traffic never crosses a NIC or
// a cable, and hashing twice per message would cost more than the transfer.
enum class ChecksumMode : uint8_t { kAuto, kAlways, kNever };

// Builders for common messages; they fill counts and checksum.
Message MakeDataMessage(MsgType type, int32_t sender, uint64_t request_id, int64_t round,
                        uint32_t table_id, uint32_t dim, Buffer keys, Buffer values,
                        bool checksum = true);
Message MakeControlMessage(MsgType type, int32_t sender, uint64_t request_id, std::string body);
Message MakeErrorMessage(int32_t sender, uint64_t request_id, const Status& status);
Status StatusFromError(const Message& msg);

}  // namespace phalanx
