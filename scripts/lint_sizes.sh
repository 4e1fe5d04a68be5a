#!/usr/bin/env bash
# House rule lint (run by ctest, label lint): no source file outside tests/
# over 600 lines, no function over 150 lines; offences listed in
# scripts/size_allowlist.txt are reported but allowed. See lint_sizes.py.
# Usage: scripts/lint_sizes.sh [--root DIR | DIR] [--allowlist FILE] [--list]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# The system interpreter when there is one (the script needs only the
# standard library), else whatever python3 is on PATH.
py=/usr/bin/python3
[[ -x "$py" ]] || py=python3
exec "$py" "$here/lint_sizes.py" "$@"
