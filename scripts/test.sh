#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds (Release, tests and
# benchmarks), runs (when PHX_SANITIZE_TESTS=1, the default under CI) an
# ASan+UBSan build of the core libraries' unit tests, builds (under CI) the
# libraries with clang's thread-safety analysis as errors, then runs every
# unit and integration test with ctest (its summary is the last thing printed).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
scripts/setup.sh
scripts/build.sh
if [ "${PHX_SANITIZE_TESTS:-${CI:+1}}" = "1" ]; then
  echo "== AddressSanitizer + UndefinedBehaviorSanitizer: core libraries' unit tests"
  # -O1 -g1: sanitizer builds of the Eigen-heavy aggregators dominate CI time at
  # -O2 -g; line tables are enough for ASan's stack traces. The core areas only
  # (each area's tests link just the libraries below it).
  if [ ! -f build-asan/build.ninja ]; then
    cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="-O1 -g1" \
      -DPHX_SANITIZE=address,undefined -DPHX_BUILD_BENCH=OFF -DPHX_BUILD_PYTHON=OFF
  fi
  # The fuzz targets' corpora of the core libraries (tests/fuzz) replay too.
  ninja -C build-asan common_test ps_test aggregators_test \
    fuzz_wire_replay fuzz_body_replay fuzz_snapshot_replay
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  export PHX_PHALANX_BINARY="$here/build/phalanx"  # clusters the tests start: release build
  for t in common_test ps_test aggregators_test; do
    echo "-- $t (asan+ubsan)"
    build-asan/tests/$t --gtest_brief=1
  done
  for t in wire body snapshot; do
    echo "-- fuzz corpus $t (asan+ubsan)"
    build-asan/tests/fuzz/fuzz_${t}_replay
  done
  unset ASAN_OPTIONS UBSAN_OPTIONS PHX_PHALANX_BINARY
fi
if [ "${CI:-}" = "true" ]; then
  echo "== clang thread-safety analysis (GUARDED_BY/REQUIRES, common/mutex.h): the libraries"
  # The analysis runs in the front end, so the libraries only (no tests or
  # benchmarks) and -O0: this build checks, nothing runs it.
  if [ ! -f build-tsa/build.ninja ]; then
    cmake -S . -B build-tsa -G Ninja -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS=-O0 \
      -DCMAKE_CXX_COMPILER=clang++-14 -DPHX_THREAD_SAFETY_ANALYSIS=ON \
      -DPHX_BUILD_TESTS=OFF -DPHX_BUILD_BENCH=OFF -DPHX_BUILD_PYTHON=OFF
  fi
  ninja -C build-tsa
fi
# No ThreadSanitizer run: building common_test and ps_test with it takes ~4.5
# min here, and Debian's TBB is not built with TSan, so ps_test's
# parallel_for hand-offs show up as false races (they need an instrumented
# TBB or suppressions that would also hide real ones).
echo "== unit and integration tests"
ctest --test-dir build --output-on-failure -j2 --timeout 900
