#include "launch/faults/fault_schedule.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

namespace phalanx::launch {
namespace {

const std::map<std::string, FaultKind>& Kinds() {
  static const std::map<std::string, FaultKind> kinds = {
      {"byzantine", FaultKind::kByzantine}, {"straggler", FaultKind::kStraggler},
      {"kill", FaultKind::kKill},           {"delay", FaultKind::kDelay},
      {"reset", FaultKind::kReset},         {"loss", FaultKind::kLoss},
      {"bandwidth", FaultKind::kBandwidth}, {"partition", FaultKind::kPartition}};
  return kinds;
}

std::string Num(double v) { return fmt::format("{:g}", v); }

bool Exists(const JobConfig& c, const NodeRef& n) {
  switch (n.role) {
    case Role::kScheduler:
      return n.rank == 0;
    case Role::kServer:
      return n.rank >= 0 && n.rank < c.cluster.servers;
    case Role::kWorker:
      return n.rank >= 0 && n.rank < c.cluster.workers;
  }
  return false;
}

Result<NodeRef> ResolveNode(const JobConfig& c, const std::string& where, const std::string& text) {
  auto n = ParseNodeRef(text);
  if (!n.ok()) return InvalidArgument(where + ": " + n.status().message());
  if (!Exists(c, *n)) {
    return InvalidArgument(fmt::format(
        "{} '{}' does not exist: the cluster has the scheduler, server-0..server-{} and "
        "worker-0..worker-{}",
        where, text, c.cluster.servers - 1, c.cluster.workers - 1));
  }
  return *n;
}

// The links between a and b, or every link of a when b is empty.
std::vector<Link> LinksOf(const JobConfig& c, const NodeRef& a, const std::optional<NodeRef>& b) {
  std::vector<Link> out;
  NodeRef sched{Role::kScheduler, 0};
  auto add = [&](NodeRef client, NodeRef listener) {
    if (b && !((client == a && listener == *b) || (client == *b && listener == a))) return;
    out.push_back({client, listener});
  };
  for (int s = 0; s < c.cluster.servers; ++s) add({Role::kServer, s}, sched);
  for (int w = 0; w < c.cluster.workers; ++w) {
    add({Role::kWorker, w}, sched);
    for (int s = 0; s < c.cluster.servers; ++s) add({Role::kWorker, w}, {Role::kServer, s});
  }
  if (!b) {
    std::vector<Link> mine;
    for (auto& l : out) {
      if (l.client == a || l.listener == a) mine.push_back(l);
    }
    return mine;
  }
  return out;
}

}  // namespace

const char* FaultKindName(FaultKind kind) {
  for (const auto& [name, k] : Kinds()) {
    if (k == kind) return name.c_str();
  }
  return "?";
}

std::string NodeRef::name() const {
  if (role == Role::kScheduler) return "scheduler";
  return std::string(role == Role::kServer ? "server-" : "worker-") + std::to_string(rank);
}

Result<NodeRef> ParseNodeRef(const std::string& text) {
  if (text == "scheduler") return NodeRef{Role::kScheduler, 0};
  for (auto [prefix, role] : {std::pair{"server-", Role::kServer}, {"worker-", Role::kWorker}}) {
    std::string p(prefix);
    if (text.rfind(p, 0) != 0) continue;
    std::string digits = text.substr(p.size());
    if (digits.empty() || digits.size() > 6 ||
        !std::all_of(digits.begin(), digits.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
      break;
    return NodeRef{role, std::stoi(digits)};
  }
  return InvalidArgument("'" + text + "' is not a node name (scheduler, server-N or worker-N)");
}

std::vector<NodeRef> ClusterNodes(const JobConfig& config) {
  std::vector<NodeRef> out{{Role::kScheduler, 0}};
  for (int s = 0; s < config.cluster.servers; ++s) out.push_back({Role::kServer, s});
  for (int w = 0; w < config.cluster.workers; ++w) out.push_back({Role::kWorker, w});
  return out;
}

bool Fault::network() const {
  return kind == FaultKind::kDelay || kind == FaultKind::kReset || kind == FaultKind::kLoss ||
         kind == FaultKind::kBandwidth || kind == FaultKind::kPartition;
}

bool Fault::uses_proxy() const {
  return kind == FaultKind::kDelay || kind == FaultKind::kReset ||
         (kind == FaultKind::kBandwidth && via_proxy);
}

bool Fault::behaviour() const {
  return kind == FaultKind::kByzantine || kind == FaultKind::kStraggler;
}

std::string Fault::Describe() const {
  std::string link = node.name();
  if (network()) link += peer ? "<->" + peer->name() : " (all links)";
  std::string dir = egress && ingress ? "" : egress ? ", out" : ", in";
  switch (kind) {
    case FaultKind::kByzantine:
      return "byzantine " + attack + " on " + link;
    case FaultKind::kStraggler:
      return fmt::format("straggler +{} ms/step on {}", step_delay_ms, link);
    case FaultKind::kKill:
      return "kill " + link +
             (restart_after_s ? ", restart after " + Num(*restart_after_s) + " s" : "");
    case FaultKind::kDelay:
      return fmt::format("delay {} ms (+0..{} jitter) on {}{}", Num(delay_ms), Num(jitter_ms), link,
                         dir);
    case FaultKind::kReset:
      return "reset connections on " + link;
    case FaultKind::kLoss:
      return fmt::format("loss {}% on {}{}", Num(loss_pct), link, dir);
    case FaultKind::kBandwidth:
      return fmt::format("bandwidth {} kbit/s on {}{}{}", Num(rate_kbit), link, dir,
                         via_proxy ? " (proxy)" : "");
    case FaultKind::kPartition:
      return "partition " + link;
  }
  return "?";
}

std::vector<std::string> FaultSchedule::OverridesFor(const JobConfig& config,
                                                     const NodeRef& node) const {
  std::vector<std::string> out;
  // Every scheduled liar plus the config's own, so attacks that depend on the
  // number of Byzantine workers (ALIE's z) see the right f.
  std::set<int> liars(config.byzantine.ranks.begin(), config.byzantine.ranks.end());
  if (config.byzantine.ranks.empty()) {
    for (int r = config.cluster.workers - config.byzantine.count; r < config.cluster.workers; ++r)
      liars.insert(r);
  }
  for (const auto& f : faults) {
    if (f.kind == FaultKind::kByzantine) liars.insert(f.node.rank);
  }
  for (const auto& f : faults) {
    if (!(f.node == node)) continue;
    if (f.kind == FaultKind::kByzantine) {
      std::string ranks;
      for (int r : liars) ranks += (ranks.empty() ? "" : ",") + std::to_string(r);
      out.push_back("byzantine.ranks=[" + ranks + "]");
      out.push_back("byzantine.attack=" + f.attack);
      out.push_back("byzantine.from_round=" + std::to_string(static_cast<int>(f.at)));
    } else if (f.kind == FaultKind::kStraggler) {
      out.push_back("train.step_delay_ms=" + std::to_string(f.step_delay_ms));
    }
  }
  return out;
}

std::vector<Link> FaultSchedule::ProxiedLinks(const JobConfig& config, const Fault& fault) const {
  if (!fault.uses_proxy()) return {};
  return LinksOf(config, fault.node, fault.peer);
}

bool FaultSchedule::NeedsNetns(const JobConfig& config, const Fault& fault) const {
  if (!fault.network()) return false;
  if (!fault.uses_proxy()) return true;
  for (const auto& l : ProxiedLinks(config, fault)) {
    if (l.listener.role != Role::kScheduler) return true;
  }
  return false;
}

namespace {

// The kind's own parameters of entry `w` (already checked to be the only ones
// given), into `f`.
Status ReadKindParameters(const FaultConfig& e, const std::string& w, bool rounds, bool seconds,
                          Fault& f) {
  auto bad = [&](const std::string& msg) { return InvalidArgument(w + ": " + msg); };
  switch (f.kind) {
    case FaultKind::kByzantine: {
      if (f.node.role != Role::kWorker) return bad("only workers can be Byzantine");
      static const std::set<std::string> kAttacks = {
          "random", "sign-flip", "gaussian", "alie", "foe", "label-flip", "nan", "inf", "silent"};
      if (!kAttacks.count(e.attack)) {
        return bad(
            "attack must be one of random, sign-flip, gaussian, alie, foe, label-flip, "
            "nan, inf, silent; got '" +
            e.attack + "'");
      }
      if (seconds) {
        return bad(
            "a byzantine fault starts at a round (at_round), which the worker counts "
            "itself");
      }
      f.attack = e.attack;
      break;
    }
    case FaultKind::kStraggler:
      if (f.node.role != Role::kWorker) return bad("only workers can be stragglers");
      if (rounds || seconds) return bad("a straggler is slow for the whole run: drop at/until");
      if (!e.step_delay_ms || !(*e.step_delay_ms > 0) || *e.step_delay_ms > 600000) {
        return bad("step_delay_ms must be in (0, 600000]");
      }
      f.step_delay_ms = static_cast<int>(std::lround(*e.step_delay_ms));
      break;
    case FaultKind::kKill:
      if (!rounds && !seconds) return bad("a kill needs a time: at_round or at_s");
      if (e.restart_after_s && !(*e.restart_after_s >= 0 && *e.restart_after_s < 86400)) {
        return bad("restart_after_s must be in [0, 86400)");
      }
      f.restart_after_s = e.restart_after_s;
      break;
    case FaultKind::kDelay:
      f.delay_ms = e.delay_ms.value_or(0);
      f.jitter_ms = e.jitter_ms.value_or(0);
      if (!(f.delay_ms >= 0 && f.delay_ms <= 60000) ||
          !(f.jitter_ms >= 0 && f.jitter_ms <= 60000)) {
        return bad("delay_ms and jitter_ms must be in [0, 60000]");
      }
      if (f.delay_ms == 0 && f.jitter_ms == 0) return bad("delay needs delay_ms or jitter_ms");
      break;
    case FaultKind::kReset:
      break;
    case FaultKind::kLoss:
      if (!e.loss_pct || !(*e.loss_pct > 0 && *e.loss_pct <= 100)) {
        return bad("loss_pct must be in (0, 100]");
      }
      f.loss_pct = *e.loss_pct;
      if (f.peer) return bad("loss acts on the node's whole link: drop peer");
      break;
    case FaultKind::kBandwidth:
      if (!e.rate_kbit || !(*e.rate_kbit >= 8 && *e.rate_kbit <= 1e8)) {
        return bad("rate_kbit must be in [8, 1e8]");
      }
      f.rate_kbit = *e.rate_kbit;
      if (e.via == "proxy") {
        f.via_proxy = true;
      } else if (!e.via.empty()) {
        return bad("via must be \"proxy\" (or absent for tbf), got '" + e.via + "'");
      }
      if (f.peer && !f.via_proxy) {
        return bad("tbf limits the node's whole link: drop peer, or use via = \"proxy\"");
      }
      break;
    case FaultKind::kPartition:
      break;
  }
  return Status::Ok();
}

}  // namespace

Result<FaultSchedule> BuildFaultSchedule(const JobConfig& c) {
  FaultSchedule schedule;
  for (size_t i = 0; i < c.faults.size(); ++i) {
    const FaultConfig& e = c.faults[i];
    const std::string w = "faults[" + std::to_string(i) + "]";
    auto bad = [&](const std::string& msg) { return InvalidArgument(w + ": " + msg); };
    Fault f;
    f.index = static_cast<int>(i);
    if (e.kind.empty()) return bad("kind is required");
    auto k = Kinds().find(e.kind);
    if (k == Kinds().end()) {
      return bad("unknown kind '" + e.kind +
                 "'; expected byzantine, straggler, kill, delay, reset, loss, bandwidth or "
                 "partition");
    }
    f.kind = k->second;
    const std::string kind = e.kind;
    if (e.node.empty()) return bad("node is required");
    PHX_ASSIGN_OR_RETURN(f.node, ResolveNode(c, w + ".node", e.node));
    if (!e.peer.empty()) {
      if (!f.network()) return bad("peer applies to network faults only, not " + kind);
      PHX_ASSIGN_OR_RETURN(f.peer, ResolveNode(c, w + ".peer", e.peer));
      if (*f.peer == f.node) return bad("peer is the node itself");
    }

    // When.
    bool rounds = e.at_round || e.until_round;
    bool seconds = e.at_s || e.until_s;
    if (rounds && seconds) {
      return bad("use at_round/until_round or at_s/until_s, not both units in one entry");
    }
    f.in_rounds = rounds;
    if (e.at_round) f.at = *e.at_round;
    if (e.at_s) f.at = *e.at_s;
    if (e.until_round) f.until = *e.until_round;
    if (e.until_s) f.until = *e.until_s;
    std::string at_key = rounds ? "at_round" : "at_s";
    std::string until_key = rounds ? "until_round" : "until_s";
    if (!std::isfinite(f.at) || (f.until && !std::isfinite(*f.until))) {
      return bad("times must be finite numbers");
    }
    if (f.at < 0) {
      return bad(at_key + " = " + Num(f.at) +
                 " is in the past: times count from the launch (round 0, 0 s)");
    }
    if (f.until && *f.until <= f.at) {
      return bad(until_key + " (" + Num(*f.until) + ") must be after " + at_key + " (" + Num(f.at) +
                 ")");
    }
    if (rounds && f.at >= c.train.rounds) {
      return bad(at_key + " = " + Num(f.at) + " is never reached: the job runs " +
                 std::to_string(c.train.rounds) + " rounds");
    }
    if (f.until && !f.network()) {
      return bad(until_key + " applies to network faults only; a " + kind +
                 " fault lasts to the end of the run");
    }

    // Parameters: each kind takes its own and no others.
    std::map<std::string, bool> given = {{"attack", !e.attack.empty()},
                                         {"restart_after_s", e.restart_after_s.has_value()},
                                         {"step_delay_ms", e.step_delay_ms.has_value()},
                                         {"delay_ms", e.delay_ms.has_value()},
                                         {"jitter_ms", e.jitter_ms.has_value()},
                                         {"loss_pct", e.loss_pct.has_value()},
                                         {"rate_kbit", e.rate_kbit.has_value()},
                                         {"via", !e.via.empty()},
                                         {"direction", e.direction != "both"}};
    static const std::map<FaultKind, std::set<std::string>> kAllowed = {
        {FaultKind::kByzantine, {"attack"}},
        {FaultKind::kStraggler, {"step_delay_ms"}},
        {FaultKind::kKill, {"restart_after_s"}},
        {FaultKind::kDelay, {"delay_ms", "jitter_ms", "direction"}},
        {FaultKind::kReset, {}},
        {FaultKind::kLoss, {"loss_pct", "direction"}},
        {FaultKind::kBandwidth, {"rate_kbit", "direction", "via"}},
        {FaultKind::kPartition, {}}};
    for (const auto& [key, present] : given) {
      if (present && !kAllowed.at(f.kind).count(key)) {
        return bad(key + " does not apply to a " + kind + " fault");
      }
    }
    if (e.direction == "in") {
      f.egress = false;
    } else if (e.direction == "out") {
      f.ingress = false;
    } else if (e.direction != "both") {
      return bad("direction must be in, out or both, got '" + e.direction + "'");
    }

    PHX_RETURN_IF_ERROR(ReadKindParameters(e, w, rounds, seconds, f));
    if (f.uses_proxy()) {
      if (f.peer && f.node.role == f.peer->role) {
        return bad("no TCP link between " + f.node.name() + " and " + f.peer->name() +
                   " passes the fault proxy (it carries worker->server and "
                   "node->scheduler links)");
      }
    }
    if (f.kind == FaultKind::kPartition && f.peer && f.node.role == Role::kWorker &&
        f.peer->role == Role::kWorker) {
      return bad(
          "workers do not talk to each other: partition a worker from a server or the "
          "scheduler");
    }
    schedule.faults.push_back(f);
  }

  // Overlaps: two network faults of one kind on the same link at once would
  // fight over the same rule, and a link cannot be cut twice.
  for (size_t a = 0; a < schedule.faults.size(); ++a) {
    for (size_t b = a + 1; b < schedule.faults.size(); ++b) {
      const Fault& x = schedule.faults[a];
      const Fault& y = schedule.faults[b];
      if (!x.network() || x.kind != y.kind) continue;
      // Links touched: {node, peer}; a missing peer covers every link of node.
      auto covers = [](const Fault& p, const Fault& q) {
        if (p.node == q.node) return !p.peer || !q.peer || *p.peer == *q.peer;
        if (p.peer && q.peer) return *p.peer == q.node && *q.peer == p.node;
        if (!p.peer && q.peer) return *q.peer == p.node;
        if (p.peer && !q.peer) return *p.peer == q.node;
        return false;
      };
      if (!covers(x, y)) continue;
      std::string what = fmt::format("faults[{}] and faults[{}]", x.index, y.index);
      if (x.in_rounds != y.in_rounds) {
        return InvalidArgument(what + ": " + FaultKindName(x.kind) +
                               " faults on the same link must use the same time unit, so that "
                               "they can be checked for overlap");
      }
      double xe = x.until.value_or(1e300), ye = y.until.value_or(1e300);
      if (x.at < ye && y.at < xe) {
        return InvalidArgument(what + " overlap: two " + std::string(FaultKindName(x.kind)) +
                               " faults on the same link (" + x.node.name() +
                               (x.peer ? "<->" + x.peer->name() : "") + ") at the same time");
      }
    }
  }
  return schedule;
}

}  // namespace phalanx::launch
