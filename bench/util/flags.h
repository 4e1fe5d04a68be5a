#pragma once
// Flag and environment parsing shared by the benches: --name=value on the
// command line wins over the environment variable PHX_BENCH_<NAME>.
// Main thread only (reads the environment).

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace phalanx::bench {

// Value of `name`: --name=value, else $PHX_BENCH_<NAME>, else nullopt.
std::optional<std::string> FlagValue(int argc, char** argv, const std::string& name);

// Sets *out to the integer value of `name` when it is given.
void ReadInt(int argc, char** argv, const std::string& name, int64_t* out);

// Whitespace-separated words of s.
std::vector<std::string> SplitWords(const std::string& s);

// Directory of the running executable.
std::filesystem::path SelfDir();

}  // namespace phalanx::bench
