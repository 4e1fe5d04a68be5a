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

namespace {

uint32_t Be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// The dimensions of an IDX ubyte header of rank `expected_rank` at the start
// of bytes[0, size); DataLoss naming `path` when it is not one. *count gets
// the number of data bytes the header promises.
Result<std::vector<uint32_t>> ParseIdxHeader(const uint8_t* bytes, size_t size,
                                             size_t expected_rank, const std::string& path,
                                             uint64_t* count) {
  if (size < 4) {
    return DataLoss(path + ": file too short for an IDX header (" + std::to_string(size) +
                    " bytes)");
  }
  // Magic: two zero bytes, the element type (0x08 = unsigned byte), the rank.
  if (bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 || bytes[3] != expected_rank) {
    char buf[9];
    std::snprintf(buf, sizeof(buf), "%08x", Be32(bytes));
    return DataLoss(path + ": bad IDX magic number 0x" + buf +
                    " (expected unsigned-byte array of rank " + std::to_string(expected_rank) +
                    ")");
  }
  if (size < IdxHeaderBytes(expected_rank)) return DataLoss(path + ": truncated IDX header");
  std::vector<uint32_t> dims;
  *count = 1;
  for (size_t d = 0; d < expected_rank; ++d) {
    dims.push_back(Be32(bytes + 4 + 4 * d));
    *count *= dims.back();
    // No real IDX file comes near 2^40 bytes; this also stops overflow.
    if (*count > (uint64_t{1} << 40)) return DataLoss(path + ": implausible IDX dimensions");
  }
  return dims;
}

}  // namespace

Result<IdxArray> ParseIdx(std::vector<uint8_t> bytes, size_t expected_rank,
                          const std::string& path) {
  IdxArray out;
  out.path = path;
  uint64_t count = 0;
  PHX_ASSIGN_OR_RETURN(out.dims,
                       ParseIdxHeader(bytes.data(), bytes.size(), expected_rank, path, &count));
  const size_t header = IdxHeaderBytes(expected_rank);
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

Result<std::unique_ptr<IdxStream>> IdxStream::Open(const std::string& path, size_t expected_rank) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return NotFound("no such file: " + path);
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return NotFound("cannot open " + path);
  gzbuffer(f, 1 << 20);
  std::unique_ptr<IdxStream> s(new IdxStream(path, f));
  const size_t header = IdxHeaderBytes(expected_rank);
  std::vector<uint8_t> head(header);
  const int n = gzread(f, head.data(), static_cast<unsigned>(header));
  PHX_RETURN_IF_ERROR(s->GzStatus("reading the header of"));
  uint64_t count = 0;
  PHX_ASSIGN_OR_RETURN(s->dims_, ParseIdxHeader(head.data(), n < 0 ? 0 : static_cast<size_t>(n),
                                                expected_rank, path, &count));
  s->record_bytes_ = s->dims_[0] == 0 ? 0 : static_cast<size_t>(count / s->dims_[0]);
  return s;
}

IdxStream::~IdxStream() {
  if (file_ != nullptr) gzclose(static_cast<gzFile>(file_));
}

Status IdxStream::GzStatus(const char* what) {
  int err = Z_OK;
  const char* msg = gzerror(static_cast<gzFile>(file_), &err);
  if (err == Z_OK) return Status::Ok();
  return DataLoss(std::string("truncated or corrupt gzip file: ") + what + " " + path_ + ": " +
                  (msg != nullptr ? msg : "unknown zlib error"));
}

Status IdxStream::Read(size_t count, uint8_t* out) {
  const size_t want = count * record_bytes_;
  size_t got = 0;
  while (got < want) {
    const size_t step = std::min(want - got, size_t{1} << 30);
    const int n = gzread(static_cast<gzFile>(file_), out + got, static_cast<unsigned>(step));
    PHX_RETURN_IF_ERROR(GzStatus("reading"));
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  if (got < want) {
    return DataLoss(path_ + ": IDX data truncated (a record ends " + std::to_string(want - got) +
                    " bytes short)");
  }
  return Status::Ok();
}

Status IdxStream::Finish() {
  uint8_t extra = 0;
  const int n = gzread(static_cast<gzFile>(file_), &extra, 1);
  PHX_RETURN_IF_ERROR(GzStatus("reading"));
  if (n > 0) return DataLoss(path_ + ": trailing garbage after the IDX data");
  const int rc = gzclose(static_cast<gzFile>(file_));
  file_ = nullptr;
  if (rc != Z_OK) return DataLoss("error closing gzip file " + path_);
  return Status::Ok();
}

}  // namespace phalanx::worker::internal
