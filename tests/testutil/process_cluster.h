#pragma once
// ProcessCluster: a scheduler and S servers as real `phalanx` processes on
// loopback (configured from fashion-mnist-softmax.toml plus overrides); the
// test adds worker processes or in-process worker::Clients. Every process is
// killed when the cluster goes out of scope. Test-thread only.

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/node_lines.h"
#include "tests/testutil/process.h"

namespace phalanx::testutil {

inline std::string Config(const std::string& name) {
  return std::string(PHX_SOURCE_DIR) + "/launch/configs/" + name + ".toml";
}

// The next line of `p` that starts with `prefix` (a common/node_lines.h
// kind), parsed with `parse`; nullopt on timeout, at EOF or when it does not
// parse.
template <typename Parse>
auto WaitForLine(Process& p, std::string_view prefix, Parse parse, int timeout_ms) {
  using Parsed = decltype(parse(std::string_view{}));
  std::string head(prefix);
  auto rest = p.WaitFor(head, timeout_ms);
  if (!rest) return Parsed{};
  return parse(head + *rest);
}

inline std::filesystem::path TempDir(const std::string& name) {
  namespace fs = std::filesystem;
  fs::path p = fs::temp_directory_path() / ("phalanx-it-" + name + "-" + std::to_string(getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// A scheduler and servers as real processes; the caller adds workers.
class ProcessCluster {
 public:
  ProcessCluster(const std::string& name, int servers, int workers, std::vector<std::string> sets)
      : dir_(TempDir(name)), sets_(std::move(sets)) {
    sets_.push_back("cluster.servers=" + std::to_string(servers));
    sets_.push_back("cluster.workers=" + std::to_string(workers));
    scheduler_.Start(Args({"scheduler", "--port", "0"}), (dir_ / "scheduler.log").string());
    auto http = WaitForLine(scheduler_, kHttpLinePrefix, ParseHttpLine, 20000);
    auto ep = WaitForLine(scheduler_, kEndpointLinePrefix, ParseEndpointLine, 20000);
    if (http) scheduler_http_ = *http;
    if (ep) endpoint_ = *ep;
    for (int s = 0; s < servers; ++s) {
      servers_.push_back(std::make_unique<Process>());
      servers_.back()->Start(
          Args({"server", "--scheduler", endpoint_, "--rank", std::to_string(s)}),
          (dir_ / ("server-" + std::to_string(s) + ".log")).string());
    }
  }

  std::vector<std::string> Args(std::vector<std::string> head) const {
    head.push_back("--config");
    head.push_back(Config("fashion-mnist-softmax"));
    for (auto& s : sets_) {
      head.push_back("--set");
      head.push_back(s);
    }
    return head;
  }

  Process& AddWorker(int rank) {
    workers_.push_back(std::make_unique<Process>());
    workers_.back()->Start(
        Args({"worker", "--scheduler", endpoint_, "--rank", std::to_string(rank)}),
        (dir_ / ("worker-" + std::to_string(rank) + ".log")).string());
    return *workers_.back();
  }

  nlohmann::json SchedulerStatus() const {
    return nlohmann::json::parse(HttpGet(scheduler_http_, "/status"), nullptr, false);
  }

  const std::string& endpoint() const { return endpoint_; }
  const std::filesystem::path& dir() const { return dir_; }
  Process& scheduler() { return scheduler_; }
  Process& server(int i) { return *servers_[i]; }

 private:
  std::filesystem::path dir_;
  std::vector<std::string> sets_;
  Process scheduler_;
  std::vector<std::unique_ptr<Process>> servers_;
  std::vector<std::unique_ptr<Process>> workers_;
  std::string endpoint_;
  int scheduler_http_ = 0;
};

}  // namespace phalanx::testutil
