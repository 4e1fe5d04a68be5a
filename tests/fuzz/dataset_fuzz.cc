// Fuzz target: the data set parsers that read users' files: IDX arrays
// (Fashion-MNIST), raw mails (SpamAssassin tokenizer) and libsvm text.
// Input: one selector byte, then the file's bytes. Checks what training
// relies on: an accepted IDX array holds exactly product(dims) bytes; mail
// features are sorted and distinct; an accepted libsvm set has one label per
// example in [0, num_classes) and values aligned with ids.

#include <algorithm>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_util.h"
#include "worker/dataset.h"
#include "worker/internal/file_reader.h"
#include "worker/internal/mail_tokenizer.h"

namespace {

using phalanx::fuzz::TempFile;
using phalanx::fuzz::Violated;
namespace wi = phalanx::worker::internal;

void Idx(const uint8_t* data, size_t size, size_t rank) {
  auto a = wi::ParseIdx(std::vector<uint8_t>(data, data + size), rank, "fuzz.idx");
  if (!a.ok()) return;
  if (a.value().dims.size() != rank) Violated("IDX array of another rank accepted");
  uint64_t n = 1;
  for (uint32_t d : a.value().dims) n *= d;
  if (a.value().data.size() != n) Violated("IDX data size != product(dims)");
}

void Mail(const uint8_t* data, size_t size) {
  wi::TokenizerOptions o;
  o.max_tokens = 64;
  const auto ids = wi::TokenizeMail({reinterpret_cast<const char*>(data), size}, o);
  if (!std::is_sorted(ids.begin(), ids.end()) ||
      std::adjacent_find(ids.begin(), ids.end()) != ids.end()) {
    Violated("mail features not sorted and distinct");
  }
}

void Libsvm(const uint8_t* data, size_t size) {
  TempFile f({reinterpret_cast<const char*>(data), size}, ".svm");
  auto d = phalanx::worker::LoadLibsvm(f.path());
  if (!d.ok()) {
    if (d.status().message().empty()) Violated("a refused libsvm file without a message");
    return;
  }
  const auto& s = d.value();
  if (s.ids.size() != s.size()) Violated("libsvm: ids not one per example");
  if (!s.values.empty() && s.values.size() != s.size()) Violated("libsvm: values not per example");
  for (size_t i = 0; i < s.size(); ++i) {
    if (s.labels[i] < 0 || static_cast<size_t>(s.labels[i]) >= s.num_classes) {
      Violated("libsvm: a label outside [0, num_classes)");
    }
    if (!s.values.empty() && s.values[i].size() != s.ids[i].size()) {
      Violated("libsvm: values not aligned with ids");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > (1 << 20)) return 0;
  switch (data[0] % 4) {
    case 0:
      Idx(data + 1, size - 1, 1);
      break;
    case 1:
      Idx(data + 1, size - 1, 3);
      break;
    case 2:
      Mail(data + 1, size - 1);
      break;
    case 3:
      Libsvm(data + 1, size - 1);
      break;
  }
  return 0;
}
