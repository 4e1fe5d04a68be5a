#pragma once
// Test helpers for multi-process tests: spawn the real `phalanx` binary with
// its stdout on a pipe, read lines with deadlines, signal and reap it, and a
// tiny HTTP GET over loopback. Used from the test's main thread only.

#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/http_client.h"
#include "launch/process/child_process.h"

namespace phalanx::testutil {

// The binary the multi-process tests start. PHX_PHALANX_BINARY overrides it:
// the sanitizer build's tests run against the release build's binary.
inline std::string PhalanxBinary() {
  const char* env = std::getenv("PHX_PHALANX_BINARY");
  return env && *env ? std::string(env) : std::string(PHX_BINARY_DIR) + "/phalanx";
}

// The `phalanx` binary as a child: stdout on a pipe read line by line
// (ReadLine, WaitFor, Wait), stderr to a log file; SIGKILLed and reaped when
// destroyed. A thin layer over launch::ChildProcess that prepends the binary.
class Process : public launch::ChildProcess {
 public:
  // Starts the binary with `args`; stderr goes to `log_path` (or /dev/null).
  bool Start(const std::vector<std::string>& args, const std::string& log_path = "/dev/null") {
    std::vector<std::string> argv = {PhalanxBinary()};
    argv.insert(argv.end(), args.begin(), args.end());
    launch::ChildOptions options;
    options.log_path = log_path;
    return ChildProcess::Start(argv, options).ok();
  }
};

// GET http://127.0.0.1:port/path; returns the body ("" on failure).
inline std::string HttpGet(int port, const std::string& path) {
  auto reply = phalanx::HttpGet("127.0.0.1", port, path, 5000);
  return reply.ok() ? reply->body : "";
}

// The whole content of a file ("" when it cannot be read): logs and reports
// the tests inspect or print on failure.
inline std::string ReadAll(const std::filesystem::path& p) {
  std::stringstream ss;
  ss << std::ifstream(p).rdbuf();
  return ss.str();
}

}  // namespace phalanx::testutil
