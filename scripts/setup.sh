#!/usr/bin/env bash
# Set up efsnas in ./.venv on a fresh machine: CPU torch from the local wheel when none is
# installed, the package with its test tools and optional extras (TensorBoard, the official
# NAS-Bench-201 / NATS-Bench readers, ONNX export: so their tests run), and Debian's
# Fashion-MNIST when apt-get works.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! python -c "import torch" >/dev/null 2>&1; then
  # Installing torch first keeps pip from pulling a multi-GB CUDA build for `torch>=2.3`.
  python -m pip install -q torch==2.13.0 || python -m pip install -q "torch>=2.3"
fi
python -m pip install -q -e ".[dev,tensorboard,benchmarks,onnx]"
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
    || echo "note: Fashion-MNIST not installed (apt-get failed); efsnas run will use digits"
fi
