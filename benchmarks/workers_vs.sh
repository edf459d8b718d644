#!/usr/bin/env bash
# Work per hour of `efsnas compare` and `efsnas groundtruth build` with 2 workers against 1, on
# one machine in one session: each command with --workers 1 and --workers 2, interleaved, ROUNDS
# times (default 2), into fresh folders. The work is the studies' own presets, at their own
# length unless cut short:
#   compare      the `compare` preset, 2 criteria (oneshot, nonlinearity) x 2 seeds at the equal
#                budget, EPOCHS (the preset's 24) epochs on TRAIN (15,000) images, each run
#                scoring the 150 cells of the committed ground truth and retraining its 3
#                finalists: 4 independent runs
#   groundtruth  the `groundtruth` preset, 2 cells per subspace x 2 seeds, GT_EPOCHS (the
#                preset's 10) epochs on TRAIN images: 12 independent trainings
# CMDS picks the commands (default "compare groundtruth"); OUT the JSON file.
# With --workers 1 everything runs in one process with torch's default threads (every core);
# with --workers 2, two single-thread processes share the jobs. Writes
# benchmarks/results/workers_vs.json: wall seconds of each, "work_per_hour_ratio" per command
# (median over rounds of 1-worker / 2-worker time) and the largest difference between their
# results. That difference comes from the thread count alone (a sum over 2 threads rounds
# differently from one over 1): a serial run at one thread gives the pool's results exactly
# (tests/cli/test_compare.py::test_workers_give_the_serial_results). Run it on an idle machine
# (about 30 minutes a round on 2 cores at the presets' lengths; the
# earlier EPOCHS=3 GT_EPOCHS=2, about 8 minutes, overstates start-up and the short trainings).
#   bash benchmarks/workers_vs.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2}
case "$ROUNDS" in ''|*[!0-9]*|0) echo "ROUNDS must be a whole number >= 1, got '$ROUNDS'" >&2; exit 2 ;; esac
EFSNAS=${EFSNAS:-$( [ -x .venv/bin/efsnas ] && echo .venv/bin/efsnas || echo efsnas )}
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
GT=benchmarks/results/fmnist-groundtruth.json
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
EPOCHS=${EPOCHS:-24}; GT_EPOCHS=${GT_EPOCHS:-10}; TRAIN=${TRAIN:-15000}
# (a smoke check: EPOCHS=1 GT_EPOCHS=1 TRAIN=500)
CMDS=${CMDS:-compare groundtruth}
OUT=${OUT:-benchmarks/results/workers_vs.json}
CUT=(--set train.epochs="$EPOCHS" --set data.max_train="$TRAIN")
compare() {  # $1 workers, $2 out
  "$EFSNAS" compare --preset compare "${CUT[@]}" --cells "${GT%.json}.cells.json" \
    --ground-truth "$GT" --criteria oneshot,nonlinearity --seeds 2 --budget equal \
    --workers "$1" --out "$2" >"$2.log" 2>&1
}
groundtruth() {  # $1 workers, $2 out
  "$EFSNAS" groundtruth build "$2.json" --preset groundtruth --epochs "$GT_EPOCHS" \
    --set data.max_train="$TRAIN" --per-subspace 2 --seeds 2 --workers "$1" >"$2.log" 2>&1
}
: > "$TMP/times"
for r in $(seq "$ROUNDS"); do
  for cmd in $CMDS; do
    for w in 1 2; do
      t0=$(date +%s.%N)
      "$cmd" "$w" "$TMP/$cmd-w$w-r$r"
      t=$("$PY" -c "print(round($(date +%s.%N) - $t0, 2))")
      echo "$cmd $w $r $t" >> "$TMP/times"
      echo "round $r, $cmd, $w worker(s): ${t}s"
    done
  done
done
"$PY" - "$TMP" "$ROUNDS" "$EPOCHS" "$GT_EPOCHS" "$TRAIN" "$OUT" <<'PY'
import json, os, platform, statistics, sys
from pathlib import Path
tmp, rounds, epochs, gt_epochs, train = Path(sys.argv[1]), *map(int, sys.argv[2:6])
times = {}
for line in (tmp / "times").read_text().split("\n"):
    if line:
        cmd, w, r, t = line.split()
        times.setdefault(cmd, {}).setdefault(f"{w}_worker_seconds", []).append(float(t))

def results(cmd, w, r):  # what each command computed: every run's scores / the truth's accuracies
    if cmd == "groundtruth":
        return json.loads((tmp / f"groundtruth-w{w}-r{r}.json").read_text())
    return {str(p.relative_to(tmp / f"compare-w{w}-r{r}")): json.loads(p.read_text())["scores"]
            for p in sorted((tmp / f"compare-w{w}-r{r}").rglob("scores.json"))}

def max_diff(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), "different runs or cells"
        return max((max_diff(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, list):
        return max((max_diff(x, y) for x, y in zip(a, b)), default=0.0)
    return abs(float(a) - float(b)) if isinstance(a, (int, float)) else 0.0

out = {"note": "--workers 1: one process at torch's default threads; --workers 2: two single-thread "
       "processes. The results differ only by the thread count (one thread gives the pool's results "
       "exactly, tests/cli/test_compare.py::test_workers_give_the_serial_results).",
       "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
       "rounds": rounds, "commands": {}}
for cmd, t in times.items():
    one, two = t["1_worker_seconds"], t["2_worker_seconds"]
    diffs = [max_diff(results(cmd, 1, r), results(cmd, 2, r)) for r in range(1, rounds + 1)]
    out["commands"][cmd] = {**t, "work_per_hour_ratio": statistics.median(a / b for a, b in zip(one, two)),
                            "max_abs_difference_1_vs_2_workers": max(diffs)}
what = {"compare": (
    f"efsnas compare --preset compare --set train.epochs={epochs} --set data.max_train={train} "
    "--criteria oneshot,nonlinearity --seeds 2 --budget equal (4 runs, 150 cells each)"),
    "groundtruth": (f"efsnas groundtruth build --preset groundtruth --epochs {gt_epochs} "
                    f"--set data.max_train={train} --per-subspace 2 --seeds 2 (12 trainings)")}
for cmd in out["commands"]:
    out["commands"][cmd]["what"] = what[cmd]
Path(sys.argv[6]).write_text(json.dumps(out, indent=1) + "\n")
print(json.dumps(out, indent=1))
PY
