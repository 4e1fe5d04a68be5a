// Fuzz target: shard snapshot files (ps/snapshot.h), read by ReadSnapshotInfo
// and LoadSnapshot. Input: one flag byte, then the file. With flag bit 0 set
// the harness appends a valid footer (end magic, length, XXH3 of the bytes),
// so mutations get past the checksum into the record parsing and the row
// import. The expectation is the layout the seeds were written with
// (snapshot_layout.h).

#include <xxhash.h>

#include <cstring>
#include <string>

#include "ps/snapshot.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/snapshot_layout.h"

namespace {

using phalanx::fuzz::TempFile;
using phalanx::fuzz::Violated;

phalanx::ps::SnapshotExpectation Expectation() {
  phalanx::ps::SnapshotExpectation e;
  e.tables = phalanx::fuzz::SnapshotFuzzTables();
  return e;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > (1 << 20)) return 0;
  std::string file(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) {
    const uint64_t length = file.size();
    const uint64_t hash = XXH3_64bits(file.data(), file.size());
    char footer[24];
    std::memcpy(footer, "PHXSEND1", 8);
    std::memcpy(footer + 8, &length, 8);
    std::memcpy(footer + 16, &hash, 8);
    file.append(footer, sizeof(footer));
  }
  TempFile f(file, ".snap");
  auto info = phalanx::ps::ReadSnapshotInfo(f.path());
  auto loaded = phalanx::ps::LoadSnapshot(f.path(), Expectation());
  if (loaded.ok()) {
    if (!info.ok()) Violated("LoadSnapshot accepted a file ReadSnapshotInfo refused");
    const auto& l = loaded.value();
    if (l.tables.size() != 2) Violated("a loaded snapshot without the expected tables");
    for (size_t t = 0; t < l.info.tables.size(); ++t) {
      const uint32_t id = l.info.tables[t].table_id;
      if (id >= l.tables.size() || !l.tables[id]) Violated("a table id out of range");
      // Rows of a table: at most what the file recorded (duplicate keys merge).
      if (l.tables[id]->size() > l.info.tables[t].rows) Violated("more rows loaded than recorded");
    }
  } else if (loaded.status().message().empty()) {
    Violated("a refused snapshot without a message");
  }
  return 0;
}
