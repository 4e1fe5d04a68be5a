#include "bench/util/flags.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace phalanx::bench {

std::optional<std::string> FlagValue(int argc, char** argv, const std::string& name) {
  const std::string flag = "--" + name + "=";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], flag.c_str(), flag.size()) == 0) return argv[i] + flag.size();
  }
  std::string env = "PHX_BENCH_" + name;
  std::transform(env.begin(), env.end(), env.begin(), ::toupper);
  if (const char* v = std::getenv(env.c_str())) return std::string(v);
  return std::nullopt;
}

void ReadInt(int argc, char** argv, const std::string& name, int64_t* out) {
  if (auto v = FlagValue(argc, argv, name)) *out = std::stoll(*v);
}

std::vector<std::string> SplitWords(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::filesystem::path SelfDir() {
  return std::filesystem::read_symlink("/proc/self/exe").parent_path();
}

}  // namespace phalanx::bench
