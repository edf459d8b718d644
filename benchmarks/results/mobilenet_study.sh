#!/usr/bin/env bash
# The MobileNet ranking study (pre-registered: the settings below were committed before the
# first accuracy of this ground truth came in, and are not tuned on it). The paper's space at
# CPU scale: the mobilenet-cpu preset (21 layers in 6 stages, K=6 subspaces by ReLU6 count,
# width 0.25, Fashion-MNIST at 32x32).
#   pilot: 4 architectures per subspace x 2 seeds (the first ones of the full sample); the
#          first rule (below 0.6: 8 epochs instead of 4) is superseded by the settings below;
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
# every Fashion-MNIST training image but the held-out ones at 8 epochs; it gave 0.196 (seed
# noise 0.63 pp, spread 0.35 pp; mobilenet-pilot-58k.*, remade by
#   STEM=2 MAXF= PRECISE= GT=mobilenet-pilot-58k.json TRAIN=58000 EPOCHS=8 bash mobilenet_study.sh pilot).
# More data and epochs do not help, and the network's shape says why: with the ImageNet strides
# a 32 px image is down to 2x2 maps in stage 3 and 1x1 in stage 5, so in 13 of the 21 layers a
# 5x5 or 7x7 depthwise kernel sees nothing a 3x3 does not (its other taps read the padding):
# most of the space's choices there compute the same functions, and architectures differ less
# than seeds do. The setting used from here (decided after the 58k pilot, before any number
# of it): the stem at stride 1 (space.stem_stride=1: maps of 16 to 2 px in the six stages, 4x
# the area and the FLOPs), the search's FLOPs limit scaled by the same rule as the preset's
# (4.0 MFLOPs: 37.5% of uniform subnets exceed it; the largest uniform network under it, k3e6
# everywhere, has 3.94), the ground truth's architectures sampled under that limit (as the
# search sees them), and the preset's recipe otherwise (15,000 images, 4 epochs: about 150 s a
# training on one core). Rule: the truth is built at this setting whatever the pilot gives (it
# is the last one this machine can pay for: 240 trainings are about 5 hours on 2 cores), and if
# its seed-to-seed tau is below 0.5 the study reports every tau beside the noise ceiling.
# Its pilot (mobilenet-pilot-s1.*, mobilenet-pilot-s1.log; PRECISE= GT=mobilenet-pilot-s1.json
# ... pilot remakes it): seed-to-seed tau 0.116, one of the 48
# trainings collapsed (60.6% against 82.5% for its other seed); without that cell 0.146, seed
# noise 0.94 pp against a spread of the 2-seed means of 0.76 pp. The truth goes on as decided.
# The collapsed training's training loss was normal (0.50, the median 0.49) while its test loss
# was twice the others': its BatchNorm running statistics, not its weights, may be what failed.
# benchmarks/standalone_bn.py retrains it and tests it as trained and after precise BN. Decided
# before that ran: if precise BN brings its seed 0 within 2 pp of its seed 1 (82.46%), the
# stand-alone recipe gets precise BN (as the supernets' scorer already re-estimates BN), and the
# truth restarts with it after a pilot at this setting; otherwise the truth goes on as it is.
# It did: the collapsed network, retrained with the same seed, tests at 60.63% again as trained
# and at 81.23% after precise BN on 50 training batches (benchmarks/results/standalone_bn.json).
# So from here the recipe is pilot 4's plus retrain.precise_bn=50 (PRECISE=50). The truth
# stopped after 4 of its 192 new trainings (mobilenet-pilot-s1.runs.json keeps them). Pilot 5
# at this recipe, then the truth at it, whatever the pilot gives (the rule above). Pilot 5
# (mobilenet-pilot-pbn.*): seed-to-seed tau 0.200, noise ceiling 0.389, no collapse.
set -euo pipefail
cd "$(dirname "$0")"
# efsnas from the repository's .venv (scripts/setup.sh) when it is not on PATH
command -v efsnas >/dev/null || PATH="$(cd ../.. && pwd)/.venv/bin:$PATH"
export OMP_NUM_THREADS=1
GT=${GT:-mobilenet-groundtruth.json}
EPOCHS=${EPOCHS:-4}   # the preset's 4
TRAIN=${TRAIN:-15000}  # training images (the preset's 15,000; 58000: all but the held-out)
STEM=${STEM:-1}       # stride of the stem (2: the ImageNet network's)
MAXF=${MAXF-4.0}      # MFLOPs limit of the sample and the search (empty: no limit, as the pilots)
PRECISE=${PRECISE-50}  # precise-BN batches before testing (empty: as trained, as pilots 1-4)
SPACE=(--set space.stem_stride="$STEM")
LIMIT=()
if [ -n "$MAXF" ]; then LIMIT=(--max-flops "$MAXF"); SPACE+=(--set search.max_flops="$MAXF"); fi
# (the ground truth's trainings and the study's finalists alike)
if [ -n "$PRECISE" ]; then SPACE+=(--set retrain.precise_bn="$PRECISE"); fi
# the earlier pilots ran before stem_stride existed: leave it out at 2, so their files resume
if [ "$STEM" = 2 ]; then SPACE=("${SPACE[@]:2}"); fi
HELDOUT=()  # the half split leaves 30,000 training images; beyond, hold out 200 per class
if [ "$TRAIN" -gt 30000 ]; then HELDOUT=(--set data.heldout_per_class=200); fi
stage=${1:-all}
build() {  # per-subspace
  efsnas groundtruth build "$GT" --preset mobilenet-cpu --per-subspace "$1" --seeds 2 \
    --set retrain.epochs="$EPOCHS" --set data.max_train="$TRAIN" "${HELDOUT[@]}" "${SPACE[@]}" \
    "${LIMIT[@]}" --workers 2
}
case $stage in pilot) build 4 ;; truth) build 20 ;; study) ;; all) build 4; build 20 ;; esac
if [ "$stage" = study ] || [ "$stage" = all ]; then
  mkdir -p mobilenet-study
  study() {  # criteria budgets
    efsnas compare --cells "${GT%.json}.cells.json" --ground-truth "$GT" --preset mobilenet-cpu \
      --seeds 3 --criteria "$1" --budget "$2" \
      --set split.fsnas_transfer=true --set split.fsnas_warmup_epochs=1 \
      --set "split.gm_warmup_epochs=[1,2]" --set split.gm_samples=2 "${SPACE[@]}" \
      --workers 2 --out mobilenet-study
  }
  # The two rows the comparison needs first (a rerun keeps every finished run), then all five.
  # The order of the runs only (the settings above are unchanged): the equal budget's six runs
  # before the passes budget's one-shot runs (each trains K=6 times as long), so the runs that
  # fit in one sitting come first (a run cut off mid-training restarts in a fresh checkout:
  # checkpoints are not kept in git). mobilenet-study/equal/ exists before the equal-only
  # call, so that call's runs land where the later calls with both budgets look for them.
  mkdir -p mobilenet-study/equal
  # The three other rows at the equal budget come before their passes runs for the same reason.
  study oneshot,nonlinearity equal
  study oneshot,nonlinearity equal,passes
  study oneshot,fsnas,gmnas,nonlinearity,nonlinearity-nosbs equal
  study oneshot,fsnas,gmnas,nonlinearity,nonlinearity-nosbs equal,passes
fi
