#include "bench/util/children.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace phalanx::bench {
namespace {

// Pids of the children started, so a failure can kill them before exiting.
std::vector<pid_t>& Children() {
  static std::vector<pid_t> pids;
  return pids;
}

}  // namespace

bool StartChild(launch::ChildProcess* child, const std::vector<std::string>& args,
                const std::string& log_path) {
  launch::ChildOptions options;
  options.log_path = log_path;
  options.search_path = true;
  options.die_with_parent = true;  // never outlive a killed bench
  if (!child->Start(args, options).ok()) return false;
  Children().push_back(child->pid());
  return true;
}

void Die() {
  for (pid_t p : Children()) kill(p, SIGKILL);
  std::fflush(stdout);
  _exit(1);
}

void Check(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s failed: %s\n", program_invocation_short_name, what,
                 s.ToString().c_str());
    Die();
  }
}

}  // namespace phalanx::bench
