#pragma once
// Typed reads from one table of a TOML config, shared by every config file
// format (job configs, simulation configs). The contract: a key read by name
// must have the right type and range, a float must be finite, and Finish()
// reports the first key nobody read as unknown, so typos never pass silently.
//
// Thread-safety: a TomlSection is a short-lived local of the parsing thread.

#include <toml++/toml.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "common/status.h"

namespace phalanx {

class TomlSection {
 public:
  // `table` may be null (the section is absent): every read is then a no-op.
  // With `echo`, every key read is also written there with the value it ends
  // with (read or default): the resolved config, every key effective.
  TomlSection(const toml::table* table, std::string name, toml::table* echo = nullptr)
      : table_(table), name_(std::move(name)), echo_(echo) {}

  // Sets *out when `key` is present; a wrong type or range is remembered and
  // returned by Finish().
  template <typename T>
  void Read(const char* key, T* out) {
    ReadValue(key, out);
    if (!echo_) return;
    if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, std::string>) {
      echo_->insert_or_assign(key, *out);
    } else if constexpr (std::is_floating_point_v<T>) {
      echo_->insert_or_assign(key, static_cast<double>(*out));
    } else {
      echo_->insert_or_assign(key, static_cast<int64_t>(*out));
    }
  }

  // A list of strings, as a TOML array or a comma-separated string (--set).
  void ReadList(const char* key, std::vector<std::string>* out);

  // Every numeric key not read by name goes into `out` (rule parameters).
  void ReadRemainingNumbers(std::map<std::string, double>* out);

  // For keys the caller reads by hand (arrays of tables, ...); echoes the
  // node as it is.
  void MarkUsed(const char* key);

  // The first error, else InvalidArgument for the first unknown key.
  Status Finish() const;

 private:
  template <typename T>
  void ReadValue(const char* key, T* out) {
    const toml::node* node = Take(key);
    if (!node) return;
    const std::string where = name_ + "." + key;
    if constexpr (std::is_same_v<T, bool>) {
      if (auto v = node->value<bool>()) return void(*out = *v);
      status_ = InvalidArgument(where + " must be true or false");
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (auto v = node->value<std::string>()) return void(*out = *v);
      status_ = InvalidArgument(where + " must be a string");
    } else if constexpr (std::is_floating_point_v<T>) {
      auto v = node->value<double>();
      if (v && std::isfinite(*v)) return void(*out = static_cast<T>(*v));
      status_ = InvalidArgument(where + " must be a finite number");
    } else {
      if (!node->is_integer()) {
        status_ = InvalidArgument(where + " must be an integer");
        return;
      }
      const int64_t v = *node->value<int64_t>();
      if (std::is_unsigned_v<T> && v < 0) {
        status_ = InvalidArgument(where + " must not be negative");
      } else if (v < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
                 (v > 0 && static_cast<uint64_t>(v) >
                               static_cast<uint64_t>(std::numeric_limits<T>::max()))) {
        status_ = InvalidArgument(where + " is out of range");
      } else {
        *out = static_cast<T>(v);
      }
    }
  }

  void ReadListValue(const char* key, std::vector<std::string>* out);
  // The node of `key` if present and no error happened yet; marks it used.
  const toml::node* Take(const char* key);

  const toml::table* table_;
  std::string name_;
  toml::table* echo_;
  std::set<std::string> used_;
  Status status_;
};

// The subtable `name` of `root` for echoing a section into (created when
// missing); null when `root` is null.
toml::table* EchoSection(toml::table* root, const std::string& name);

// Parses a config's text; InvalidArgument naming the line of a syntax error.
Result<toml::table> ParseTomlText(const std::string& text);

// Applies one `--set section.key=value` item to a parsed config. The value is
// parsed as TOML (numbers, booleans, arrays, quoted strings); anything else,
// and the bare words nan/inf (attack names, never numbers here), is a string.
Status ApplyTomlOverride(toml::table& root, const std::string& item);

// The text of the config file at `path` (`what` names it in errors: "config
// file", "simulation config"). NotFound when it does not exist or cannot be
// read, InvalidArgument for a directory, so a mistyped --config never runs
// the built-in defaults.
Result<std::string> ReadConfigFile(const std::string& path, const std::string& what);

}  // namespace phalanx
