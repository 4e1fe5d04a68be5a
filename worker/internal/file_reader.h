#pragma once
// Whole-file reading with transparent gzip decompression, and the IDX format
// of (Fashion-)MNIST. Stateless free functions; safe from any thread.

#include <cstdint>
#include <memory>
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

// Bytes of an IDX header of `rank` dimensions: the magic number and one
// big-endian 32-bit size per dimension.
inline size_t IdxHeaderBytes(size_t rank) { return 4 + 4 * rank; }

// Parses an IDX ubyte array with exactly `expected_rank` dimensions. DataLoss
// (naming `path`) on a wrong magic number, wrong rank, or a length that does
// not match the header (truncated or with trailing bytes).
Result<IdxArray> ParseIdx(std::vector<uint8_t> bytes, size_t expected_rank,
                          const std::string& path);

// Reads an IDX ubyte file (plain or gzip) record by record, so that a caller
// keeping a few records never holds the whole file: Open checks the header,
// Read hands out the next records, Finish checks that nothing follows the last
// one and that the gzip stream was whole. Errors are DataLoss naming the path
// (NotFound for a missing file), as for ReadMaybeGzipFile + ParseIdx. One
// thread at a time; not copyable.
class IdxStream {
 public:
  static Result<std::unique_ptr<IdxStream>> Open(const std::string& path, size_t expected_rank);
  ~IdxStream();
  IdxStream(const IdxStream&) = delete;
  IdxStream& operator=(const IdxStream&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<uint32_t>& dims() const { return dims_; }
  // Bytes per record: the product of dims()[1..].
  size_t record_bytes() const { return record_bytes_; }
  // The next `count` records into out[0, count * record_bytes()).
  Status Read(size_t count, uint8_t* out);
  Status Finish();

 private:
  IdxStream(std::string path, void* file) : path_(std::move(path)), file_(file) {}
  Status GzStatus(const char* what);

  std::string path_;
  void* file_;  // gzFile, kept out of this header
  std::vector<uint32_t> dims_;
  size_t record_bytes_ = 0;
};

}  // namespace phalanx::worker::internal
