#include "ps/internal/replies.h"

#include <spdlog/spdlog.h>

namespace phalanx::ps::internal {

Message PushAck(int32_t self, const Header& req, int64_t round) {
  return MakeDataMessage(MsgType::kPushAck, self, req.request_id, round, req.table_id, 0, Buffer(),
                         Buffer());
}

Message PullReply(int32_t self, const Header& req, int64_t version, uint32_t dim, Buffer values,
                  bool checksum) {
  return MakeDataMessage(MsgType::kPullResponse, self, req.request_id, version, req.table_id, dim,
                         Buffer(), std::move(values), checksum);
}

Message PeekReply(int32_t self, const Header& req, int64_t version, uint32_t dim, Buffer values) {
  return MakeDataMessage(MsgType::kHonestPeekResponse, self, req.request_id, version, req.table_id,
                         dim, Buffer(), std::move(values), /*checksum=*/true);
}

Outgoing ErrorReply(int32_t self, const std::string& peer, const Header& req, const Status& s) {
  return Outgoing{peer, MakeErrorMessage(self, req.request_id, s), false};
}

Outgoing Refuse(int32_t self, const std::string& peer, const Header& req, const Status& s) {
  spdlog::debug("server: rejecting {} from {}: {}", MsgTypeName(req.type), req.sender,
                s.ToString());
  return Outgoing{peer, MakeErrorMessage(self, req.request_id, s), true};
}

}  // namespace phalanx::ps::internal
