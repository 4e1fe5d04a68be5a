// Runs a fuzz target over files instead of under libFuzzer: every file named
// on the command line, every file in each named directory, or (no arguments)
// the target's checked-in corpus, PHX_FUZZ_CORPUS. Used as a regression test
// in every build: the corpus holds the seeds and every input that once
// crashed a target. A crash or a violated invariant aborts the process.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;

bool RunFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    return false;
  }
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<fs::path> roots;
  for (int i = 1; i < argc; ++i) roots.emplace_back(argv[i]);
  if (roots.empty()) roots.emplace_back(PHX_FUZZ_CORPUS);
  size_t files = 0;
  for (const fs::path& root : roots) {
    std::error_code ec;
    if (fs::is_directory(root, ec)) {
      std::vector<fs::path> entries;
      for (const auto& e : fs::directory_iterator(root)) {
        if (e.is_regular_file()) entries.push_back(e.path());
      }
      std::sort(entries.begin(), entries.end());  // a stable order for reproducing
      for (const auto& p : entries) files += RunFile(p) ? 1 : 0;
    } else if (!RunFile(root)) {
      return 2;
    }
  }
  if (files == 0 && argc == 1) {
    std::fprintf(stderr, "no corpus files in %s\n", PHX_FUZZ_CORPUS);
    return 2;
  }
  std::printf("replayed %zu inputs\n", files);
  return 0;
}
