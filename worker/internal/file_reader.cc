#include "worker/internal/file_reader.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

namespace phalanx::worker::internal {

Result<std::vector<uint8_t>> ReadMaybeGzipFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return NotFound("no such file: " + path);
  }
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return NotFound("cannot open " + path);
  // A large internal buffer cuts the number of read() calls on the ~26 MB
  // Fashion-MNIST image file.
  gzbuffer(f, 1 << 20);
  // Start from the on-disk size (exact for plain files, a lower bound for
  // gzip) and double as needed, so that small files cost no big allocation.
  const uintmax_t disk_size = std::filesystem::file_size(path, ec);
  std::vector<uint8_t> out(ec ? size_t{1} << 16 : static_cast<size_t>(disk_size) + 1);
  size_t used = 0;
  while (true) {
    if (used == out.size()) out.resize(out.size() * 2);
    // gzread takes an unsigned count; 1 GiB steps stay far below its limit.
    const size_t want = std::min(out.size() - used, size_t{1} << 30);
    const int n = gzread(f, out.data() + used, static_cast<unsigned>(want));
    if (n < 0) {
      int err = 0;
      std::string msg = gzerror(f, &err);
      gzclose(f);
      return DataLoss("corrupt gzip data in " + path + ": " + msg);
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  out.resize(used);
  // zlib reports a truncated stream only through gzerror (Z_BUF_ERROR,
  // "unexpected end of file") after returning the bytes it could decode.
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  if (err != Z_OK) {
    std::string text = msg != nullptr ? msg : "unknown zlib error";
    gzclose(f);
    return DataLoss("truncated or corrupt gzip file " + path + ": " + text);
  }
  if (gzclose(f) != Z_OK) return DataLoss("error closing gzip file " + path);
  return out;
}

Result<IdxArray> ParseIdx(std::vector<uint8_t> bytes, size_t expected_rank,
                          const std::string& path) {
  auto be32 = [&](size_t off) {
    return (uint32_t{bytes[off]} << 24) | (uint32_t{bytes[off + 1]} << 16) |
           (uint32_t{bytes[off + 2]} << 8) | uint32_t{bytes[off + 3]};
  };
  if (bytes.size() < 4) {
    return DataLoss(path + ": file too short for an IDX header (" + std::to_string(bytes.size()) +
                    " bytes)");
  }
  // Magic: two zero bytes, the element type (0x08 = unsigned byte), the rank.
  if (bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 || bytes[3] != expected_rank) {
    return DataLoss(path + ": bad IDX magic number 0x" +
                    [&] {
                      char buf[9];
                      std::snprintf(buf, sizeof(buf), "%08x", be32(0));
                      return std::string(buf);
                    }() +
                    " (expected unsigned-byte array of rank " + std::to_string(expected_rank) +
                    ")");
  }
  const size_t header = 4 + 4 * expected_rank;
  if (bytes.size() < header) {
    return DataLoss(path + ": truncated IDX header");
  }
  IdxArray out;
  out.path = path;
  uint64_t count = 1;
  for (size_t d = 0; d < expected_rank; ++d) {
    const uint32_t dim = be32(4 + 4 * d);
    out.dims.push_back(dim);
    count *= dim;
    // No real IDX file comes near 2^40 bytes; this also stops overflow.
    if (count > (uint64_t{1} << 40)) return DataLoss(path + ": implausible IDX dimensions");
  }
  const uint64_t have = bytes.size() - header;
  if (have != count) {
    return DataLoss(path + ": IDX header promises " + std::to_string(count) + " data bytes but " +
                    std::to_string(have) + " follow (" +
                    (have < count ? "truncated" : "trailing garbage") + ")");
  }
  bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(header));
  out.data = std::move(bytes);
  return out;
}

}  // namespace phalanx::worker::internal
