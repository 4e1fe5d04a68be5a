#include "launch/cli/command_words.h"

#include <algorithm>
#include <limits>

namespace phalanx::launch {

int EditDistance(const std::string& a, const std::string& b) {
  // Optimal string alignment: Levenshtein plus swaps of adjacent letters,
  // the commonest typo ("lauch" is one deletion, "lcoal" one swap).
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<int>> d(n + 1, std::vector<int>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = static_cast<int>(i);
  for (size_t j = 0; j <= m; ++j) d[0][j] = static_cast<int>(j);
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      const int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

std::string NearestName(const std::string& word, const std::vector<std::string>& names) {
  if (std::find(names.begin(), names.end(), word) != names.end()) return {};
  const int allowed = word.size() >= 9 ? 3 : word.size() >= 5 ? 2 : 1;
  std::string best;
  int best_d = std::numeric_limits<int>::max();
  for (const auto& name : names) {
    const int d = EditDistance(word, name);
    if (d < best_d) {
      best_d = d;
      best = name;
    }
  }
  return best_d <= allowed ? best : std::string();
}

std::string UnknownCommandMessage(
    const std::vector<std::string>& args, const std::vector<std::string>& commands,
    const std::vector<std::pair<std::string, std::vector<std::string>>>& subcommands,
    const std::vector<std::string>& options_with_value) {
  const std::vector<std::string>* expected = &commands;
  std::string under;  // the command whose subcommand is expected ("" = top level)
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& w = args[i];
    if (w.empty() || w[0] == '-') {
      // An option; skip its value when it takes one and is not written --opt=value.
      if (w.find('=') == std::string::npos &&
          std::find(options_with_value.begin(), options_with_value.end(), w) !=
              options_with_value.end()) {
        ++i;
      }
      continue;
    }
    if (std::find(expected->begin(), expected->end(), w) == expected->end()) {
      const std::string where = under.empty() ? "command" : under + " command";
      std::string msg = "unknown " + where + " '" + w + "'";
      const std::string near = NearestName(w, *expected);
      if (!near.empty()) msg += "; did you mean '" + near + "'?";
      std::string list;
      for (const auto& c : *expected) list += (list.empty() ? "" : ", ") + c;
      return msg + " (" + (under.empty() ? "commands" : under + " commands") + ": " + list + ")";
    }
    // A known word: its subcommands come next, if it has any.
    auto sub = std::find_if(subcommands.begin(), subcommands.end(),
                            [&](const auto& s) { return s.first == w; });
    if (sub == subcommands.end()) return {};
    under = w;
    expected = &sub->second;
  }
  return {};
}

}  // namespace phalanx::launch
