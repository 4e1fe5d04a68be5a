#!/usr/bin/env bash
# Debian's /usr/bin/python3 (whose site-packages hold python3-numpy) with the
# build tree's `phalanx` package on its path: scripts/python.sh my_script.py,
# or with no arguments an interactive interpreter. Build first (scripts/build.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${PHX_BUILD_DIR:-$here/build}
export PYTHONPATH="$build_dir/python${PYTHONPATH:+:$PYTHONPATH}"
exec /usr/bin/python3 "$@"
