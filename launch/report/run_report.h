#pragma once
// What a run writes into its folder, shared by the local launcher, the
// experiment runner and the simulator: CSV tables (CsvWriter, CsvQuote) and
// JSON summaries (WriteJsonFile); figures are plot.h. Plain functions and a
// value type; use from one thread.

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace phalanx::launch {

// A CSV cell for `s`: quoted ("" for each ") when `always` or when it holds a
// comma, a quote or a newline; unchanged otherwise.
std::string CsvQuote(std::string_view s, bool always = false);

// One CSV file, truncated on open: a header line, then rows of cells written
// with operator<< at `precision` significant digits (the stream default is 6).
// Strings go in as they are: quote them with CsvQuote where needed.
class CsvWriter {
 public:
  CsvWriter(const std::filesystem::path& path, std::string_view header, int precision = 6);

  // An empty std::optional is an empty cell.
  template <typename... Cells>
  void Row(const Cells&... cells) {
    bool first = true;
    ((out_ << (first ? "" : ","), Put(cells), first = false), ...);
    out_ << "\n";
  }
  // False once opening or a write failed.
  bool ok() const { return static_cast<bool>(out_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  template <typename T>
  void Put(const T& v) {
    out_ << v;
  }
  template <typename T>
  void Put(const std::optional<T>& v) {
    if (v) out_ << *v;
  }

  std::filesystem::path path_;
  std::ofstream out_;
};

// Writes `j` indented by 2, with a final newline.
Status WriteJsonFile(const std::filesystem::path& path, const nlohmann::json& j);

}  // namespace phalanx::launch
