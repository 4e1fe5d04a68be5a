#pragma once
// Turns a raw RFC 822 mail into hashed feature ids for the spam model.
// Stateless; safe from any thread.

#include <cstdint>
#include <string_view>
#include <vector>

namespace phalanx::worker::internal {

struct TokenizerOptions {
  bool bigrams = true;
  size_t max_tokens = 2000;  // body words considered, in order of appearance
};

// Features of one mail, sorted and distinct (a set of words, not counts):
//  - the Subject header's words and bigrams, in their own hash namespace
//    (a word in the subject says more than the same word in the body);
//  - the body's words (and bigrams of adjacent words), at most
//    `max_tokens` words.
// Other headers are dropped: Received/Message-ID lines leak the collection
// (dates, relays) rather than the content, which would flatter accuracy.
// Words are maximal runs of ASCII letters and digits, lower-cased, 2..24
// characters long (longer runs are base64/uuencoded noise).
std::vector<uint64_t> TokenizeMail(std::string_view mail, const TokenizerOptions& options);

// The id of a single body word (for tests and debugging).
uint64_t WordId(std::string_view lowercase_word);

}  // namespace phalanx::worker::internal
