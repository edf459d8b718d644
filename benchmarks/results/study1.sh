#!/usr/bin/env bash
# Study 1, on the committed ground truth (NAS-Bench-201 cells, C=8, N=1, Fashion-MNIST 16x16):
# one-shot, FS-NAS (with transfer), GM-NAS, this method, this method without SBS; 3 seeds each,
# at three budgets: equal images, equal subnet passes (the cost-matched comparison), and the
# criteria's published schedules. Two single-thread workers share the (budget, row, seed) runs;
# every run is resumable (rerun to continue). Tables: study1/compare.<budget>.md, figure:
# study1/quality_vs_cost.png.
set -euo pipefail
cd "$(dirname "$0")"
# efsnas from the repository's .venv (scripts/setup.sh) when it is not on PATH
command -v efsnas >/dev/null || PATH="$(cd ../.. && pwd)/.venv/bin:$PATH"
export OMP_NUM_THREADS=1
mkdir -p study1
efsnas compare --cells fmnist-groundtruth.cells.json --ground-truth fmnist-groundtruth.json \
  --preset compare --seeds 3 --criteria oneshot,fsnas,gmnas,nonlinearity,nonlinearity-nosbs \
  --budget equal,passes,published --workers 2 --out study1 "$@"
