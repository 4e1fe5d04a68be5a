#include "ps/snapshot.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <filesystem>
#include <thread>

#include "common/mutex.h"

namespace phalanx::ps {
namespace {

namespace fs = std::filesystem;

static_assert(std::endian::native == std::endian::little, "snapshots are little-endian");

constexpr char kMagic[8] = {'P', 'H', 'X', 'S', 'N', 'A', 'P', '1'};
constexpr char kEndMagic[8] = {'P', 'H', 'X', 'S', 'E', 'N', 'D', '1'};
constexpr uint32_t kFormatVersion = 1;
constexpr size_t kHeaderBytes = 64;
constexpr size_t kDescriptorBytes = 40;
constexpr size_t kChunkHeaderBytes = 8;
constexpr size_t kFooterBytes = 24;
constexpr size_t kTargetChunkBytes = 4u << 20;   // writer: ~4 MiB records
constexpr uint64_t kMaxChunkBytes = 256u << 20;  // reader: refuse larger records
constexpr uint32_t kMaxTables = 4096;

template <typename T>
void Put(char* p, size_t off, T v) {
  std::memcpy(p + off, &v, sizeof(T));
}
template <typename T>
T Get(const char* p, size_t off) {
  T v;
  std::memcpy(&v, p + off, sizeof(T));
  return v;
}

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

Status WriteAll(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Unavailable(Errno("write failed"));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

// Reads exactly n bytes; DataLoss at a premature end of file.
Status ReadAll(int fd, void* data, size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      return Unavailable(Errno("read failed"));
    }
    if (r == 0) return DataLoss("file ends early (truncated)");
    p += r;
    n -= static_cast<size_t>(r);
  }
  return Status::Ok();
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

const char* OptimizerName(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::kSgd:
      return "sgd";
    case OptimizerKind::kAdagrad:
      return "adagrad";
    case OptimizerKind::kAdam:
      return "adam";
  }
  return "?";
}

uint64_t RowBytes(uint32_t row_floats) { return 8 + uint64_t{row_floats} * 4; }

// Parses header + descriptors (from `head`) and checks the file size they imply.
Result<SnapshotInfo> ParseHead(const std::string& path, int fd, uint64_t file_size) {
  auto refuse = [&](const std::string& why) { return DataLoss("snapshot " + path + ": " + why); };
  if (file_size < kHeaderBytes + kFooterBytes) {
    return refuse("truncated (" + std::to_string(file_size) + " bytes)");
  }
  char h[kHeaderBytes];
  if (::pread(fd, h, kHeaderBytes, 0) != static_cast<ssize_t>(kHeaderBytes)) {
    return refuse("cannot read the header");
  }
  if (std::memcmp(h, kMagic, sizeof(kMagic)) != 0) return refuse("not a Phalanx snapshot");
  if (Get<uint32_t>(h, 8) != kFormatVersion) {
    return refuse("format version " + std::to_string(Get<uint32_t>(h, 8)) + " is not supported");
  }
  SnapshotInfo info;
  info.path = path;
  info.bytes = file_size;
  uint32_t n = Get<uint32_t>(h, 12);
  info.rank = Get<int32_t>(h, 16);
  info.num_slots = Get<uint32_t>(h, 20);
  info.num_servers = Get<uint32_t>(h, 24);
  info.round = Get<int64_t>(h, 32);
  info.unix_ms = Get<int64_t>(h, 40);
  if (n > kMaxTables || kHeaderBytes + n * kDescriptorBytes + kFooterBytes > file_size) {
    return refuse("truncated (" + std::to_string(file_size) + " bytes for " + std::to_string(n) +
                  " table descriptors)");
  }
  std::string d(n * kDescriptorBytes, '\0');
  if (n > 0 && ::pread(fd, d.data(), d.size(), kHeaderBytes) != static_cast<ssize_t>(d.size())) {
    return refuse("cannot read the table descriptors");
  }
  // Expected size, with every term bounded so the sum cannot overflow.
  uint64_t expected = kHeaderBytes + n * kDescriptorBytes + kFooterBytes;
  for (uint32_t i = 0; i < n; ++i) {
    const char* p = d.data() + i * kDescriptorBytes;
    SnapshotTableInfo t;
    t.table_id = Get<uint32_t>(p, 0);
    t.dim = Get<uint32_t>(p, 4);
    t.row_floats = Get<uint32_t>(p, 8);
    uint32_t opt = Get<uint32_t>(p, 12);
    t.version = Get<int64_t>(p, 16);
    t.rows = Get<uint64_t>(p, 24);
    uint64_t chunks = Get<uint64_t>(p, 32);
    if (opt > static_cast<uint32_t>(OptimizerKind::kAdam) || t.dim == 0 || t.row_floats < t.dim ||
        t.row_floats > (1u << 20)) {
      return refuse("table descriptor " + std::to_string(i) + " is malformed");
    }
    t.optimizer = static_cast<OptimizerKind>(opt);
    if (t.rows > file_size / RowBytes(t.row_floats) || chunks > t.rows ||
        (t.rows > 0 && chunks == 0)) {
      return refuse("truncated or malformed: table " + std::to_string(t.table_id) + " claims " +
                    std::to_string(t.rows) + " rows in " + std::to_string(chunks) +
                    " chunks, file has " + std::to_string(file_size) + " bytes");
    }
    expected += chunks * kChunkHeaderBytes + t.rows * RowBytes(t.row_floats);
    if (expected > file_size) break;
    info.tables.push_back(t);
  }
  if (expected != file_size) {
    return refuse(std::string(expected > file_size ? "truncated" : "has trailing bytes") +
                  ": the header describes " + std::to_string(expected) + " bytes, the file has " +
                  std::to_string(file_size));
  }
  return info;
}

Status CheckLayout(const SnapshotInfo& info, const SnapshotExpectation& e) {
  auto refuse = [&](const std::string& why) {
    return FailedPrecondition("snapshot " + info.path + " has another layout: " + why);
  };
  if (e.rank >= 0 && info.rank != e.rank) {
    return refuse("server rank " + std::to_string(info.rank) + ", expected " +
                  std::to_string(e.rank));
  }
  if (e.num_slots != 0 && info.num_slots != e.num_slots) {
    return refuse(std::to_string(info.num_slots) + " key slots, expected " +
                  std::to_string(e.num_slots));
  }
  if (e.num_servers != 0 && info.num_servers != e.num_servers) {
    return refuse(std::to_string(info.num_servers) + " servers, expected " +
                  std::to_string(e.num_servers));
  }
  if (info.tables.size() != e.tables.size()) {
    return refuse(std::to_string(info.tables.size()) + " tables, expected " +
                  std::to_string(e.tables.size()));
  }
  for (size_t i = 0; i < e.tables.size(); ++i) {
    const auto& t = info.tables[i];
    const auto& o = e.tables[i];
    uint32_t rf = o.dim + static_cast<uint32_t>(OptimizerStateFloats(o.optimizer, o.dim));
    std::string which = "table " + std::to_string(i) + " ";
    if (t.table_id != o.table_id) {
      return refuse(which + "has id " + std::to_string(t.table_id) + ", expected " +
                    std::to_string(o.table_id));
    }
    if (t.dim != o.dim) {
      return refuse(which + "has dim " + std::to_string(t.dim) + ", expected " +
                    std::to_string(o.dim));
    }
    if (t.optimizer != o.optimizer.kind || t.row_floats != rf) {
      return refuse(which + "has optimizer " + OptimizerName(t.optimizer) + " with " +
                    std::to_string(t.row_floats - t.dim) + " state floats per row, expected " +
                    OptimizerName(o.optimizer.kind) + " with " + std::to_string(rf - o.dim));
    }
  }
  return Status::Ok();
}

// The reader thread's unit of work: one chunk record's keys and values.
struct Piece {
  std::unique_ptr<char[]> buf;
  size_t capacity = 0;
  uint32_t table = 0;
  uint32_t rows = 0;
};

// Bounded hand-over between the reader thread and the importing caller.
class PieceQueue {
 public:
  explicit PieceQueue(int buffers) {
    for (int i = 0; i < buffers; ++i) free_.push_back(std::make_unique<Piece>());
  }
  std::unique_ptr<Piece> TakeFree() EXCLUDES(mu_) {
    MutexLock l(&mu_);
    while (free_.empty() && !cancelled_) cv_.Wait(&mu_);
    if (cancelled_) return nullptr;
    auto p = std::move(free_.front());
    free_.pop_front();
    return p;
  }
  void PutFree(std::unique_ptr<Piece> p) EXCLUDES(mu_) {
    MutexLock l(&mu_);
    free_.push_back(std::move(p));
    cv_.SignalAll();
  }
  void PutFull(std::unique_ptr<Piece> p) EXCLUDES(mu_) {
    MutexLock l(&mu_);
    full_.push_back(std::move(p));
    cv_.SignalAll();
  }
  // nullptr once the reader finished (see status()) and the queue is empty.
  std::unique_ptr<Piece> TakeFull() EXCLUDES(mu_) {
    MutexLock l(&mu_);
    while (full_.empty() && !done_) cv_.Wait(&mu_);
    if (full_.empty()) return nullptr;
    auto p = std::move(full_.front());
    full_.pop_front();
    return p;
  }
  void Finish(Status s) EXCLUDES(mu_) {
    MutexLock l(&mu_);
    done_ = true;
    status_ = std::move(s);
    cv_.SignalAll();
  }
  void Cancel() EXCLUDES(mu_) {
    MutexLock l(&mu_);
    cancelled_ = true;
    cv_.SignalAll();
  }
  Status status() EXCLUDES(mu_) {
    MutexLock l(&mu_);
    return status_;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  std::deque<std::unique_ptr<Piece>> free_ GUARDED_BY(mu_), full_ GUARDED_BY(mu_);
  bool done_ GUARDED_BY(mu_) = false;
  bool cancelled_ GUARDED_BY(mu_) = false;
  Status status_ GUARDED_BY(mu_);
};

// Reads every chunk record after the descriptors, hashing as it goes, then
// checks the footer. Runs on its own thread.
Status ReadChunks(int fd, const SnapshotInfo& info, XXH3_state_t* hash, PieceQueue* q) {
  uint64_t offset = kHeaderBytes + info.tables.size() * kDescriptorBytes;
  for (uint32_t t = 0; t < info.tables.size(); ++t) {
    const SnapshotTableInfo& ti = info.tables[t];
    uint64_t left = ti.rows;
    while (left > 0) {
      char ch[kChunkHeaderBytes];
      PHX_RETURN_IF_ERROR(ReadAll(fd, ch, sizeof(ch)));
      XXH3_64bits_update(hash, ch, sizeof(ch));
      uint32_t table = Get<uint32_t>(ch, 0);
      uint32_t rows = Get<uint32_t>(ch, 4);
      uint64_t bytes = uint64_t{rows} * RowBytes(ti.row_floats);
      if (table != t || rows == 0 || rows > left || bytes > kMaxChunkBytes) {
        return DataLoss("malformed chunk record at byte " + std::to_string(offset) + " (table " +
                        std::to_string(table) + ", " + std::to_string(rows) + " rows)");
      }
      auto piece = q->TakeFree();
      if (!piece) return Cancelled("load cancelled");
      if (piece->capacity < bytes) {
        piece->buf.reset(new char[bytes]);
        piece->capacity = bytes;
      }
      Status s = ReadAll(fd, piece->buf.get(), bytes);
      if (!s.ok()) {
        q->PutFree(std::move(piece));
        return s;
      }
      XXH3_64bits_update(hash, piece->buf.get(), bytes);
      piece->table = t;
      piece->rows = rows;
      q->PutFull(std::move(piece));
      left -= rows;
      offset += kChunkHeaderBytes + bytes;
    }
  }
  char f[kFooterBytes];
  PHX_RETURN_IF_ERROR(ReadAll(fd, f, sizeof(f)));
  if (std::memcmp(f, kEndMagic, sizeof(kEndMagic)) != 0 || Get<uint64_t>(f, 8) != offset) {
    return DataLoss("footer is missing or malformed");
  }
  uint64_t want = Get<uint64_t>(f, 16);
  uint64_t got = XXH3_64bits_digest(hash);
  if (want != got) {
    char buf[80];
    std::snprintf(buf, sizeof(buf), "checksum mismatch (file says %016llx, data hashes to %016llx)",
                  static_cast<unsigned long long>(want), static_cast<unsigned long long>(got));
    return DataLoss(buf);
  }
  return Status::Ok();
}

}  // namespace

Result<std::shared_ptr<const SnapshotImage>> SnapshotImage::Capture(
    int32_t rank, uint32_t num_slots, uint32_t num_servers,
    const std::vector<const EmbeddingTable*>& tables, const std::vector<int64_t>& versions) {
  if (tables.size() != versions.size() || tables.size() > kMaxTables) {
    return InvalidArgument("snapshot capture needs one version per table");
  }
  std::shared_ptr<SnapshotImage> img(new SnapshotImage());
  SnapshotInfo& info = img->info_;
  info.rank = rank;
  info.num_slots = num_slots;
  info.num_servers = num_servers;
  info.round = versions.empty() ? 0 : versions[0];
  info.unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
  std::string& head = img->head_;
  head.assign(kHeaderBytes + tables.size() * kDescriptorBytes, '\0');
  char* h = head.data();
  std::memcpy(h, kMagic, sizeof(kMagic));
  Put<uint32_t>(h, 8, kFormatVersion);
  Put<uint32_t>(h, 12, static_cast<uint32_t>(tables.size()));
  Put<int32_t>(h, 16, rank);
  Put<uint32_t>(h, 20, num_slots);
  Put<uint32_t>(h, 24, num_servers);
  Put<int64_t>(h, 32, info.round);
  Put<int64_t>(h, 40, info.unix_ms);
  for (size_t i = 0; i < tables.size(); ++i) {
    const EmbeddingTable& tb = *tables[i];
    if (tb.options().table_id != i) return InvalidArgument("table ids must be 0..n-1");
    SnapshotTableInfo t;
    t.table_id = tb.options().table_id;
    t.dim = tb.dim();
    t.row_floats = static_cast<uint32_t>(tb.row_floats());
    t.optimizer = tb.options().optimizer.kind;
    t.version = versions[i];
    t.rows = tb.size();
    const uint64_t row_bytes = RowBytes(t.row_floats);
    const uint64_t chunk_rows = std::max<uint64_t>(1, kTargetChunkBytes / row_bytes);
    const uint64_t chunks = (t.rows + chunk_rows - 1) / chunk_rows;
    char* d = h + kHeaderBytes + i * kDescriptorBytes;
    Put<uint32_t>(d, 0, t.table_id);
    Put<uint32_t>(d, 4, t.dim);
    Put<uint32_t>(d, 8, t.row_floats);
    Put<uint32_t>(d, 12, static_cast<uint32_t>(t.optimizer));
    Put<int64_t>(d, 16, t.version);
    Put<uint64_t>(d, 24, t.rows);
    Put<uint64_t>(d, 32, chunks);
    // Rows go straight from the table into the chunk records: keys first,
    // then values, so a loader hands both to Import without reshuffling.
    uint64_t seen = 0;
    char* chunk = nullptr;
    uint64_t in_chunk = 0, chunk_cap = 0;
    tb.ForEach([&](uint64_t key, std::span<const float> row) {
      if (seen >= t.rows) {
        seen++;
        return;
      }
      if (in_chunk == chunk_cap) {
        chunk_cap = std::min(chunk_rows, t.rows - seen);
        img->chunks_.emplace_back(kChunkHeaderBytes + chunk_cap * row_bytes, '\0');
        chunk = img->chunks_.back().data();
        Put<uint32_t>(chunk, 0, static_cast<uint32_t>(i));
        Put<uint32_t>(chunk, 4, static_cast<uint32_t>(chunk_cap));
        in_chunk = 0;
      }
      Put<uint64_t>(chunk, kChunkHeaderBytes + in_chunk * 8, key);
      std::memcpy(chunk + kChunkHeaderBytes + chunk_cap * 8 + in_chunk * (row_bytes - 8),
                  row.data(), row.size_bytes());
      in_chunk++;
      seen++;
    });
    if (seen != t.rows) {
      return Internal("table " + std::to_string(i) + " visited " + std::to_string(seen) +
                      " rows but holds " + std::to_string(t.rows));
    }
    info.tables.push_back(t);
  }
  info.bytes = img->bytes();
  return std::shared_ptr<const SnapshotImage>(std::move(img));
}

uint64_t SnapshotImage::bytes() const {
  uint64_t n = head_.size() + kFooterBytes;
  for (const auto& c : chunks_) n += c.size();
  return n;
}

Result<SnapshotInfo> SnapshotImage::WriteTo(const std::string& dir) const {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Unavailable("cannot create snapshot folder " + dir + ": " + ec.message());
  static std::atomic<uint64_t> counter{0};
  const std::string name = SnapshotFileName(info_.rank, info_.round);
  const std::string final_path = (fs::path(dir) / name).string();
  const std::string tmp = (fs::path(dir) / ("." + name + ".tmp-" + std::to_string(::getpid()) +
                                            "-" + std::to_string(counter++)))
                              .string();
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) return Unavailable(Errno("cannot create " + tmp));
  auto fail = [&](Status s) -> Result<SnapshotInfo> {
    ::unlink(tmp.c_str());
    return s.WithContext("writing snapshot " + final_path);
  };
  XXH3_state_t* hash = XXH3_createState();
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> hash_owner(hash, &XXH3_freeState);
  XXH3_64bits_reset(hash);
  uint64_t written = 0;
  auto put = [&](const std::string& bytes) {
    XXH3_64bits_update(hash, bytes.data(), bytes.size());
    written += bytes.size();
    return WriteAll(fd.get(), bytes.data(), bytes.size());
  };
  Status s = put(head_);
  for (size_t i = 0; i < chunks_.size() && s.ok(); ++i) s = put(chunks_[i]);
  if (!s.ok()) return fail(s);
  char f[kFooterBytes];
  std::memcpy(f, kEndMagic, sizeof(kEndMagic));
  Put<uint64_t>(f, 8, written);
  Put<uint64_t>(f, 16, XXH3_64bits_digest(hash));
  s = WriteAll(fd.get(), f, sizeof(f));
  if (!s.ok()) return fail(s);
  // Data on disk before the name points at it; then the name itself.
  if (::fdatasync(fd.get()) != 0) return fail(Unavailable(Errno("fdatasync failed")));
  if (::close(fd.release()) != 0) return fail(Unavailable(Errno("close failed")));
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    return fail(Unavailable(Errno("rename failed")));
  }
  Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() < 0 || ::fsync(dfd.get()) != 0) {
    return Unavailable(Errno("cannot fsync folder " + dir));
  }
  SnapshotInfo out = info_;
  out.path = final_path;
  out.bytes = written + kFooterBytes;
  return out;
}

Result<SnapshotInfo> ReadSnapshotInfo(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return NotFound(Errno("cannot open snapshot " + path));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Unavailable(Errno("cannot stat " + path));
  return ParseHead(path, fd.get(), static_cast<uint64_t>(st.st_size));
}

Result<LoadedSnapshot> LoadSnapshot(const std::string& path, const SnapshotExpectation& expect) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return NotFound(Errno("cannot open snapshot " + path));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Unavailable(Errno("cannot stat " + path));
  PHX_ASSIGN_OR_RETURN(SnapshotInfo info,
                       ParseHead(path, fd.get(), static_cast<uint64_t>(st.st_size)));
  PHX_RETURN_IF_ERROR(CheckLayout(info, expect));
  LoadedSnapshot out;
  for (size_t i = 0; i < expect.tables.size(); ++i) {
    TableOptions o = expect.tables[i];
    // Room for every row up front: no rehash while importing.
    o.initial_capacity = std::max<size_t>(o.initial_capacity, info.tables[i].rows + 1);
    PHX_ASSIGN_OR_RETURN(auto t, EmbeddingTable::Create(o));
    out.tables.push_back(std::move(t));
  }
  // Header and descriptors are hashed here; the reader thread continues.
  std::string head(kHeaderBytes + info.tables.size() * kDescriptorBytes, '\0');
  if (::pread(fd.get(), head.data(), head.size(), 0) != static_cast<ssize_t>(head.size()) ||
      ::lseek(fd.get(), static_cast<off_t>(head.size()), SEEK_SET) < 0) {
    return Unavailable(Errno("cannot read " + path));
  }
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> hash(XXH3_createState(),
                                                                &XXH3_freeState);
  XXH3_64bits_reset(hash.get());
  XXH3_64bits_update(hash.get(), head.data(), head.size());
  // Three buffers: one being read, one being imported, one spare.
  PieceQueue q(3);
  std::thread reader([&] { q.Finish(ReadChunks(fd.get(), info, hash.get(), &q)); });
  while (auto piece = q.TakeFull()) {
    const SnapshotTableInfo& ti = info.tables[piece->table];
    const auto* keys = reinterpret_cast<const uint64_t*>(piece->buf.get());
    const auto* values = reinterpret_cast<const float*>(piece->buf.get() + piece->rows * 8ull);
    out.tables[piece->table]->Import(std::span<const uint64_t>(keys, piece->rows), values);
    (void)ti;
    q.PutFree(std::move(piece));
  }
  reader.join();
  Status s = q.status();
  if (!s.ok()) return s.WithContext("snapshot " + path);
  out.info = std::move(info);
  return out;
}

Result<LoadedSnapshot> LoadNewestSnapshot(const std::string& dir,
                                          const SnapshotExpectation& expect) {
  std::vector<std::string> files = ListSnapshots(dir, expect.rank);
  if (files.empty()) {
    return NotFound("no snapshot for server rank " + std::to_string(expect.rank) + " in " + dir);
  }
  Status first;
  for (const auto& f : files) {
    auto start = std::chrono::steady_clock::now();
    auto r = LoadSnapshot(f, expect);
    if (r.ok()) {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      spdlog::info("loaded snapshot {} (round {}, {} bytes) in {:.3f} s", f, r->info.round,
                   r->info.bytes, secs);
      return r;
    }
    spdlog::error("snapshot refused: {}; trying the previous one", r.status().ToString());
    if (first.ok()) first = r.status();
  }
  return first.WithContext("none of the " + std::to_string(files.size()) +
                           " snapshots of server rank " + std::to_string(expect.rank) + " in " +
                           dir + " is valid");
}

}  // namespace phalanx::ps
