#pragma once
// Child processes of a bench (the `phalanx` scheduler and server, a baseline
// server): started through launch::ChildProcess with stdout on a pipe, killed
// if the bench dies, and remembered so that a failing bench can kill them all
// before it exits. Main thread only.

#include <string>
#include <vector>

#include "common/status.h"
#include "launch/process/child_process.h"

namespace phalanx::bench {

// How long a stopped child gets after SIGTERM before SIGKILL (callgrind
// writes its profile then).
inline constexpr int kStopGraceMs = 6000;

// Starts args (args[0] looked up in PATH) with stdout on the child's pipe and
// stderr to log_path, SIGKILLed when the bench dies; false on failure.
bool StartChild(launch::ChildProcess* child, const std::vector<std::string>& args,
                const std::string& log_path);

// Kills every child StartChild started and exits at once with status 1.
// std::exit would run static destructors, and ZeroMQ's context destructor
// blocks on a Client's open sockets, hanging the run.
[[noreturn]] void Die();

// Prints "<program>: <what> failed: <status>" and Die()s unless s is OK.
void Check(const Status& s, const char* what);

}  // namespace phalanx::bench
