#!/usr/bin/env bash
# Study 2 (pre-registered before the first accuracy of its ground truth came in; the criteria's
# settings below are fixed and not tuned on this ground truth): NAS-Bench-201 cells at C=8, N=3
# (three cells per stage) on Fashion-MNIST at 16x16.
#   1. the ground truth: 150 cells (50 per subspace), 3 seeds, two single-thread workers;
#   2. the comparison: one-shot, FS-NAS (with transfer), GM-NAS, this method, this method
#      without SBS; 3 seeds each; budgets equal (images), passes (subnet passes), published.
# Every step is resumable: rerun to continue, or to refresh the tables once the truth grows.
set -euo pipefail
cd "$(dirname "$0")"
# efsnas from the repository's .venv (scripts/setup.sh) when it is not on PATH
command -v efsnas >/dev/null || PATH="$(cd ../.. && pwd)/.venv/bin:$PATH"
export OMP_NUM_THREADS=1
GT=fmnist-n3-groundtruth.json
# The stand-alone recipe: the groundtruth preset at N=3 (sized from a 21-cell x 2-seed pilot,
# the first 21 cells of the same sample, see docs/studies/comparison.md).
GT_ARGS=(--preset groundtruth --set space.N=3 --per-subspace 50 --seeds 3)
if [ "${1:-}" != "compare-only" ]; then
  for i in 0 1; do
    efsnas groundtruth build "$GT" "${GT_ARGS[@]}" --shard $i/2 --workers 1 > "${GT%.json}.$i.log" 2>&1 &
  done
  wait
  efsnas groundtruth build "$GT" "${GT_ARGS[@]}"   # the summary and the meta file
fi
# The criteria: the compare preset at N=3, nothing else changed (pre-registered). Two
# single-thread processes share the (budget, row, seed) runs; the last call writes each budget's
# table and the quality-vs-cost figure (study2/quality_vs_cost.png), training nothing.
CMP=(--cells "${GT%.json}.cells.json" --ground-truth "$GT" --preset compare --set space.N=3
     --seeds 3 --criteria oneshot,fsnas,gmnas,nonlinearity,nonlinearity-nosbs
     --budget equal,passes,published --out study2)
mkdir -p study2
for i in 0 1; do
  efsnas compare "${CMP[@]}" --shard $i/2 --workers 1 > study2/compare.$i.log 2>&1 &
done
wait
efsnas compare "${CMP[@]}"
