#!/usr/bin/env bash
# Chaos test (issue 4): N runs of Fashion-MNIST (2 servers, 6 workers), each killing one random
# role (the scheduler, a server or a worker) with SIGKILL at a random round and starting a
# replacement (servers restore from their newest snapshot), plus one fault-free run. Prints,
# per run, the final accuracy, its distance to the fault-free one and the updates lost; writes
# runs/chaos/{results.csv,summary.md,chaos.md,...}. Resumable (finished runs are kept).
# Usage: scripts/chaos.sh [runs=10] [seed=1] [rounds=300]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
n=${1:-10}
seed=${2:-1}
rounds=${3:-300}
out=${OUT:-runs/chaos}
mkdir -p "$out/schedules"
RANDOM=$seed
names=""
for i in $(seq 1 "$n"); do
  case $((RANDOM % 3)) in
    0) node=scheduler ;;
    1) node=server-$((RANDOM % 2)) ;;
    2) node=worker-$((RANDOM % 6)) ;;
  esac
  # Kill between 20% and 80% of the run; replacements after 4 s (a worker's old rank is
  # free again once its heartbeats stopped for cluster.heartbeat_timeout_ms = 3 s).
  at=$((rounds / 5 + RANDOM % (rounds * 3 / 5)))
  cat > "$out/schedules/chaos$i.toml" <<TOML
[[faults]]
kind = "kill"
node = "$node"
at_round = $at
restart_after_s = 4
TOML
  names="$names, \"chaos$i\""
  files="${files:-}chaos$i = \"schedules/chaos$i.toml\"
"
done
cat > "$out/chaos.toml" <<TOML
[experiment]
name = "chaos"
base = "$here/launch/configs/fashion-mnist-mlp.toml"
parallel = 1
rules = ["mean"]
attacks = ["none"]
f = [0]
seeds = [$seed]
schedules = ["none"$names]
set = ["cluster.workers=6", "model.hidden=128", "train.rounds=$rounds", "train.eval_every=50",
       "train.log_every=10", "checkpoint.every_rounds=20", "cluster.tolerate_worker_failures=true"]
[schedule_files]
$files
TOML
build/phalanx experiment --config "$out/chaos.toml" --out "$out" || true
python3 - "$out" <<'PY'
import csv, sys, os
out = sys.argv[1]
rows = list(csv.DictReader(open(os.path.join(out, "results.csv"))))
base = [r for r in rows if r["schedule"] == "none"]
if not base or base[0]["status"] != "ok":
    sys.exit("the fault-free run did not finish; see " + out)
ref = float(base[0]["final_test_accuracy"])
lines = ["| run | fault | final accuracy | vs fault-free | updates lost | finished |", "|---|---|---|---|---|---|"]
ok = 0
for r in rows:
    if r["schedule"] == "none":
        continue
    sched = open(os.path.join(out, "schedules", r["schedule"] + ".toml")).read()
    node = sched.split('node = "')[1].split('"')[0]
    at = sched.split("at_round = ")[1].split()[0]
    fin = r["status"] == "ok"
    acc = float(r["final_test_accuracy"]) if fin else float("nan")
    d = (acc - ref) * 100
    good = fin and abs(d) <= 1.5
    ok += good
    lines.append(f"| {r['schedule']} | kill {node} at round {at} | {acc:.4f} | {d:+.2f} pts | {r['updates_lost']} | {'yes' if fin else 'NO'}{'' if good else ' (outside 1.5 pts)'} |")
summary = f"Fault-free final accuracy {ref:.4f}; {ok} of {len(lines) - 2} chaos runs finished within 1.5 points.\n\n" + "\n".join(lines) + "\n"
open(os.path.join(out, "chaos.md"), "w").write(summary)
print(summary)
PY
