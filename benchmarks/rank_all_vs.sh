#!/usr/bin/env bash
# Scoring speed against an earlier commit, measured in the same session: rank_all.py at 512
# images from a worktree of REF and from this checkout, interleaved, ROUNDS times (default 3).
# Writes benchmarks/results/rank_all_vs_REF.json. Run on an idle machine.
#   bash benchmarks/rank_all_vs.sh c237a3c [ROUNDS] [CELLS]
set -euo pipefail
cd "$(dirname "$0")/.."
REF=${1:?usage: bash benchmarks/rank_all_vs.sh REF [ROUNDS] [CELLS]}
ROUNDS=${2:-3}
CELLS=${3:-150}
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo "$PWD/.venv/bin/python" || echo python3 )}
TMP=$(mktemp -d)
git worktree add --detach -f "$TMP/ref" "$REF" >/dev/null
trap 'git worktree remove --force "$TMP/ref"; rm -rf "$TMP"' EXIT
for r in $(seq "$ROUNDS"); do
  (cd "$TMP/ref" && PYTHONPATH="$TMP/ref/src" "$PY" benchmarks/rank_all.py --images 512 \
     --cells "$CELLS" --out "$TMP/ref-$r.json")
  "$PY" benchmarks/rank_all.py --images 512 --cells "$CELLS" --out "$TMP/now-$r.json"
done
"$PY" - "$TMP" "$ROUNDS" "$REF" <<'PYEOF'
import json, statistics, sys
tmp, rounds, ref = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def per_class(path):
    return json.load(open(path))["rows"][0]["seconds_per_class"]
rows = [{"reference_s": per_class(f"{tmp}/ref-{r}.json"), "now_s": per_class(f"{tmp}/now-{r}.json")}
        for r in range(1, rounds + 1)]
for row in rows:
    row["speedup"] = row["reference_s"] / row["now_s"]
out = {"reference": ref, "images": 512, "rounds": rows,
       "median_speedup": statistics.median(r["speedup"] for r in rows)}
json.dump(out, open(f"benchmarks/results/rank_all_vs_{ref}.json", "w"), indent=1)
print(" ".join(f"{r['reference_s'] * 1e3:.0f}/{r['now_s'] * 1e3:.0f} ms ({r['speedup']:.2f}x)"
               for r in rows), f"median {out['median_speedup']:.2f}x")
PYEOF
