#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers of untrusted input (tests/fuzz/README.md).
# Builds the libFuzzer targets with clang, ASan and UBSan into build-fuzz/, then
# runs each target for SECONDS (default 60) on a working corpus in
# runs/fuzz/corpus/<target>/, seeded from tests/fuzz/corpus/<target>/. Inputs
# that crash are written to runs/fuzz/crashes/<target>/; copy them into
# tests/fuzz/corpus/<target>/ with the fix, so the replay tests keep them.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET ...]   (targets: wire body snapshot server scheduler
# client dataset config aggregate; default all). Exit code 1 when any target crashed.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(wire body snapshot server scheduler client dataset config aggregate)

scripts/setup.sh --no-data
if ! command -v clang++ >/dev/null 2>&1; then
  echo "[fuzz] installing clang (libFuzzer)"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends clang >/dev/null
fi
if [ ! -f build-fuzz/build.ninja ]; then
  CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=None \
    -DCMAKE_CXX_FLAGS="-O1 -g1 -fsanitize=fuzzer-no-link" -DPHX_SANITIZE=address,undefined \
    -DPHX_FUZZ=ON -DPHX_BUILD_BENCH=OFF
fi
ninja -C build-fuzz "${targets[@]/#/fuzz_}"

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
crashed=()
for t in "${targets[@]}"; do
  corpus=runs/fuzz/corpus/$t
  crashes=runs/fuzz/crashes/$t
  mkdir -p "$corpus" "$crashes"
  echo "== fuzz_$t for ${seconds}s (corpus $corpus)"
  status=0
  build-fuzz/tests/fuzz/fuzz_$t "$corpus" "tests/fuzz/corpus/$t" -max_total_time="$seconds" \
    -timeout=10 -rss_limit_mb=4096 -max_len=65536 -artifact_prefix="$crashes/" \
    -print_final_stats=1 >"runs/fuzz/$t.log" 2>&1 || status=$?
  grep -E "^stat::(number_of_executed_units|new_units_added)" "runs/fuzz/$t.log" | sed 's/^/   /'
  if [ $status -ne 0 ]; then
    echo "   CRASH (exit $status): see runs/fuzz/$t.log and $crashes/"
    grep -m1 -E "ERROR|invariant violated|runtime error" "runs/fuzz/$t.log" | sed 's/^/   /' || true
    crashed+=("$t")
  fi
done
if [ ${#crashed[@]} -gt 0 ]; then
  echo "crashed: ${crashed[*]}"
  exit 1
fi
echo "no crashes"
