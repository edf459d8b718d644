#!/usr/bin/env bash
# The GPU rows, in one go (under 10 minutes on one GPU): the training-step and ranking
# benchmarks with --device cuda (bf16 autocast and channels_last switch on by themselves there),
# then a short CUDA training, scoring and correlation run. Results in benchmarks/results/cuda/.
# Without CUDA it says so and exits 0.
#   bash benchmarks/gpu.sh            (from the repository root, with .venv or efsnas installed)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "benchmarks/gpu.sh: no CUDA device here (torch.cuda.is_available() is False); nothing run"
  exit 0
fi
OUT=benchmarks/results/cuda
mkdir -p "$OUT/profiles"
"$PY" -c "import torch; print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__)" \
  | tee "$OUT/device.txt"
"$PY" benchmarks/train_step.py --device cuda --steps 50 --batches 64,128,256 \
  --profile "$OUT/profiles" --out "$OUT/train_step.json" | tee "$OUT/train_step.log"
"$PY" benchmarks/rank_all.py --device cuda --images 512,10000 --cells 2000,500 \
  --out "$OUT/rank_all.json" | tee "$OUT/rank_all.log"
# A short real run on CUDA: the ranking study's supernets (Fashion-MNIST 16x16 when installed,
# else digits) trained for 6 epochs, every planned ground-truth cell scored and correlated.
RUN=$(mktemp -d)/run
"$PY" -m efsnas train --preset compare --device cuda --epochs 6 --out "$RUN" | tee "$OUT/train.log"
if [ -f benchmarks/results/fmnist-groundtruth.cells.json ]; then
  "$PY" -m efsnas evaluate "$RUN" --cells benchmarks/results/fmnist-groundtruth.cells.json \
    --out "$OUT/scores.json" --no-progress | tee "$OUT/evaluate.log"
  if [ -f benchmarks/results/fmnist-groundtruth.json ]; then
    "$PY" -m efsnas correlate "$OUT/scores.json" benchmarks/results/fmnist-groundtruth.json \
      --json > "$OUT/correlate.json"
  fi
fi
cp "$RUN/metrics.jsonl" "$OUT/metrics.jsonl"
echo "results in $OUT/"
