#include "launch/cluster/log_follower.h"

#include <fstream>

namespace phalanx::launch {

void LogFollower::Read(const std::string& path, std::vector<std::string>* lines) {
  File& f = files_[path];
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return;
  const int64_t size = static_cast<int64_t>(in.tellg());
  if (size < f.offset) f = File();  // truncated or replaced
  if (size == f.offset) return;
  in.seekg(f.offset);
  std::string chunk(static_cast<size_t>(size - f.offset), '\0');
  in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
  chunk.resize(static_cast<size_t>(in.gcount()));
  f.offset += static_cast<int64_t>(chunk.size());
  f.partial += chunk;
  size_t start = 0, end;
  while ((end = f.partial.find('\n', start)) != std::string::npos) {
    lines->push_back(f.partial.substr(start, end - start));
    start = end + 1;
  }
  f.partial.erase(0, start);
}

}  // namespace phalanx::launch
