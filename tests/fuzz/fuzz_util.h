#pragma once
// Helpers shared by the fuzz targets (see tests/fuzz/README.md). Each target
// defines LLVMFuzzerTestOneInput; the same source links either libFuzzer
// (scripts/fuzz.sh, clang) or replay_main.cc, which runs a checked-in corpus
// as a regression test in every build.

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace phalanx::fuzz {

// Splits a fuzz input into chunks: a 2-byte little-endian length, then that
// many bytes (fewer when the input ends first). Lets one flat input describe
// several frames or fields while keeping mutations local.
class ChunkReader {
 public:
  ChunkReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  // One byte (0 when the input is exhausted).
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::string Chunk() {
    const size_t len = size_t{Byte()} | size_t{Byte()} << 8;
    const size_t n = std::min(len, size_ - std::min(pos_, size_));
    std::string out(reinterpret_cast<const char*>(data_) + pos_, n);
    pos_ += n;
    return out;
  }
  // The remaining chunks, at most max_chunks (one per message frame).
  std::vector<std::string> Chunks(size_t max_chunks) {
    std::vector<std::string> out;
    while (!empty() && out.size() < max_chunks) out.push_back(Chunk());
    return out;
  }
  // Everything not read yet.
  std::string_view Rest() const {
    if (pos_ >= size_) return {};
    return {reinterpret_cast<const char*>(data_) + pos_, size_ - pos_};
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// A file holding `bytes` under $TMPDIR (default /tmp), removed when this goes
// out of scope: for loaders that take a path.
class TempFile {
 public:
  explicit TempFile(std::string_view bytes, const char* suffix = "") {
    const char* dir = std::getenv("TMPDIR");
    path_ =
        std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/phx-fuzz-XXXXXX" + suffix;
    const int fd = mkstemps(path_.data(), static_cast<int>(std::char_traits<char>::length(suffix)));
    if (fd < 0) Fail("cannot create a temporary file");
    for (size_t off = 0; off < bytes.size();) {
      const ssize_t n = write(fd, bytes.data() + off, bytes.size() - off);
      if (n <= 0) Fail("cannot write the temporary file");
      off += static_cast<size_t>(n);
    }
    close(fd);
  }
  ~TempFile() { unlink(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

  [[noreturn]] static void Fail(const char* what) {
    std::fprintf(stderr, "fuzz harness: %s\n", what);
    std::abort();
  }

 private:
  std::string path_;
};

// An invariant of the code under test failed: abort, which libFuzzer (and the
// replay driver's caller) reports as a crash with this message.
[[noreturn]] inline void Violated(const char* what) {
  std::fprintf(stderr, "fuzz: invariant violated: %s\n", what);
  std::abort();
}

}  // namespace phalanx::fuzz
