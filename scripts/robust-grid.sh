#!/usr/bin/env bash
# Robust aggregation under Byzantine workers: Fashion-MNIST MLP, 15 workers of
# which F are Byzantine, 2 servers, every rule x every attack. Writes
# runs/robust-grid/results.csv, summary.md and heatmap.png.
# Usage: scripts/robust-grid.sh [rounds] ; env RULES / ATTACKS / F override the grid.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
rounds=${1:-250}
rules=${RULES:-"mean median trimmed-mean krum geometric-median nna flag"}
attacks=${ATTACKS:-"none random sign-flip gaussian alie foe label-flip"}
f=${F:-3}
out=${OUT:-runs/robust-grid}
mkdir -p "$out"
csv="$out/results.csv"
[ -f "$csv" ] || echo "rule,attack,f,final_test_accuracy,rounds,wall_seconds" > "$csv"
for attack in $attacks; do
  for rule in $rules; do
    if grep -q "^$rule,$attack,$f," "$csv"; then continue; fi  # resumable
    count=$f; [ "$attack" = none ] && count=0
    run="$out/$rule-$attack"
    if build/phalanx launch local --quiet --config launch/configs/fashion-mnist-mlp.toml --out "$run" \
        --set cluster.workers=15 --set model.hidden=128 --set train.rounds="$rounds" \
        --set train.eval_every="$rounds" --set aggregator.name="$rule" --set aggregator.f="$f" \
        --set byzantine.count="$count" --set byzantine.attack="${attack/none/random}" \
        > "$run.log" 2>&1; then
      acc=$(python3 -c "import json;print(json.load(open('$run/summary.json'))['final_test_accuracy'])")
      wall=$(python3 -c "import json;print(round(json.load(open('$run/summary.json'))['wall_seconds'],1))")
    else
      acc=nan; wall=nan
    fi
    echo "$rule,$attack,$f,$acc,$rounds,$wall" >> "$csv"
    printf '%-18s %-11s acc %s (%ss)\n' "$rule" "$attack" "$acc" "$wall"
  done
done
python3 - "$csv" "$out" "$f" <<'PY'
import csv, sys, subprocess, os
path, out, f = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [r for r in csv.DictReader(open(path)) if r["f"] == f]
rules = list(dict.fromkeys(r["rule"] for r in rows))
attacks = list(dict.fromkeys(r["attack"] for r in rows))
acc = {(r["rule"], r["attack"]): r["final_test_accuracy"] for r in rows}
with open(os.path.join(out, "summary.md"), "w") as md:
    md.write(f"Final test accuracy, Fashion-MNIST MLP, 15 workers ({f} Byzantine), 2 servers\n\n")
    md.write("| rule | " + " | ".join(attacks) + " |\n|---|" + "---|" * len(attacks) + "\n")
    for rule in rules:
        md.write(f"| {rule} | " + " | ".join(acc.get((rule, a), "") for a in attacks) + " |\n")
# heatmap with gnuplot
dat = os.path.join(out, "heatmap.dat")
with open(dat, "w") as d:
    for i, rule in enumerate(rules):
        for j, a in enumerate(attacks):
            v = acc.get((rule, a), "nan")
            d.write(f"{j} {i} {v}\n")
        d.write("\n")
xt = ", ".join(f'"{a}" {j}' for j, a in enumerate(attacks))
yt = ", ".join(f'"{r}" {i}' for i, r in enumerate(rules))
script = f"""set terminal pngcairo size 900,600
set output '{os.path.join(out, "heatmap.png")}'
set title 'Final test accuracy ({f} of 15 workers Byzantine)'
set xtics ({xt}) rotate by -30
set ytics ({yt})
set cbrange [0:1]
set palette defined (0 'red', 0.5 'yellow', 1 'forest-green')
unset key
plot '{dat}' using 1:2:3 with image, '' using 1:2:(sprintf('%.2f',$3)) with labels
"""
subprocess.run(["gnuplot"], input=script.encode(), check=False)
print(open(os.path.join(out, "summary.md")).read())
PY
