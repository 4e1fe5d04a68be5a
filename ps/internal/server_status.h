#pragma once
// The parts of a server's /status JSON that describe its tables and the
// cluster view, built on the request-loop thread (ServerImpl::UpdateStatus).

#include <nlohmann/json.hpp>
#include <vector>

#include "common/control.h"
#include "ps/internal/sync_round.h"

namespace phalanx::ps::internal {

// One object per table (id, dim, rows, bytes, version, rounds updated and
// failed, quorum, excluded workers); *rows gets the rows of all tables.
nlohmann::json TablesStatus(const std::vector<SyncRound>& rounds,
                            const std::vector<NodeInfo>& workers, size_t* rows);
// Every server and worker of the view (id, role, rank, alive, http_port).
nlohmann::json PeersStatus(const ClusterView& view);

}  // namespace phalanx::ps::internal
