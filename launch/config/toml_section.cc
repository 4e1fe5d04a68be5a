#include "launch/config/toml_section.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace phalanx {

const toml::node* TomlSection::Take(const char* key) {
  if (!table_ || !status_.ok()) return nullptr;
  const toml::node* node = table_->get(key);
  if (node) used_.insert(key);
  return node;
}

void TomlSection::MarkUsed(const char* key) {
  used_.insert(key);
  if (echo_ && table_) {
    if (const toml::node* node = table_->get(key)) {
      node->visit([&](const auto& n) { echo_->insert_or_assign(key, n); });
    }
  }
}

toml::table* EchoSection(toml::table* root, const std::string& name) {
  if (!root) return nullptr;
  auto [it, inserted] = root->insert(name, toml::table{});
  return it->second.as_table();
}

void TomlSection::ReadList(const char* key, std::vector<std::string>* out) {
  ReadListValue(key, out);
  if (!echo_) return;
  toml::array a;
  for (const auto& s : *out) a.push_back(s);
  echo_->insert_or_assign(key, std::move(a));
}

void TomlSection::ReadListValue(const char* key, std::vector<std::string>* out) {
  const toml::node* node = Take(key);
  if (!node) return;
  out->clear();
  if (auto s = node->value<std::string>()) {
    std::stringstream ss(*s);
    std::string item;
    while (std::getline(ss, item, ',')) {
      if (!item.empty()) out->push_back(item);
    }
    return;
  }
  if (const toml::array* a = node->as_array()) {
    for (const auto& e : *a) {
      auto v = e.value<std::string>();
      if (!v) return void(status_ = InvalidArgument(name_ + "." + key + " must hold strings"));
      out->push_back(*v);
    }
    return;
  }
  status_ = InvalidArgument(name_ + "." + key + " must be an array of strings");
}

void TomlSection::ReadRemainingNumbers(std::map<std::string, double>* out) {
  if (!table_ || !status_.ok()) return;
  for (const auto& [k, node] : *table_) {
    std::string key(k.str());
    if (used_.count(key)) continue;
    if (auto v = node.value<double>()) {
      (*out)[key] = *v;
      used_.insert(key);
    }
  }
  if (echo_) {
    for (const auto& [key, v] : *out) echo_->insert_or_assign(key, v);
  }
}

Status TomlSection::Finish() const {
  if (!status_.ok() || !table_) return status_;
  for (const auto& [k, node] : *table_) {
    if (!used_.count(std::string(k.str()))) {
      return InvalidArgument("unknown key '" + name_ + "." + std::string(k.str()) + "'");
    }
  }
  return Status::Ok();
}

Result<toml::table> ParseTomlText(const std::string& text) {
  try {
    return toml::parse(text);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << "config is not valid TOML: " << e.description() << " at line " << e.source().begin.line;
    return InvalidArgument(os.str());
  }
}

Status ApplyTomlOverride(toml::table& root, const std::string& item) {
  const auto eq = item.find('=');
  if (eq == std::string::npos || eq == 0) {
    return InvalidArgument("--set expects section.key=value, got '" + item + "'");
  }
  const std::string path = item.substr(0, eq), value = item.substr(eq + 1);
  const auto dot = path.find('.');
  if (dot == std::string::npos) return InvalidArgument("--set key needs a section: '" + path + "'");
  const std::string section = path.substr(0, dot), key = path.substr(dot + 1);
  static const std::set<std::string> kWords = {"nan", "+nan", "-nan", "inf", "+inf", "-inf"};
  toml::table parsed;
  try {
    if (kWords.count(value)) throw toml::parse_error("word", toml::source_region{});
    parsed = toml::parse("v = " + value);
  } catch (const toml::parse_error&) {
    parsed = toml::table{{"v", value}};  // a bare word is a string (aggregator.name=krum)
  }
  toml::table* sec = root[section].as_table();
  if (!sec && root.get(section)) {
    return InvalidArgument("--set cannot override '" + section + "': it is not a table");
  }
  if (!sec) {
    root.insert(section, toml::table{});
    sec = root[section].as_table();
  }
  sec->insert_or_assign(key, *parsed.get("v"));
  return Status::Ok();
}

Result<std::string> ReadConfigFile(const std::string& path, const std::string& what) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return InvalidArgument(what + " '" + path + "' is a directory; --config takes a TOML file");
  }
  std::ifstream in(path);
  if (!in) return NotFound("cannot open " + what + " '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return NotFound("cannot read " + what + " '" + path + "'");
  return ss.str();
}

}  // namespace phalanx
