#!/usr/bin/env bash
# Configures and builds Phalanx (Release) into build/. Extra args go to cmake.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
build_dir=${PHX_BUILD_DIR:-build}
if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
fi
ninja -C "$build_dir" ${PHX_NINJA_TARGETS:-}
