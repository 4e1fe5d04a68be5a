#!/usr/bin/env bash
# Live federated mode vs the simulator on the same setup (launch/README.md,
# "Live federated mode"): Fashion-MNIST softmax, M = 20 clients, Dir(0.1) equal
# sizes, F-80 speeds, K = 10 local steps of batch 64. Runs
# launch/configs/fashion-mnist-fedbuff.toml live (2 servers x 4 workers) once
# per rule (fedbuff, fedasync, async, fedfix) for DURATION seconds, and
# launch/simulations/live-compare.toml with the matching virtual budget
# (DURATION / time unit). Writes runs/fl-live/{live-<rule>,sim}/,
# runs/fl-live/table.md and runs/fl-live/compare.png (accuracy vs seconds,
# live and simulated, one panel per rule).
# Usage: scripts/fl-live-compare.sh [duration_s] ; env BUILD, OUT override.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
duration=${1:-30}
build=${BUILD:-build}
out=${OUT:-runs/fl-live}
unit_ms=100  # federated.time_unit_ms of the live config
budget=$(python3 -c "print($duration * 1000 / $unit_ms)")
rules=(fedbuff fedasync async fedfix)
mkdir -p "$out"
"$build/phalanx" simulate --config launch/simulations/live-compare.toml --out "$out/sim" \
  --threads 2 --set simulation.time_budget="$budget" | grep -v '^  '
for r in "${rules[@]}"; do
  echo "== live $r, $duration s"
  "$build/phalanx" launch local --config launch/configs/fashion-mnist-fedbuff.toml \
    --out "$out/live-$r" --set federated.algorithm="$r" --set federated.duration_s="$duration" \
    --set federated.time_unit_ms="$unit_ms" | tail -1
done
python3 - "$out" "$unit_ms" "${rules[@]}" <<'PY'
import csv, json, statistics, sys
out, unit = sys.argv[1], float(sys.argv[2]) / 1000
sim = {r["name"]: r for r in json.load(open(f"{out}/sim/summary.json"))["runs"]}
lines = ["| rule | live final / best / std last 20% | simulated final / best / std last 20% | server steps live / sim | staleness live (worker 0) / sim |",
         "|---|---|---|---|---|"]
for rule in sys.argv[3:]:
    rows = [r for r in csv.DictReader(open(f"{out}/live-{rule}/metrics.csv")) if r["test_accuracy"]]
    acc = [float(r["test_accuracy"]) for r in rows]
    wall = [float(r["wall_seconds"]) for r in rows]
    last = [a for a, w in zip(acc, wall) if w >= 0.8 * max(wall)]
    stale = [float(r["staleness_mean"]) for r in rows if r["staleness_mean"]]
    final = json.load(open(f"{out}/live-{rule}/summary.json"))["final_test_accuracy"]
    s = sim[rule]
    lines.append(f"| {rule} | {final:.4f} / {max(acc):.4f} / {statistics.pstdev(last):.4f} | "
                 f"{s['final_accuracy']:.4f} / {s['best_accuracy']:.4f} / {s['std_last20']:.4f} | "
                 f"{rows[-1]['round']} / {s['server_steps']} | "
                 f"{statistics.mean(stale) if stale else float('nan'):.2f} / {s['staleness_mean']:.2f} |")
open(f"{out}/table.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
# gnuplot script: one panel per rule, x in seconds (simulated: virtual time x unit).
g = [f"set terminal pngcairo size 1100,800", f"set output '{out}/compare.png'",
     "set datafile separator ','", "set key bottom right", "set yrange [0:0.85]",
     "set multiplot layout 2,2 title 'Live vs simulated (accuracy vs seconds)'"]
for rule in sys.argv[3:]:
    g += [f"set title '{rule}'", "set xlabel 'seconds'", "set ylabel 'test accuracy'",
          f"plot '{out}/live-{rule}/metrics.csv' every ::1 using 2:4 with linespoints title 'live', "
          f"'{out}/sim/curves/{rule}.csv' every ::1 using ($1*{unit}):5 with linespoints title 'simulated'"]
g.append("unset multiplot")
open(f"{out}/compare.gp", "w").write("\n".join(g) + "\n")
PY
gnuplot "$out/compare.gp"
echo "table: $out/table.md  plot: $out/compare.png"
