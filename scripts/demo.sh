#!/usr/bin/env bash
# The main job: installs what is missing, builds, then trains a one-hidden-layer
# MLP on Fashion-MNIST with 1 scheduler + 2 servers + 7 workers (separate
# processes over ZeroMQ/TCP on 127.0.0.1), one of them Byzantine (uniform
# random gradients), aggregated by the Flag aggregator, and prints the final
# test accuracy.
# Results (metrics.csv, summary.json, training.png, logs/) go to runs/demo/.
# Extra args are passed to `phalanx launch local` (e.g. --set aggregator.name=median).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
scripts/setup.sh
scripts/build.sh
out=${PHX_DEMO_OUT:-runs/demo}
exec build/phalanx launch local --config launch/configs/fashion-mnist-flag.toml --out "$out" "$@"
