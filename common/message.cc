#include "common/message.h"

#include <xxhash.h>

#include <cereal/archives/binary.hpp>
#include <sstream>

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
         type == MsgType::kPushAck;
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
    case MsgType::kError:
    case MsgType::kGramPartial:
    case MsgType::kGramPlan:
      return true;
    default:
      return false;
  }
}

// Serialized size of a Header: all fields are fixed-size.
size_t HeaderBytes() {
  static const size_t bytes = EncodeHeader(Header{}).size();
  return bytes;
}
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

std::string EncodeHeader(const Header& header) {
  std::ostringstream os(std::ios::binary);
  {
    cereal::BinaryOutputArchive ar(os);
    ar(header);
  }
  return std::move(os).str();
}

Result<Header> DecodeHeader(const void* data, size_t size) {
  if (size != HeaderBytes()) {
    return InvalidArgument("header frame is " + std::to_string(size) + " bytes, expected " +
                           std::to_string(HeaderBytes()));
  }
  Header h;
  try {
    std::istringstream is(std::string(static_cast<const char*>(data), size), std::ios::binary);
    cereal::BinaryInputArchive ar(is);
    ar(h);
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("undecodable header: ") + e.what());
  }
  if (h.magic != kWireMagic) return InvalidArgument("bad magic in header");
  if (h.version != kWireVersion) {
    return InvalidArgument("unsupported protocol version " + std::to_string(h.version));
  }
  if (!KnownType(static_cast<uint8_t>(h.type))) {
    return InvalidArgument("unknown message type " + std::to_string(static_cast<int>(h.type)));
  }
  return h;
}

uint64_t PayloadChecksum(const Buffer& keys, const Buffer& values) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  if (!keys.empty()) XXH3_64bits_update(state, keys.data(), keys.size());
  if (!values.empty()) XXH3_64bits_update(state, values.data(), values.size());
  uint64_t h = XXH3_64bits_digest(state);
  XXH3_freeState(state);
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
    // A pull response carries values only, in the order of the pulled keys.
    if (h.type == MsgType::kPullResponse && h.num_keys != 0) {
      return InvalidArgument("pull response carries keys");
    }
    if (h.type == MsgType::kPullResponse && h.dim == 0 && h.num_values != 0) {
      return InvalidArgument("pull response with dim 0");
    }
    if (h.type == MsgType::kPullResponse && h.dim != 0 && h.num_values % h.dim != 0) {
      return InvalidArgument("pull response values not a multiple of dim");
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
