#!/usr/bin/env bash
# The MobileNet ranking study (pre-registered: the settings below were committed before the
# first accuracy of this ground truth came in, and are not tuned on it). The paper's space at
# CPU scale: the mobilenet-cpu preset (21 layers in 6 stages, K=6 subspaces by ReLU6 count,
# width 0.25, Fashion-MNIST at 32x32).
#   pilot: 4 architectures per subspace x 2 seeds (the first ones of the full sample); if its
#          seed-to-seed Kendall tau is below 0.6, the full build uses retrain.epochs=8 instead
#          of the preset's 4 (the one change allowed, decided here);
#   truth: 20 architectures per subspace (120) x 2 seeds, two single-thread workers;
#   study: one-shot, this method, this method without SBS; 3 seeds each; budgets equal
#          (images) and passes (subnet passes); the preset's training, nothing else changed.
#          Added before any number of this ground truth existed: FS-NAS and GM-NAS, with the
#          compare preset's settings scaled to the preset's 5 epochs (FS-NAS: the first layer's
#          6 choices, transfer after a 1-epoch one-shot warm-up, 6 of 24 epochs there; GM-NAS:
#          splits after epochs 1 and 2, 6 and 12 of 24 there, 2 groups, 2 subnets per
#          operation). A smoke run measured GM-NAS's gradient matching at about 230 s a run in
#          this space (21 layers to weigh), far more than on NAS-Bench-201 (4-8 s).
# The pilots at 15,000 training images gave a seed-to-seed tau of 0.284 at 4 epochs and 0.222 at
# 8 (mobilenet-pilot-e4.*, mobilenet-pilot-e8.*: seed noise 0.71 pp against an architecture
# spread of 0.45 pp), below the issue's 0.5. The harder setting, decided before its numbers:
# every Fashion-MNIST training image but the held-out ones (TRAIN=58000) at 8 epochs,
#   TRAIN=58000 EPOCHS=8 bash mobilenet_study.sh pilot     (48 trainings, about 4x the cost)
# and the full build at that setting if its pilot reaches 0.5.
# Every step is resumable: rerun to continue. Usage: mobilenet_study.sh [pilot|truth|study]
set -euo pipefail
cd "$(dirname "$0")"
# efsnas from the repository's .venv (scripts/setup.sh) when it is not on PATH
command -v efsnas >/dev/null || PATH="$(cd ../.. && pwd)/.venv/bin:$PATH"
export OMP_NUM_THREADS=1
GT=mobilenet-groundtruth.json
EPOCHS=${EPOCHS:-4}   # 8 if the pilot says so (see above)
TRAIN=${TRAIN:-15000}  # training images (the preset's 15,000; 58000: all but the held-out)
HELDOUT=()  # the half split leaves 30,000 training images; beyond, hold out 200 per class
if [ "$TRAIN" -gt 30000 ]; then HELDOUT=(--set data.heldout_per_class=200); fi
stage=${1:-all}
build() {  # per-subspace
  efsnas groundtruth build "$GT" --preset mobilenet-cpu --per-subspace "$1" --seeds 2 \
    --set retrain.epochs="$EPOCHS" --set data.max_train="$TRAIN" "${HELDOUT[@]}" --workers 2
}
case $stage in pilot) build 4 ;; truth) build 20 ;; study) ;; all) build 4; build 20 ;; esac
if [ "$stage" = study ] || [ "$stage" = all ]; then
  mkdir -p mobilenet-study
  efsnas compare --cells "${GT%.json}.cells.json" --ground-truth "$GT" --preset mobilenet-cpu \
    --seeds 3 --criteria oneshot,fsnas,gmnas,nonlinearity,nonlinearity-nosbs --budget equal,passes \
    --set split.fsnas_transfer=true --set split.fsnas_warmup_epochs=1 \
    --set "split.gm_warmup_epochs=[1,2]" --set split.gm_samples=2 \
    --workers 2 --out mobilenet-study
fi
