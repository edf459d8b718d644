#!/usr/bin/env bash
# Ranking every cell with 1 and with 2 workers, on one machine in one session: `efsnas evaluate
# RUN --all` (each equivalence class once) with --workers 1 and --workers 2, interleaved, ROUNDS
# times (default 2), a fresh scores file each time. RUN: a trained run folder (default
# runs/default, made by `efsnas run`; it is trained first when absent). Writes
# benchmarks/results/evaluate_workers.json: the wall seconds of each and "speedup", the median of
# 1-worker / 2-worker time over the rounds. Run it on an idle machine.
# Extra `efsnas evaluate` arguments after `--` replace --all (e.g. a sample on fewer images:
# --all scores 9,444 classes, about 20 minutes with one worker at the default preset's 2,000).
#   bash benchmarks/evaluate_workers.sh [RUN] [ROUNDS] [-- EVALUATE ARGS...]
#   bash benchmarks/evaluate_workers.sh runs/default 2 -- --sample 1500 --max-images 500
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/default}
ROUNDS=${2:-2}
shift $(( $# < 2 ? $# : 2 ))
if [ "${1:-}" = "--" ]; then shift; fi
WHAT=("$@")
[ ${#WHAT[@]} -gt 0 ] || WHAT=(--all)
case "$ROUNDS" in ''|*[!0-9]*|0) echo "ROUNDS must be a whole number >= 1, got '$ROUNDS'" >&2; exit 2 ;; esac
EFSNAS=${EFSNAS:-$( [ -x .venv/bin/efsnas ] && echo .venv/bin/efsnas || echo efsnas )}
[ -f "$RUN/checkpoint.pt" ] || "$EFSNAS" train --out "$RUN"
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
one=(); two=()
for r in $(seq "$ROUNDS"); do
  for w in 1 2; do
    t0=$(date +%s.%N)
    "$EFSNAS" evaluate "$RUN" "${WHAT[@]}" --workers "$w" --no-progress --out "$TMP/s$w-$r.json" >/dev/null
    t=$(python3 -c "print(round($(date +%s.%N) - $t0, 2))")
    if [ "$w" = 1 ]; then one+=("$t"); else two+=("$t"); fi
    echo "round $r, $w worker(s): ${t}s"
  done
  cmp <(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['scores'])" "$TMP/s1-$r.json") \
      <(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['scores'])" "$TMP/s2-$r.json") \
      >/dev/null || echo "note: the 1- and 2-worker scores differ (thread count: the serial run uses all threads)"
done
python3 - "${one[*]}" "${two[*]}" "${WHAT[*]}" <<'PY'
import json, os, platform, statistics, sys
one = [float(x) for x in sys.argv[1].split()]; two = [float(x) for x in sys.argv[2].split()]
out = {"command": f"efsnas evaluate RUN {sys.argv[3]} --workers {{1,2}}", "one_worker_seconds": one,
       "two_worker_seconds": two, "speedup": statistics.median(a / b for a, b in zip(one, two)),
       "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}}
json.dump(out, open("benchmarks/results/evaluate_workers.json", "w"), indent=1)
print(json.dumps(out, indent=1))
PY
