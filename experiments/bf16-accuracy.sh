#!/usr/bin/env bash
# Is bfloat16 compute safe for misfm's models? One command, on the real CTs of ../shared/data:
#
#   bash experiments/bf16-accuracy.sh          # OUT=runs/bf16-accuracy, SHARED=../shared/data
#
# 1. Inference: the bundled model (models/pctnet-small-abdomen8, the Volume Fusion arm of
#    experiments/volf-vs-scratch.sh) segments the held-out DICOM series 02 as `misfm predict` does,
#    in fp32 and in bf16, without post-processing: per-class Dice between the two label maps, each
#    map's Dice against the ground truth, and the largest logit difference over every window
#    (dist/bench/bf16-accuracy.js --model). The issue's bar: Dice between the maps >= 0.99 per class,
#    Dice against the ground truth within 0.005.
# 2. Training: Volume Fusion pretraining of the small PCT-Net (--preset small, the bundled model's
#    recipe) for PRETRAIN_ITERATIONS (300) in fp32 and in bf16 from the same seed and data order,
#    pseudo-segmentation Dice on fused crops of the held-out head CT 04 every 25 iterations; loss and
#    Dice curves side by side (docs/results/bf16-pretrain.png, experiments/bf16-curves.mjs).
# Results: OUT/trained/bf16-accuracy.json, OUT/summary.md; docs/results/bf16-accuracy.md is written
# by hand from them. Finished stages are skipped and interrupted pretraining resumes, so re-running
# the command continues where it stopped. Knobs: OUT, SHARED, PRETRAIN_ITERATIONS, SEED (1),
# THREADS (2), VALID_SAMPLES (16). The CPU decides what bf16 costs: see `misfm doctor`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=$(realpath -m "${OUT:-runs/bf16-accuracy}")
SHARED=$(realpath -m "${SHARED:-../shared/data}")
PRE_IT=${PRETRAIN_ITERATIONS:-300}
SEED=${SEED:-1}
THREADS=${THREADS:-2}
VALID_SAMPLES=${VALID_SAMPLES:-16}
AUGMENT=0
# shellcheck source=experiments/common.sh
source "$ROOT/experiments/common.sh"

check_shared bf16-accuracy
bash scripts/setup.sh
mkdir -p "$OUT/trained"

echo "== inference: bundled model on series 02, fp32 vs bf16"
if [ ! -f "$OUT/trained/bf16-accuracy.json" ]; then
  node dist/bench/bf16-accuracy.js --model models/pctnet-small-abdomen8/model.pt \
    --input "$SHARED/02_totalseg_ct_dicom/uncompressed" --labels "$SHARED/02_totalseg_ct_dicom/labels_total.nii.gz" \
    --out "$OUT/trained" --threads "$THREADS" | tee "$OUT/trained/table.md"
fi

stage_and_prepare
every=$(( PRE_IT / 12 )); [ "$every" -ge 1 ] || every=1
for p in fp32 bf16; do
  run="$OUT/pretrain-$p"
  echo "== Volume Fusion pretraining in $p ($PRE_IT iterations)"
  [ -f "$run/done" ] && continue
  resume=(); [ -f "$run/checkpoints/latest.pt" ] && resume=(--resume)
  misfm pretrain --data "$OUT/cache-unlabelled" --out "$run" --preset small --valid head04 --valid-samples "$VALID_SAMPLES" \
    --iterations "$PRE_IT" --threads "$THREADS" --precision "$p" --set training.seed="$SEED" \
    --set training.validEvery="$every" --set training.saveEvery="$every" --set training.scheduler.stepSize="$PRE_IT" --quiet "${resume[@]}"
  touch "$run/done"
done
node experiments/bf16-curves.mjs "$OUT" "$ROOT/docs/results/bf16-pretrain.png" | tee "$OUT/summary.md"
echo "== done: $OUT/trained/table.md, $OUT/summary.md, docs/results/bf16-pretrain.png"
