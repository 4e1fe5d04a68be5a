#!/usr/bin/env bash
# House rule lint (run by ctest, label lint): include boundaries.
#  1. No area includes another area's internal/ headers. Areas: common
#     aggregators ps worker scheduler launch bench. tests/<area>/ are that
#     area's unit tests and may include <area>/internal/.
#     Documented exception: the fuzz targets (tests/fuzz/) drive internal
#     parsers directly; the headers they may include are listed in
#     FUZZ_ALLOWED below, and nothing else.
#  2. No ZeroMQ, Asio, Beast or TBB header in a public header (a .h not under
#     an internal/ directory and not under tests/), so that a trainer can link
#     worker/ without our transport headers (see STYLE.md, "Public API").
# Prints each offence as file:line: text and exits 1 if there is any.
# Usage: scripts/lint_includes.sh [repo root]   (default: this script's ..)
set -euo pipefail
root="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
cd "$root"

AREAS=(common aggregators ps worker scheduler launch bench)
FUZZ_ALLOWED=(
  ps/internal/coordination.h
  worker/internal/file_reader.h
  worker/internal/mail_tokenizer.h
)
THIRD_PARTY='#[[:space:]]*include[[:space:]]*[<"](zmq\.h|zmq\.hpp|boost/asio|boost/beast|tbb/|oneapi/tbb)'
area_re="$(IFS='|'; echo "${AREAS[*]}")"
INTERNAL="#[[:space:]]*include[[:space:]]*\"(${area_re})/([^\"]*/)?internal/[^\"]*\""

offences=0
report() {
  echo "$1"
  offences=$((offences + 1))
}

# Every source file of the areas and the tests (build trees excluded).
files() {
  find "${AREAS[@]}" tests -type f \( -name '*.h' -o -name '*.cc' \) 2>/dev/null | sort
}

while IFS= read -r file; do
  # Owner: the file's area; tests/<area>/... belongs to <area>.
  owner="${file%%/*}"
  rest="${file#*/}"
  if [[ "$owner" == tests ]]; then owner="tests/${rest%%/*}"; fi
  while IFS= read -r hit; do
    [[ -z "$hit" ]] && continue
    line="${hit%%:*}"
    text="${hit#*:}"
    inc="$(sed -E 's/.*"([^"]*)".*/\1/' <<<"$text")"
    target="${inc%%/*}"
    if [[ "$owner" == "$target" || "$owner" == "tests/$target" ]]; then continue; fi
    if [[ "$owner" == tests/fuzz ]]; then
      allowed=0
      for a in "${FUZZ_ALLOWED[@]}"; do [[ "$inc" == "$a" ]] && allowed=1; done
      ((allowed)) && continue
    fi
    report "$file:$line: includes another area's internal header: $inc"
  done < <(grep -nE "$INTERNAL" "$file" || true)
  # Third-party transport/threading headers in public headers.
  if [[ "$file" == *.h && "$file" != tests/* && "$file" != */internal/* ]]; then
    while IFS= read -r hit; do
      [[ -z "$hit" ]] && continue
      report "$file:${hit%%:*}: public header includes a ZeroMQ/Asio/Beast/TBB header: ${hit#*:}"
    done < <(grep -nE "$THIRD_PARTY" "$file" || true)
  fi
done < <(files)

if ((offences > 0)); then
  echo "lint_includes: $offences offence(s)" >&2
  exit 1
fi
echo "lint_includes: OK"
