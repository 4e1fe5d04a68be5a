#pragma once
// Encoding and strict decoding of cereal binary bodies (control messages, the
// shards' round coordination). Decoding catches cereal's exceptions, refuses
// trailing bytes and returns InvalidArgument naming `what`; the `fn` callbacks
// bound every length they read before allocating. Stateless; any thread.

#include <cereal/archives/binary.hpp>
#include <sstream>
#include <string>

#include "common/status.h"

namespace phalanx {

// A string as cereal writes std::string (a size tag, then the bytes), read
// back with its length checked before anything is allocated: a hostile size
// tag would otherwise make cereal resize the string to it (terabytes).
template <class Ar>
void SaveString(Ar& ar, const std::string& s) {
  ar(cereal::make_size_tag(static_cast<cereal::size_type>(s.size())));
  ar(cereal::binary_data(s.data(), s.size()));
}

template <class Ar>
void LoadBoundedString(Ar& ar, std::string& s, size_t max_bytes) {
  cereal::size_type n = 0;
  ar(cereal::make_size_tag(n));
  if (n > max_bytes) throw cereal::Exception("string length over limit");
  s.resize(n);
  ar(cereal::binary_data(s.data(), n));
}

template <typename Fn>
std::string EncodeBody(Fn&& fn) {
  std::ostringstream os(std::ios::binary);
  {
    cereal::BinaryOutputArchive ar(os);
    fn(ar);
  }
  return std::move(os).str();
}

template <typename T, typename Fn>
Result<T> DecodeBody(const std::string& bytes, const char* what, Fn&& fn) {
  T out;
  try {
    std::istringstream is(bytes, std::ios::binary);
    cereal::BinaryInputArchive ar(is);
    fn(ar, out);
    if (is.peek() != std::char_traits<char>::eof()) {
      return InvalidArgument(std::string(what) + ": trailing bytes");
    }
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("malformed ") + what + ": " + e.what());
  }
  return out;
}

}  // namespace phalanx
