#include "common/node_lines.h"

#include <charconv>
#include <nlohmann/json.hpp>

namespace phalanx {
namespace {

using nlohmann::json;

std::optional<std::string_view> Payload(std::string_view line, std::string_view prefix) {
  if (line.substr(0, prefix.size()) != prefix) return std::nullopt;
  line.remove_prefix(prefix.size());
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  return line;
}

// The payload of a JSON line as an object, or a discarded value.
json Object(std::string_view line, std::string_view prefix) {
  auto payload = Payload(line, prefix);
  if (!payload) return json(json::value_t::discarded);
  json j = json::parse(*payload, nullptr, false);
  if (!j.is_object()) return json(json::value_t::discarded);
  return j;
}

std::string Line(std::string_view prefix, const json& j) { return std::string(prefix) + j.dump(); }

// A number field, or nullopt when absent or not a number (never throws).
template <typename T>
std::optional<T> Number(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  return it->get<T>();
}

template <typename T>
void Put(json& j, const char* key, const std::optional<T>& v) {
  if (v) j[key] = *v;
}

}  // namespace

std::string FormatEndpointLine(std::string_view endpoint) {
  return std::string(kEndpointLinePrefix) + std::string(endpoint);
}

std::optional<std::string> ParseEndpointLine(std::string_view line) {
  auto payload = Payload(line, kEndpointLinePrefix);
  if (!payload || payload->empty()) return std::nullopt;
  return std::string(*payload);
}

std::string FormatHttpLine(int port) { return std::string(kHttpLinePrefix) + std::to_string(port); }

std::optional<int> ParseHttpLine(std::string_view line) {
  auto payload = Payload(line, kHttpLinePrefix);
  if (!payload) return std::nullopt;
  int port = 0;
  auto [end, ec] = std::from_chars(payload->data(), payload->data() + payload->size(), port);
  if (ec != std::errc() || end != payload->data() + payload->size()) return std::nullopt;
  return port;
}

std::string FormatProgressLine(const ProgressLine& p) {
  json j;
  j["rank"] = p.rank;
  j["round"] = p.round;
  j["version"] = p.version;
  Put(j, "loss", p.loss);
  Put(j, "wall", p.wall);
  Put(j, "rows_per_s", p.rows_per_s);
  Put(j, "test_accuracy", p.test_accuracy);
  Put(j, "staleness_mean", p.staleness_mean);
  Put(j, "updates", p.updates);
  Put(j, "refused", p.refused);
  if (p.final) j["final"] = true;
  return Line(kProgressLinePrefix, j);
}

std::optional<ProgressLine> ParseProgressLine(std::string_view line) {
  json j = Object(line, kProgressLinePrefix);
  if (j.is_discarded()) return std::nullopt;
  ProgressLine p;
  p.rank = Number<int>(j, "rank").value_or(-1);
  p.round = Number<int64_t>(j, "round").value_or(0);
  p.version = Number<int64_t>(j, "version").value_or(0);
  p.loss = Number<double>(j, "loss");
  p.wall = Number<double>(j, "wall");
  p.rows_per_s = Number<double>(j, "rows_per_s");
  p.test_accuracy = Number<double>(j, "test_accuracy");
  p.staleness_mean = Number<double>(j, "staleness_mean");
  p.updates = Number<int64_t>(j, "updates");
  p.refused = Number<int64_t>(j, "refused");
  auto f = j.find("final");
  p.final = f != j.end() && f->is_boolean() && f->get<bool>();
  return p;
}

std::string FormatResultLine(const ResultLine& r) {
  return Line(kResultLinePrefix,
              json{{"rank", r.rank}, {"final_test_accuracy", r.final_test_accuracy}});
}

std::optional<ResultLine> ParseResultLine(std::string_view line) {
  json j = Object(line, kResultLinePrefix);
  if (j.is_discarded()) return std::nullopt;
  ResultLine r;
  r.rank = Number<int>(j, "rank").value_or(-1);
  r.final_test_accuracy = Number<double>(j, "final_test_accuracy").value_or(-1);
  return r;
}

std::string FormatRestoredLine(const RestoredLine& r) {
  return Line(kRestoredLinePrefix, json{{"rank", r.rank},
                                        {"restored_round", r.restored_round},
                                        {"updates_lost", r.updates_lost}});
}

std::optional<RestoredLine> ParseRestoredLine(std::string_view line) {
  json j = Object(line, kRestoredLinePrefix);
  if (j.is_discarded()) return std::nullopt;
  RestoredLine r;
  r.rank = Number<int>(j, "rank").value_or(-1);
  r.restored_round = Number<int64_t>(j, "restored_round").value_or(-1);
  r.updates_lost = Number<int64_t>(j, "updates_lost").value_or(0);
  return r;
}

std::string FormatQuorumLine(const QuorumLine& q) {
  return Line(kQuorumLinePrefix, json{{"server_rank", q.server_rank},
                                      {"table", q.table},
                                      {"round", q.round},
                                      {"worker", q.worker},
                                      {"worker_rank", q.worker_rank},
                                      {"event", q.excluded ? "excluded" : "rejoined"},
                                      {"missed", q.missed},
                                      {"quorum", q.quorum}});
}

std::optional<QuorumLine> ParseQuorumLine(std::string_view line) {
  json j = Object(line, kQuorumLinePrefix);
  if (j.is_discarded()) return std::nullopt;
  auto event = j.find("event");
  if (event == j.end() || !event->is_string()) return std::nullopt;
  const std::string e = event->get<std::string>();
  if (e != "excluded" && e != "rejoined") return std::nullopt;
  auto worker = Number<int32_t>(j, "worker");
  if (!worker) return std::nullopt;
  QuorumLine q;
  q.server_rank = Number<int>(j, "server_rank").value_or(-1);
  q.table = Number<int64_t>(j, "table").value_or(0);
  q.round = Number<int64_t>(j, "round").value_or(0);
  q.worker = *worker;
  q.worker_rank = Number<int32_t>(j, "worker_rank").value_or(-1);
  q.excluded = e == "excluded";
  q.missed = Number<int32_t>(j, "missed").value_or(0);
  q.quorum = Number<int32_t>(j, "quorum").value_or(0);
  return q;
}

namespace {

json SnapshotsJson(const SnapshotsLine& s) {
  return json{{"rank", s.rank},
              {"pid", s.pid},
              {"snapshots", s.snapshots},
              {"snapshot_failures", s.snapshot_failures},
              {"last_snapshot_round", s.last_snapshot_round}};
}

std::optional<SnapshotsLine> SnapshotsFromJson(const json& j) {
  if (j.is_discarded() || !j.is_object() || !Number<int64_t>(j, "snapshot_failures")) {
    return std::nullopt;
  }
  SnapshotsLine s;
  s.rank = Number<int>(j, "rank").value_or(-1);
  s.pid = Number<int64_t>(j, "pid").value_or(-1);
  s.snapshots = Number<int64_t>(j, "snapshots").value_or(0);
  s.snapshot_failures = Number<int64_t>(j, "snapshot_failures").value_or(0);
  s.last_snapshot_round = Number<int64_t>(j, "last_snapshot_round").value_or(-1);
  return s;
}

}  // namespace

std::string FormatSnapshotsLine(const SnapshotsLine& s) {
  return Line(kSnapshotsLinePrefix, SnapshotsJson(s));
}

std::optional<SnapshotsLine> ParseSnapshotsLine(std::string_view line) {
  return SnapshotsFromJson(Object(line, kSnapshotsLinePrefix));
}

std::optional<SnapshotsLine> SnapshotsFromStatus(std::string_view status_json) {
  json j = json::parse(status_json, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("role", std::string()) != "server") {
    return std::nullopt;
  }
  return SnapshotsFromJson(j);
}

std::optional<std::string_view> LastLineWithPrefix(std::string_view text, std::string_view prefix) {
  std::optional<std::string_view> found;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (line.substr(0, prefix.size()) == prefix) found = line;
    start = end + 1;
  }
  return found;
}

}  // namespace phalanx
