#pragma once
// Whole-file reading with transparent gzip decompression, and the IDX format
// of (Fashion-)MNIST. Stateless free functions; safe from any thread.

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace phalanx::worker::internal {

// Reads the whole file, gunzipping it if it is gzip-compressed (zlib reads
// plain files unchanged). NotFound when the file does not exist, DataLoss when
// the gzip stream is truncated or corrupt; both name the path.
Result<std::vector<uint8_t>> ReadMaybeGzipFile(const std::string& path);

// A parsed IDX file of unsigned bytes: dims (big-endian on disk) and the data
// that follows the header.
struct IdxArray {
  std::string path;  // where it was read from, for error messages
  std::vector<uint32_t> dims;
  std::vector<uint8_t> data;  // product(dims) bytes
};

// Parses an IDX ubyte array with exactly `expected_rank` dimensions. DataLoss
// (naming `path`) on a wrong magic number, wrong rank, or a length that does
// not match the header (truncated or with trailing bytes).
Result<IdxArray> ParseIdx(std::vector<uint8_t> bytes, size_t expected_rank,
                          const std::string& path);

}  // namespace phalanx::worker::internal
