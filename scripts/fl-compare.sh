#!/usr/bin/env bash
# Fraboni et al.'s comparison (docs/federated.md), scaled to this machine:
# Fashion-MNIST softmax, Dir(0.1) equal-size clients, F-80, K = 10 local steps of
# batch 64, η_g = 1, the same virtual-time budget for sync FedAvg, async FedAvg
# (Fraboni and identical weights), FedFix Δt ∈ {0.2, 0.5, 0.8} and FedBuff
# K_b ∈ {5, 10}, for M = 20 and M = 50. Writes runs/fl-compare/{M20,M50}/
# (metrics.csv, summary.json, accuracy.png, staleness.png) and
# runs/fl-compare/table.md (final and best accuracy, std over the last 20%).
# Usage: scripts/fl-compare.sh [time_budget] ; env THREADS, BUILD, OUT override.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
budget=${1:-100}
build=${BUILD:-build}
out=${OUT:-runs/fl-compare}
threads=${THREADS:-0}
config=launch/simulations/fraboni-fmnist.toml
mkdir -p "$out"
for m in 20 50; do
  echo "== M = $m, T = $budget"
  start=$(date +%s)
  "$build/phalanx" simulate --config "$config" --out "$out/M$m" --threads "$threads" \
    --set simulation.clients="$m" --set simulation.time_budget="$budget" \
    --set simulation.title="\"Fashion-MNIST softmax, M=$m, Dir(0.1) equal sizes, F-80\"" \
    | grep -v '^  '
  echo "M = $m took $(( $(date +%s) - start )) s"
done
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
lines = ["| run | M | final acc | best acc | std last 20% | server steps | updates | mean staleness |",
         "|---|---|---|---|---|---|---|---|"]
for m in (20, 50):
    s = json.load(open(f"{out}/M{m}/summary.json"))
    for r in s["runs"]:
        lines.append(f"| {r['name']} | {m} | {r['final_accuracy']:.4f} | {r['best_accuracy']:.4f} | "
                     f"{r['std_last20']:.4f} | {r['server_steps']} | {r['accepted_updates']} | "
                     f"{r['staleness_mean']:.2f} |")
open(f"{out}/table.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "plots: $out/M20/accuracy.png $out/M50/accuracy.png (and staleness.png)"
