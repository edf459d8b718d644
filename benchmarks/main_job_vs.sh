#!/usr/bin/env bash
# The main job's wall time against an earlier commit, on one machine in one session: `efsnas run`
# (the default preset, a fresh --out folder each time) from a worktree of REF and from a worktree
# of HEAD, interleaved, ROUNDS times (default 2). Both use this checkout's Python environment,
# each with its own source first on PYTHONPATH (checked before anything runs). Writes
# benchmarks/results/main_job_vs.json: both lists of wall seconds and "ratio", the median of
# HEAD / REF over the rounds. Takes about 2 x ROUNDS main jobs; run it on an idle machine.
#   bash benchmarks/main_job_vs.sh [REF] [ROUNDS] [-- EXTRA EFSNAS RUN ARGS...]
#   bash benchmarks/main_job_vs.sh 04ad0e1 2
#   bash benchmarks/main_job_vs.sh 04ad0e1 2 -- --set train.epochs=2   # a shorter job, both
set -euo pipefail
cd "$(dirname "$0")/.."
REF=${1:-04ad0e1}
ROUNDS=${2:-2}
shift $(( $# < 2 ? $# : 2 ))
if [ "${1:-}" = "--" ]; then shift; fi
EXTRA=("$@")
case "$ROUNDS" in ''|*[!0-9]*|0) echo "ROUNDS must be a whole number >= 1, got '$ROUNDS'" >&2; exit 2 ;; esac
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo "$PWD/.venv/bin/python" || echo python3 )}
OUT_JSON=${MAIN_JOB_VS_OUT:-benchmarks/results/main_job_vs.json}
REF_SHA=$(git rev-parse --short "$REF^{commit}")
HEAD_SHA=$(git rev-parse --short HEAD)
TMP=$(mktemp -d)
cleanup() {
  git worktree remove --force "$TMP/ref" >/dev/null 2>&1 || true
  git worktree remove --force "$TMP/head" >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT
git worktree add --detach -f "$TMP/ref" "$REF_SHA" >/dev/null
git worktree add --detach -f "$TMP/head" "$HEAD_SHA" >/dev/null

# Each tree must import its own efsnas (PYTHONPATH before the installed, editable one).
for tree in ref head; do
  where=$(cd "$TMP/$tree" && PYTHONPATH="$TMP/$tree/src" "$PY" -c \
          "import efsnas, os; print(os.path.realpath(efsnas.__file__))")
  case "$where" in
    "$(realpath "$TMP/$tree")"/*) ;;
    *) echo "the $tree tree imports efsnas from $where, not its own source" >&2; exit 1 ;;
  esac
done

: > "$TMP/times.tsv"
run_one() {  # tree round: one main job, its wall seconds appended to times.tsv
  local tree=$1 round=$2 t0 t1
  local out="$TMP/runs/$tree-$round" log="$TMP/$tree-$round.log"
  t0=$EPOCHREALTIME
  if ! (cd "$TMP/$tree" && PYTHONPATH="$TMP/$tree/src" "$PY" -m efsnas run --out "$out" \
          "${EXTRA[@]}") > "$log" 2>&1; then
    echo "efsnas run of $tree (round $round) failed; the end of its log:" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  t1=$EPOCHREALTIME
  printf '%s\t%s\t%s\n' "$tree" "$round" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" >> "$TMP/times.tsv"
  echo "round $round $tree ($( [ "$tree" = ref ] && echo "$REF_SHA" || echo "$HEAD_SHA" )):" \
       "$(tail -1 "$TMP/times.tsv" | cut -f3) s"
}

for r in $(seq "$ROUNDS"); do
  # interleaved, and the order alternates so neither side always runs first
  if [ $((r % 2)) -eq 1 ]; then run_one ref "$r"; run_one head "$r"
  else run_one head "$r"; run_one ref "$r"; fi
done

"$PY" - "$TMP/times.tsv" "$OUT_JSON" "$REF_SHA" "$HEAD_SHA" "${EXTRA[*]:-}" <<'PYEOF'
import json, os, platform, statistics, sys
times, out, ref, head, extra = sys.argv[1:6]
rows = [line.split("\t") for line in open(times).read().splitlines()]
by = {t: [float(s) for tree, _, s in sorted(rows, key=lambda r: int(r[1])) if tree == t]
      for t in ("ref", "head")}
ratios = [h / r for h, r in zip(by["head"], by["ref"])]
result = {"ref": ref, "head": head, "rounds": len(ratios), "command": "efsnas run " + extra,
          "ref_seconds": by["ref"], "head_seconds": by["head"], "ratios": ratios,
          "ratio": statistics.median(ratios),
          "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}}
os.makedirs(os.path.dirname(out), exist_ok=True)
json.dump(result, open(out, "w"), indent=1)
print(f"HEAD {head} / REF {ref}: " + ", ".join(f"{x:.2f}" for x in ratios)
      + f"; median {result['ratio']:.2f}; written {out}")
PYEOF
