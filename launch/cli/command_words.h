#pragma once
// What the command line says back about words it does not know: the nearest
// command name to a mistyped one ("lauch" -> "launch"), so the error names
// the fix. Pure functions; any thread.

#include <string>
#include <vector>

namespace phalanx::launch {

// Edit distance (insertions, deletions, substitutions, adjacent swaps).
int EditDistance(const std::string& a, const std::string& b);

// The name in `names` nearest to `word` if it is close enough to be a typo
// (distance at most 1 for short words, 2 from 5 letters, 3 from 9); empty
// otherwise, or when `word` is itself a name.
std::string NearestName(const std::string& word, const std::vector<std::string>& names);

// The first word of `args` (argv without the program) that stands where a
// command name is expected but is none of `commands` (options and their
// values skipped: `options_with_value` lists the options that take one), as
// "unknown command 'lauch'; did you mean 'launch'?"; empty when every
// command word is known. `subcommands` gives the names under a command
// (e.g. launch -> {local}).
std::string UnknownCommandMessage(
    const std::vector<std::string>& args, const std::vector<std::string>& commands,
    const std::vector<std::pair<std::string, std::vector<std::string>>>& subcommands,
    const std::vector<std::string>& options_with_value);

}  // namespace phalanx::launch
