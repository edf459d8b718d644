#!/usr/bin/env bash
# The ranking study (README): the ground truth (two workers, one per core), then the rows of the
# comparison, 3 seeds each, all resumable; rerun to continue or to refresh the table.
set -euo pipefail
cd "$(dirname "$0")"
# efsnas from the repository's .venv (scripts/setup.sh) when it is not on PATH
command -v efsnas >/dev/null || PATH="$(cd ../.. && pwd)/.venv/bin:$PATH"
export OMP_NUM_THREADS=1
for i in 0 1; do
  efsnas groundtruth build fmnist-groundtruth.json --per-subspace 50 --seeds 3 --shard $i/2 --workers 1 \
    > fmnist-groundtruth.$i.log 2>&1 &
done
wait
efsnas groundtruth build fmnist-groundtruth.json --per-subspace 50 --seeds 3   # the summary
efsnas compare --cells fmnist-groundtruth.cells.json --ground-truth fmnist-groundtruth.json \
  --seeds 3 --criteria oneshot,nonlinearity \
  --variant "separate:nonlinearity;split.structure=separate" \
  --variant "prefix-balanced:nonlinearity;train.sampler=balanced" \
  --variant "separate-balanced:nonlinearity;split.structure=separate;train.sampler=balanced" \
  --variant "head:nonlinearity;split.structure=shared_head" \
  --variant "trunk:nonlinearity;split.structure=shared_trunk" \
  --variant "prefix-zeros:nonlinearity;train.zero_grad=zeros" \
  --out fmnist-study
