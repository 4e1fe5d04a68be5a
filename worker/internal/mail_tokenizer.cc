#include "worker/internal/mail_tokenizer.h"

#include <xxhash.h>

#include <algorithm>
#include <string>

namespace phalanx::worker::internal {
namespace {

// Fixed hash seeds, one per namespace, so ids are stable across runs, seeds
// and machines (the PS tables are keyed by them).
constexpr uint64_t kBodyWordSeed = 0x5048584d41494c31ULL;  // "PHXMAIL1"
constexpr uint64_t kBodyBigramSeed = kBodyWordSeed + 1;
constexpr uint64_t kSubjectWordSeed = kBodyWordSeed + 2;
constexpr uint64_t kSubjectBigramSeed = kBodyWordSeed + 3;

constexpr size_t kMinWord = 2;
constexpr size_t kMaxWord = 24;

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// Appends ids for the words (and optionally bigrams) of `text`, stopping after
// `max_words` words.
void AddWords(std::string_view text, uint64_t word_seed, uint64_t bigram_seed, bool bigrams,
              size_t max_words, std::vector<uint64_t>* out) {
  std::string word;
  uint64_t prev = 0;
  bool have_prev = false;
  size_t words = 0;
  size_t i = 0;
  while (i < text.size() && words < max_words) {
    while (i < text.size() && !IsAlnum(text[i])) ++i;
    const size_t start = i;
    while (i < text.size() && IsAlnum(text[i])) ++i;
    const size_t len = i - start;
    if (len < kMinWord || len > kMaxWord) continue;
    word.assign(text.substr(start, len));
    for (char& c : word) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    const uint64_t id = XXH64(word.data(), word.size(), word_seed);
    out->push_back(id);
    if (bigrams && have_prev) {
      const uint64_t pair[2] = {prev, id};
      out->push_back(XXH64(pair, sizeof(pair), bigram_seed));
    }
    prev = id;
    have_prev = true;
    ++words;
  }
}

// Case-insensitive "does `line` start with `prefix`" (prefix is lower-case).
bool StartsWithNoCase(std::string_view line, std::string_view prefix) {
  if (line.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char c = line[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

}  // namespace

uint64_t WordId(std::string_view lowercase_word) {
  return XXH64(lowercase_word.data(), lowercase_word.size(), kBodyWordSeed);
}

std::vector<uint64_t> TokenizeMail(std::string_view mail, const TokenizerOptions& options) {
  // Headers end at the first empty line ("\n\n" or "\n\r\n").
  size_t body_start = mail.size();
  size_t header_end = mail.size();
  for (size_t p = mail.find('\n'); p != std::string_view::npos; p = mail.find('\n', p + 1)) {
    size_t q = p + 1;
    if (q < mail.size() && mail[q] == '\r') ++q;
    if (q < mail.size() && mail[q] == '\n') {
      header_end = p;
      body_start = q + 1;
      break;
    }
  }
  const std::string_view headers = mail.substr(0, header_end);
  const std::string_view body = body_start < mail.size() ? mail.substr(body_start) : "";

  // The Subject header, with its folded continuation lines.
  std::string subject;
  size_t pos = 0;
  bool in_subject = false;
  while (pos < headers.size()) {
    size_t eol = headers.find('\n', pos);
    if (eol == std::string_view::npos) eol = headers.size();
    const std::string_view line = headers.substr(pos, eol - pos);
    if (in_subject && !line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      subject.append(line);
      subject.push_back(' ');
    } else if (StartsWithNoCase(line, "subject:")) {
      in_subject = true;
      subject.append(line.substr(8));
      subject.push_back(' ');
    } else if (in_subject) {
      break;
    }
    pos = eol + 1;
  }

  std::vector<uint64_t> ids;
  ids.reserve(2 * std::min(options.max_tokens, body.size() / 4 + 16));
  AddWords(subject, kSubjectWordSeed, kSubjectBigramSeed, options.bigrams, 256, &ids);
  AddWords(body, kBodyWordSeed, kBodyBigramSeed, options.bigrams, options.max_tokens, &ids);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

}  // namespace phalanx::worker::internal
