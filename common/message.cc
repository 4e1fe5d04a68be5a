#include "common/message.h"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <new>

#include "common/mutex.h"

namespace phalanx {

const char* MsgTypeName(MsgType type) {
  switch (type) {
    case MsgType::kInvalid:
      return "Invalid";
    case MsgType::kRegister:
      return "Register";
    case MsgType::kRegisterAck:
      return "RegisterAck";
    case MsgType::kClusterView:
      return "ClusterView";
    case MsgType::kHeartbeat:
      return "Heartbeat";
    case MsgType::kBarrier:
      return "Barrier";
    case MsgType::kBarrierRelease:
      return "BarrierRelease";
    case MsgType::kLeave:
      return "Leave";
    case MsgType::kShutdown:
      return "Shutdown";
    case MsgType::kPull:
      return "Pull";
    case MsgType::kPullResponse:
      return "PullResponse";
    case MsgType::kPush:
      return "Push";
    case MsgType::kPushAck:
      return "PushAck";
    case MsgType::kHonestPeek:
      return "HonestPeek";
    case MsgType::kHonestPeekResponse:
      return "HonestPeekResponse";
    case MsgType::kError:
      return "Error";
    case MsgType::kGramPartial:
      return "GramPartial";
    case MsgType::kGramPlan:
      return "GramPlan";
  }
  return "Unknown";
}

bool IsDataMessage(MsgType type) {
  return type == MsgType::kPull || type == MsgType::kPullResponse || type == MsgType::kPush ||
         type == MsgType::kPushAck || type == MsgType::kHonestPeek ||
         type == MsgType::kHonestPeekResponse;
}

namespace {
bool KnownType(uint8_t t) {
  switch (static_cast<MsgType>(t)) {
    case MsgType::kRegister:
    case MsgType::kRegisterAck:
    case MsgType::kClusterView:
    case MsgType::kHeartbeat:
    case MsgType::kBarrier:
    case MsgType::kBarrierRelease:
    case MsgType::kLeave:
    case MsgType::kShutdown:
    case MsgType::kPull:
    case MsgType::kPullResponse:
    case MsgType::kPush:
    case MsgType::kPushAck:
    case MsgType::kHonestPeek:
    case MsgType::kHonestPeekResponse:
    case MsgType::kError:
    case MsgType::kGramPartial:
    case MsgType::kGramPlan:
      return true;
    default:
      return false;
  }
}

// The header's fields in wire order, each copied as its native little-endian
// bytes: exactly what cereal's BinaryOutputArchive writes for Header (tests
// check the two agree), without an ostringstream per message.
static_assert(std::endian::native == std::endian::little, "the wire format is little-endian");

template <typename Fn>
void ForEachField(Header& h, Fn&& fn) {
  fn(&h.magic, sizeof(h.magic));
  fn(&h.version, sizeof(h.version));
  fn(&h.type, sizeof(h.type));
  fn(&h.flags, sizeof(h.flags));
  fn(&h.sender, sizeof(h.sender));
  fn(&h.request_id, sizeof(h.request_id));
  fn(&h.round, sizeof(h.round));
  fn(&h.client, sizeof(h.client));
  fn(&h.table_id, sizeof(h.table_id));
  fn(&h.dim, sizeof(h.dim));
  fn(&h.num_keys, sizeof(h.num_keys));
  fn(&h.num_values, sizeof(h.num_values));
  fn(&h.status_code, sizeof(h.status_code));
  fn(&h.checksum, sizeof(h.checksum));
}
static_assert(sizeof(MsgType) == 1);
static_assert(sizeof(Header::magic) + sizeof(Header::version) + sizeof(Header::type) +
                      sizeof(Header::flags) + sizeof(Header::sender) + sizeof(Header::request_id) +
                      sizeof(Header::round) + sizeof(Header::client) + sizeof(Header::table_id) +
                      sizeof(Header::dim) + sizeof(Header::num_keys) + sizeof(Header::num_values) +
                      sizeof(Header::status_code) + sizeof(Header::checksum) ==
                  kHeaderBytes,
              "kHeaderBytes is the sum of the header's fields");
// Every version's header starts with magic (u32) then version (u16), so a
// peer of another version is recognised before its header size is judged.
constexpr size_t kVersionPrefixBytes = sizeof(uint32_t) + sizeof(uint16_t);
}  // namespace

Buffer Buffer::Copy(const void* data, size_t size) {
  std::vector<uint64_t> storage((size + 7) / 8);
  if (size > 0) std::memcpy(storage.data(), data, size);
  auto holder = std::make_shared<std::vector<uint64_t>>(std::move(storage));
  return Buffer(std::shared_ptr<const void>(holder, holder.get()),
                reinterpret_cast<const std::byte*>(holder->data()), size);
}

Buffer Buffer::Aligned(size_t alignment) const {
  if (reinterpret_cast<uintptr_t>(data_) % alignment == 0) return *this;
  return Copy(data_, size_);
}

namespace {
constexpr size_t kBlockAlign = 64;
constexpr size_t kBlockGranule = size_t{64} << 10;  // capacities round up to this
}  // namespace

struct BufferPool::State {
  struct Block {
    std::byte* data;
    size_t capacity;
  };
  explicit State(const Options& o) : options(o) {}
  ~State() {
    for (const Block& b : free) ::operator delete(b.data, std::align_val_t(kBlockAlign));
  }

  void Release(std::byte* data, size_t capacity) {
    {
      MutexLock lock(&mu);
      if (free.size() < options.max_cached_blocks &&
          cached + capacity <= options.max_cached_bytes) {
        free.push_back({data, capacity});
        cached += capacity;
        return;
      }
    }
    ::operator delete(data, std::align_val_t(kBlockAlign));
  }

  const Options options;
  mutable Mutex mu;
  std::vector<Block> free GUARDED_BY(mu);
  size_t cached GUARDED_BY(mu) = 0;
  std::atomic<uint64_t> hits{0}, misses{0};
};

BufferPool::BufferPool(const Options& options) : state_(std::make_shared<State>(options)) {}

BufferPool& BufferPool::Global() {
  static BufferPool* pool = new BufferPool();  // never destroyed, see header
  return *pool;
}

Buffer BufferPool::Acquire(size_t bytes, size_t alignment, void** data) {
  if (bytes < state_->options.min_bytes && alignment <= __STDCPP_DEFAULT_NEW_ALIGNMENT__) {
    // Small: plain storage (malloc's own free lists already recycle it).
    std::shared_ptr<std::byte[]> holder(new std::byte[std::max<size_t>(bytes, 1)]);
    *data = holder.get();
    return Buffer(std::shared_ptr<const void>(holder, holder.get()), holder.get(), bytes);
  }
  State::Block block{nullptr, 0};
  {
    // Best fit among the free blocks, but not one more than 4x too big: that
    // would pin a large block under a small payload.
    MutexLock lock(&state_->mu);
    auto& free = state_->free;
    size_t best = free.size();
    for (size_t i = 0; i < free.size(); ++i) {
      if (free[i].capacity >= bytes && free[i].capacity / 4 <= bytes &&
          (best == free.size() || free[i].capacity < free[best].capacity)) {
        best = i;
      }
    }
    if (best != free.size()) {
      block = free[best];
      free[best] = free.back();
      free.pop_back();
      state_->cached -= block.capacity;
    }
  }
  if (block.data != nullptr) {
    state_->hits.fetch_add(1, std::memory_order_relaxed);
  } else {
    state_->misses.fetch_add(1, std::memory_order_relaxed);
    block.capacity = (bytes + kBlockGranule - 1) / kBlockGranule * kBlockGranule;
    block.data =
        static_cast<std::byte*>(::operator new(block.capacity, std::align_val_t(kBlockAlign)));
  }
  *data = block.data;
  // The deleter holds the state, so the block has somewhere to go back to.
  std::shared_ptr<const void> owner(
      block.data, [state = state_, capacity = block.capacity](const void* p) {
        state->Release(static_cast<std::byte*>(const_cast<void*>(p)), capacity);
      });
  return Buffer(std::move(owner), block.data, bytes);
}

Buffer BufferPool::Copy(const void* data, size_t size) {
  std::byte* out = nullptr;
  Buffer b = Uninitialized<std::byte>(size, &out);
  if (size > 0) std::memcpy(out, data, size);
  return b;
}

BufferPool::Stats BufferPool::stats() const {
  Stats s;
  s.hits = state_->hits.load(std::memory_order_relaxed);
  s.misses = state_->misses.load(std::memory_order_relaxed);
  MutexLock lock(&state_->mu);
  s.cached_bytes = state_->cached;
  s.cached_blocks = state_->free.size();
  return s;
}

void EncodeHeaderTo(const Header& header, std::byte* out) {
  Header h = header;
  size_t off = 0;
  ForEachField(h, [&](const void* field, size_t n) {
    std::memcpy(out + off, field, n);
    off += n;
  });
}

std::string EncodeHeader(const Header& header) {
  std::string out(kHeaderBytes, '\0');
  EncodeHeaderTo(header, reinterpret_cast<std::byte*>(out.data()));
  return out;
}

Result<Header> DecodeHeader(const void* data, size_t size) {
  if (size >= kVersionPrefixBytes) {
    uint32_t magic;
    uint16_t version;
    std::memcpy(&magic, data, sizeof(magic));
    std::memcpy(&version, static_cast<const std::byte*>(data) + sizeof(magic), sizeof(version));
    if (magic == kWireMagic && version != kWireVersion) {
      return InvalidArgument("peer speaks wire protocol version " + std::to_string(version) +
                             ", this build speaks version " + std::to_string(kWireVersion) +
                             " only; run the same Phalanx build on every node");
    }
  }
  if (size != kHeaderBytes) {
    return InvalidArgument("header frame is " + std::to_string(size) + " bytes, expected " +
                           std::to_string(kHeaderBytes));
  }
  Header h;
  size_t off = 0;
  const auto* in = static_cast<const std::byte*>(data);
  ForEachField(h, [&](void* field, size_t n) {
    std::memcpy(field, in + off, n);
    off += n;
  });
  if (h.magic != kWireMagic) return InvalidArgument("bad magic in header");
  if (!KnownType(static_cast<uint8_t>(h.type))) {
    return InvalidArgument("unknown message type " + std::to_string(static_cast<int>(h.type)));
  }
  return h;
}

uint64_t PayloadChecksum(const Buffer& keys, const Buffer& values) {
  // XXH3 streamed over keys then values equals XXH3 of their concatenation,
  // so a message with one payload frame takes the one-shot path.
  uint64_t h;
  static const std::byte kNone{};
  if (keys.empty() || values.empty()) {
    const Buffer& b = keys.empty() ? values : keys;
    h = XXH3_64bits(b.empty() ? &kNone : b.data(), b.size());
  } else {
    XXH3_state_t state;
    XXH3_INITSTATE(&state);
    XXH3_64bits_reset(&state);
    XXH3_64bits_update(&state, keys.data(), keys.size());
    XXH3_64bits_update(&state, values.data(), values.size());
    h = XXH3_64bits_digest(&state);
  }
  return h == 0 ? 1 : h;  // 0 means "not computed"
}

Status ValidateMessage(const Message& msg, const WireLimits& limits) {
  const Header& h = msg.header;
  if (h.num_keys > limits.max_keys) {
    return InvalidArgument("num_keys " + std::to_string(h.num_keys) + " over limit " +
                           std::to_string(limits.max_keys));
  }
  if (h.num_values > limits.max_values) {
    return InvalidArgument("num_values " + std::to_string(h.num_values) + " over limit " +
                           std::to_string(limits.max_values));
  }
  if (h.dim > limits.max_dim)
    return InvalidArgument("dim " + std::to_string(h.dim) + " over limit");
  if (msg.keys.size() != h.num_keys * sizeof(uint64_t)) {
    return InvalidArgument("key frame has " + std::to_string(msg.keys.size()) +
                           " bytes for num_keys " + std::to_string(h.num_keys));
  }
  if (msg.values.size() != h.num_values * sizeof(float)) {
    return InvalidArgument("value frame has " + std::to_string(msg.values.size()) +
                           " bytes for num_values " + std::to_string(h.num_values));
  }
  if (msg.body.size() > limits.max_body_bytes) return InvalidArgument("control body over limit");
  if (IsDataMessage(h.type)) {
    if (!msg.body.empty()) return InvalidArgument("data message with a control body");
    // A pull (or peek) response carries values only, in the order of the
    // requested keys.
    const bool response =
        h.type == MsgType::kPullResponse || h.type == MsgType::kHonestPeekResponse;
    if (response && h.num_keys != 0) {
      return InvalidArgument(std::string(MsgTypeName(h.type)) + " carries keys");
    }
    if (response && h.dim == 0 && h.num_values != 0) {
      return InvalidArgument(std::string(MsgTypeName(h.type)) + " with dim 0");
    }
    if (response && h.dim != 0 && h.num_values % h.dim != 0) {
      return InvalidArgument(std::string(MsgTypeName(h.type)) + " values not a multiple of dim");
    }
    if (h.type == MsgType::kPush && h.num_values != h.num_keys * static_cast<uint64_t>(h.dim)) {
      return InvalidArgument("num_values " + std::to_string(h.num_values) + " != num_keys " +
                             std::to_string(h.num_keys) + " x dim " + std::to_string(h.dim));
    }
    if (h.type == MsgType::kPush && h.dim == 0 && h.num_keys > 0) {
      return InvalidArgument("push with dim 0");
    }
  } else if (h.num_keys != 0 || h.num_values != 0) {
    return InvalidArgument(std::string(MsgTypeName(h.type)) + " carries data frames");
  }
  if (limits.verify_checksum && h.checksum != 0 &&
      h.checksum != PayloadChecksum(msg.keys, msg.values)) {
    return DataLoss("payload checksum mismatch");
  }
  return Status::Ok();
}

Message MakeDataMessage(MsgType type, int32_t sender, uint64_t request_id, int64_t round,
                        uint32_t table_id, uint32_t dim, Buffer keys, Buffer values,
                        bool checksum) {
  Message m;
  m.header.type = type;
  m.header.sender = sender;
  m.header.request_id = request_id;
  m.header.round = round;
  m.header.table_id = table_id;
  m.header.dim = dim;
  m.header.num_keys = keys.size() / sizeof(uint64_t);
  m.header.num_values = values.size() / sizeof(float);
  m.header.checksum = checksum ? PayloadChecksum(keys, values) : 0;
  m.keys = std::move(keys);
  m.values = std::move(values);
  return m;
}

Message MakeControlMessage(MsgType type, int32_t sender, uint64_t request_id, std::string body) {
  Message m;
  m.header.type = type;
  m.header.sender = sender;
  m.header.request_id = request_id;
  m.body = std::move(body);
  return m;
}

Message MakeErrorMessage(int32_t sender, uint64_t request_id, const Status& status) {
  Message m = MakeControlMessage(MsgType::kError, sender, request_id, status.message());
  m.header.status_code = static_cast<int32_t>(status.code());
  return m;
}

Status StatusFromError(const Message& msg) {
  int code = msg.header.status_code;
  if (code <= 0 || code > static_cast<int>(StatusCode::kInternal)) {
    code = static_cast<int>(StatusCode::kInternal);
  }
  return Status(static_cast<StatusCode>(code), msg.body);
}

}  // namespace phalanx
