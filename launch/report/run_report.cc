#include "launch/report/run_report.h"

namespace phalanx::launch {

std::string CsvQuote(std::string_view s, bool always) {
  if (!always && s.find_first_of(",\"\n") == std::string_view::npos) return std::string(s);
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

CsvWriter::CsvWriter(const std::filesystem::path& path, std::string_view header, int precision)
    : path_(path), out_(path) {
  out_.precision(precision);
  out_ << header << "\n";
}

Status WriteJsonFile(const std::filesystem::path& path, const nlohmann::json& j) {
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  if (!out) return Unavailable("cannot write " + path.string());
  return Status::Ok();
}

}  // namespace phalanx::launch
