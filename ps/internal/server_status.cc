#include "ps/internal/server_status.h"

#include "aggregators/gram.h"
#include "ps/internal/quorum_watch.h"
#include "ps/server.h"
#include "ps/table.h"

namespace phalanx::ps::internal {

nlohmann::json TablesStatus(const std::vector<SyncRound>& rounds,
                            const std::vector<NodeInfo>& workers, size_t* rows) {
  auto tables = nlohmann::json::array();
  *rows = 0;
  for (size_t i = 0; i < rounds.size(); ++i) {
    const EmbeddingTable& t = rounds[i].table();
    *rows += t.size();
    tables.push_back({{"id", i},
                      {"dim", t.dim()},
                      {"rows", t.size()},
                      {"bytes", t.memory_bytes()},
                      {"version", rounds[i].version()},
                      {"rounds_updated", rounds[i].rounds_updated()},
                      {"rounds_failed", rounds[i].rounds_failed()},
                      {"quorum", rounds[i].QuorumSize(workers)},
                      {"excluded", ExcludedWorkers(rounds[i])}});
  }
  return tables;
}

nlohmann::json PeersStatus(const ClusterView& view) {
  auto peers = nlohmann::json::array();
  for (const auto* group : {&view.servers, &view.workers}) {
    for (const auto& n : *group) {
      peers.push_back({{"id", n.id},
                       {"role", RoleName(n.role)},
                       {"rank", n.rank},
                       {"alive", n.alive},
                       {"http_port", n.http_port}});
    }
  }
  return peers;
}

}  // namespace phalanx::ps::internal

namespace phalanx::ps {

// Declared in ps/server.h; here beside the rest of what /status shows.
const BuildInfo& ProcessBuildInfo() {
  static const BuildInfo kInfo =
      CurrentBuildInfo({{"gram", std::string(aggregators::GramKernelName())},
                        {"optimizer", std::string(OptimizerKernelName())}});
  return kInfo;
}

}  // namespace phalanx::ps
