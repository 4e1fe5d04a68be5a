#include "common/transport.h"

#include <zmq.h>

#include <algorithm>
#include <zmq.hpp>

#include "common/metrics.h"

namespace phalanx {
namespace {

zmq::context_t& Context() {
  static zmq::context_t ctx(1);
  return ctx;
}

struct WireCounters {
  Counter& msgs_sent;
  Counter& msgs_received;
  Counter& bytes_sent;
  Counter& bytes_received;
  Counter& malformed;
};

WireCounters& Counters() {
  static WireCounters c{
      MetricsRegistry::Global().GetCounter("phalanx_messages_sent_total", "Messages sent"),
      MetricsRegistry::Global().GetCounter("phalanx_messages_received_total",
                                           "Messages received and decoded"),
      MetricsRegistry::Global().GetCounter("phalanx_bytes_sent_total", "Bytes sent"),
      MetricsRegistry::Global().GetCounter("phalanx_bytes_received_total", "Bytes received"),
      MetricsRegistry::Global().GetCounter("phalanx_malformed_messages_total",
                                           "Messages rejected by the decoder"),
  };
  return c;
}

// Keeps a Buffer's owner alive until ZeroMQ is done with the bytes.
void ReleaseBuffer(void* /*data*/, void* hint) { delete static_cast<Buffer*>(hint); }

zmq::message_t ZeroCopyFrame(const Buffer& buf) {
  if (buf.size() < 64) return zmq::message_t(buf.data(), buf.size());  // small: copy
  auto* keep = new Buffer(buf);
  return zmq::message_t(const_cast<std::byte*>(keep->data()), keep->size(), &ReleaseBuffer, keep);
}

// Frame contents as a Buffer that keeps the zmq message alive (no copy).
Buffer FrameBuffer(zmq::message_t&& frame) {
  auto holder = std::make_shared<zmq::message_t>(std::move(frame));
  const auto* data = static_cast<const std::byte*>(holder->data());
  size_t size = holder->size();
  return Buffer(std::shared_ptr<const void>(holder, holder.get()), data, size).Aligned(8);
}

constexpr size_t kMaxFrames = 8;

class ZmqSocket final : public Socket {
 public:
  ZmqSocket(Kind kind, const WireLimits& limits)
      : kind_(kind),
        limits_(limits),
        socket_(Context(),
                kind == Kind::kRouter ? zmq::socket_type::router : zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::sndtimeo, 5000);
    // Bound the largest frame ZeroMQ will accept: the largest payload frame
    // the limits allow (values, keys or a control body). A larger frame
    // disconnects the peer before ZeroMQ buffers it. (ZeroMQ has no bound on
    // the number of frames of one message, which it holds until the last
    // one: that needs authenticated peers, wire_format.md.)
    const uint64_t largest =
        std::max({limits.max_values * sizeof(float), limits.max_keys * sizeof(uint64_t),
                  static_cast<uint64_t>(limits.max_body_bytes)});
    const auto max_frame = static_cast<int64_t>(largest + 4096);
    socket_.set(zmq::sockopt::maxmsgsize, max_frame);
    socket_.set(zmq::sockopt::sndhwm, 100000);
    socket_.set(zmq::sockopt::rcvhwm, 100000);
    if (kind == Kind::kRouter) {
      socket_.set(zmq::sockopt::router_mandatory, 1);
      // A bound socket's last words (the scheduler's Shutdown, a server's
      // final replies) must leave before the process exits.
      socket_.set(zmq::sockopt::linger, 1000);
    }
  }

  Status DoBind(const std::string& endpoint) {
    std::string ep = endpoint;
    // ZeroMQ spells "any port" as '*'.
    if (ep.size() > 2 && ep.compare(ep.size() - 2, 2, ":0") == 0) ep.replace(ep.size() - 1, 1, "*");
    try {
      socket_.bind(ep);
      endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
    } catch (const zmq::error_t& e) {
      return Unavailable("cannot bind " + endpoint + ": " + e.what());
    }
    return Status::Ok();
  }

  Status DoConnect(const std::string& endpoint) {
    try {
      socket_.connect(endpoint);
      endpoint_ = endpoint;
    } catch (const zmq::error_t& e) {
      return InvalidArgument("cannot connect to " + endpoint + ": " + e.what());
    }
    return Status::Ok();
  }

  std::string endpoint() const override { return endpoint_; }
  int port() const override {
    auto pos = endpoint_.rfind(':');
    return pos == std::string::npos ? 0 : std::atoi(endpoint_.c_str() + pos + 1);
  }

  Status Send(const Message& msg, const std::string& peer) override {
    std::vector<zmq::message_t> frames;
    frames.reserve(4);
    frames.emplace_back(kHeaderBytes);
    EncodeHeaderTo(msg.header, static_cast<std::byte*>(frames.back().data()));
    if (IsDataMessage(msg.header.type)) {
      frames.push_back(ZeroCopyFrame(msg.keys));
      frames.push_back(ZeroCopyFrame(msg.values));
    } else {
      frames.emplace_back(msg.body.data(), msg.body.size());
    }
    return SendFrames(std::move(frames), peer);
  }

  Status SendRaw(const std::vector<std::string>& raw, const std::string& peer) override {
    std::vector<zmq::message_t> frames;
    for (const auto& f : raw) frames.emplace_back(f.data(), f.size());
    return SendFrames(std::move(frames), peer);
  }

  Received Recv(int timeout_ms) override {
    Received out;
    try {
      // Try first, poll only when nothing is queued: a message that is
      // already there costs one recv, not a poll(2) and a recv.
      zmq::message_t head;
      if (!socket_.recv(head, zmq::recv_flags::dontwait)) {
        zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
        if (timeout_ms <= 0 || zmq::poll(&item, 1, std::chrono::milliseconds(timeout_ms)) == 0 ||
            !socket_.recv(head, zmq::recv_flags::dontwait)) {
          out.status = DeadlineExceeded("no message within " + std::to_string(timeout_ms) + " ms");
          return out;
        }
      }
      std::vector<zmq::message_t> frames;
      frames.reserve(4);
      bool more = head.more();
      size_t bytes = head.size();
      frames.push_back(std::move(head));
      while (more) {
        zmq::message_t frame;
        // The rest of a multipart message is delivered atomically with its first part.
        if (!socket_.recv(frame, zmq::recv_flags::none)) {
          out.status = Unavailable("recv interrupted");
          return out;
        }
        more = frame.more();
        bytes += frame.size();
        if (frames.size() < kMaxFrames + 1) frames.push_back(std::move(frame));
      }
      Counters().bytes_received.Increment(bytes);
      size_t first = 0;
      if (kind_ == Kind::kRouter) {
        out.peer = frames[0].to_string();
        first = 1;
      }
      out.status = Decode(frames, first, &out.msg);
      if (out.status.ok()) {
        Counters().msgs_received.Increment();
      } else {
        Counters().malformed.Increment();
      }
    } catch (const zmq::error_t& e) {
      // A signal interrupted the wait: report "nothing yet" so the caller's
      // loop can look at its stop flag.
      if (e.num() == EINTR) {
        out.status = DeadlineExceeded("interrupted");
      } else if (e.num() == ETERM) {
        out.status = Cancelled("ZeroMQ context terminated");
      } else {
        out.status = Unavailable(std::string("recv failed: ") + e.what());
      }
    }
    return out;
  }

  void* handle() { return socket_.handle(); }

 private:
  Status Decode(std::vector<zmq::message_t>& frames, size_t first, Message* msg) {
    if (frames.size() > kMaxFrames) return InvalidArgument("too many frames");
    if (frames.size() < first + 2) return InvalidArgument("too few frames");
    auto header = DecodeHeader(frames[first].data(), frames[first].size());
    if (!header.ok()) return header.status();
    msg->header = *header;
    size_t payload = frames.size() - first - 1;
    if (IsDataMessage(msg->header.type)) {
      if (payload != 2) return InvalidArgument("data message needs 2 payload frames");
      msg->keys = FrameBuffer(std::move(frames[first + 1]));
      msg->values = FrameBuffer(std::move(frames[first + 2]));
    } else {
      if (payload != 1) return InvalidArgument("control message needs 1 body frame");
      if (frames[first + 1].size() > limits_.max_body_bytes) {
        return InvalidArgument("control body over limit");
      }
      msg->body = frames[first + 1].to_string();
    }
    return ValidateMessage(*msg, limits_);
  }

  Status SendFrames(std::vector<zmq::message_t> frames, const std::string& peer) {
    try {
      size_t bytes = 0;
      if (kind_ == Kind::kRouter) {
        if (peer.empty()) return InvalidArgument("ROUTER send needs a peer");
        if (!socket_.send(zmq::buffer(peer), zmq::send_flags::sndmore)) {
          return DeadlineExceeded("send queue full");
        }
      }
      for (size_t i = 0; i < frames.size(); ++i) {
        bytes += frames[i].size();
        auto flags = i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
        if (!socket_.send(frames[i], flags)) return DeadlineExceeded("send queue full");
      }
      Counters().msgs_sent.Increment();
      Counters().bytes_sent.Increment(bytes);
    } catch (const zmq::error_t& e) {
      if (e.num() == EHOSTUNREACH) return Unavailable("peer is not connected");
      return Unavailable(std::string("send failed: ") + e.what());
    }
    return Status::Ok();
  }

  Kind kind_;
  WireLimits limits_;
  zmq::socket_t socket_;
  std::string endpoint_;
};

}  // namespace

Result<std::unique_ptr<Socket>> Socket::Bind(Kind kind, const std::string& endpoint,
                                             const WireLimits& limits) {
  auto s = std::make_unique<ZmqSocket>(kind, limits);
  PHX_RETURN_IF_ERROR(s->DoBind(endpoint));
  return std::unique_ptr<Socket>(std::move(s));
}

Result<std::unique_ptr<Socket>> Socket::Connect(Kind kind, const std::string& endpoint,
                                                const WireLimits& limits) {
  auto s = std::make_unique<ZmqSocket>(kind, limits);
  PHX_RETURN_IF_ERROR(s->DoConnect(endpoint));
  return std::unique_ptr<Socket>(std::move(s));
}

Result<std::vector<bool>> PollReadable(std::span<Socket* const> sockets, int timeout_ms) {
  std::vector<zmq::pollitem_t> items;
  for (Socket* s : sockets) {
    items.push_back({static_cast<ZmqSocket*>(s)->handle(), 0, ZMQ_POLLIN, 0});
  }
  try {
    zmq::poll(items.data(), items.size(), std::chrono::milliseconds(timeout_ms));
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) return Unavailable(std::string("poll failed: ") + e.what());
    for (auto& it : items) it.revents = 0;
  }
  std::vector<bool> ready;
  for (auto& it : items) ready.push_back((it.revents & ZMQ_POLLIN) != 0);
  return ready;
}

bool IsLoopbackHost(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

std::string TcpEndpoint(const std::string& host, int port) {
  return "tcp://" + host + ":" + std::to_string(port);
}

}  // namespace phalanx
