#pragma once
// LogFollower: the new complete lines of files that other processes append
// to, as `tail -f` reads them. The launcher follows the servers' logs (their
// stdout is not captured, so lines such as PHX_QUORUM land there) to show
// what the servers report while the job runs.
//
// Thread-safety: one thread (the launcher's).

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace phalanx::launch {

class LogFollower {
 public:
  // Appends to `lines` the lines completed in `path` since the last call for
  // it (from its start on the first); a file that does not exist yet reads
  // as empty, and one that shrank (replaced) is read again from its start.
  void Read(const std::string& path, std::vector<std::string>* lines);

 private:
  struct File {
    int64_t offset = 0;
    std::string partial;  // an unfinished last line
  };
  std::map<std::string, File> files_;
};

}  // namespace phalanx::launch
