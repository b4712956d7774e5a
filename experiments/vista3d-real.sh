#!/usr/bin/env bash
# VISTA3D on real CT, one command (issue 13's proof):
#
#   bash experiments/vista3d-real.sh            # OUT=runs/vista3d-real, SHARED=../shared/data
#
# 1. The labelled abdomen CT 01 (TotalSegmentator labels, mapped onto VISTA3D's class table by
#    name) is prepared at SPACING mm in RAS (what `misfm segment` feeds the network).
# 2. The small VISTA3D of spec section 12 (--preset vista3d-small: F 8, E 16, 4 levels, 64^3
#    patches) trains the four stages of the recipe, each from the previous stage's checkpoint:
#    1 interactive branch (point prompts, 5 click rounds per patch), 2 its fine-tuning with
#    class-balanced crops, 3 automatic branch (class prompts; encoder and point branch frozen),
#    4 its fine-tuning with class-balanced crops. HELD_OUT is removed from training entirely
#    (its voxels are unlabelled in every stage).
# 3. On the held-out DICOM series 02 (another patient and scanner), per class: (a) automatic,
#    (b) one click per window at the centre of the target (point only), (c) automatic + one
#    corrective click per window merged by Algorithm 1 (the click from the larger of the false
#    positive / false negative regions); and HELD_OUT segmented by clicks alone after 1..CLICKS
#    clicks (zero-shot), with a plot. Tables as Markdown and JSON in $OUT/eval.
# Evaluation is on the working grid (02 resampled to SPACING mm, labels by nearest neighbour).
# Stages whose `done` marker exists are skipped and an interrupted stage resumes exactly, so
# re-running the command continues where it stopped.
#
# Knobs (environment): OUT, SHARED, STAGE_ITERATIONS ("1500 500 1000 500": iterations of stages
# 1-4; one iteration = one click round = one optimizer step), SPACING (3: mm, isotropic),
# HELD_OUT (spleen), CLICKS (5), THREADS (2), SEED (0), VALID_EVERY (500), LR (1e-3), VALIDATE (1;
# 0 skips the whole-volume validation of each stage, for smoke runs), TRAIN_CLASSES (empty: every
# class of CT 01 that maps onto the table; else class-table indices, e.g. "1,5,14,12,6,7,4,10" for
# eight large abdominal organs, trained in every stage and evaluated in (a)-(c)), AUGMENT (1:
# the fine-tuning texture augmentation of volf-vs-scratch.sh (noise, blur, brightness, contrast,
# low resolution) in every stage; 0: crops and flips only), FIT_WINDOW (1: the evaluation's
# window is shrunk to 02's thin axis, --fit-window: series 02 is 20 slices, 14 voxels at 3 mm,
# and in a 64-voxel window padded as MONAI pads it every model found nothing, even on a 14-slice
# slab of its own training scan; 0: MONAI's padding), SUPERVOXELS (1: stage 1 draws supervoxel
# zero-shot prompts as the research recipe does; 0: stage 1 without them, only the labelled
# classes' clicks; session 8's four-class diagnostic left the loss plateau only without them).
# Time (rough; measured only on a loaded shared 2-core machine, see docs/results/vista3d-real.md):
# a stage-1 iteration (4 prompts, 64^3) costs about 4-5 s of one core once warm, stages 3-4 less,
# so the defaults should take about 3-3.5 hours on an idle 2-core machine (stages 1-2 ~2.2 h,
# 3-4 ~1 h), plus 10-20 minutes of evaluation at 3 mm. The labels are
# TotalSegmentator model outputs, and one training case and one test case make this a
# demonstration, not a benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=$(realpath -m "${OUT:-runs/vista3d-real}")
SHARED=$(realpath -m "${SHARED:-../shared/data}")
read -r -a IT <<< "${STAGE_ITERATIONS:-1500 500 1000 500}"
SPACING=${SPACING:-3}
HELD_OUT=${HELD_OUT:-spleen}
CLICKS=${CLICKS:-5}
THREADS=${THREADS:-2}
SEED=${SEED:-0}
VALID_EVERY=${VALID_EVERY:-500}
LR=${LR:-1e-3}
VALIDATE=${VALIDATE:-1}
TRAIN_CLASSES=${TRAIN_CLASSES:-}
AUGMENT=${AUGMENT:-1}
FIT_WINDOW=${FIT_WINDOW:-1}
SUPERVOXELS=${SUPERVOXELS:-1}
# shellcheck source=experiments/common.sh
source "$ROOT/experiments/common.sh"
[ "${#IT[@]}" -eq 4 ] || { echo "vista3d-real: STAGE_ITERATIONS must hold 4 numbers, got '${STAGE_ITERATIONS:-}'" >&2; exit 2; }

check_shared vista3d-real
bash scripts/setup.sh

echo "== staging the labelled CT 01 under $OUT/data and preparing it (RAS, $SPACING mm)"
stage_labelled
misfm prepare "$OUT/data/labelled/images" --labels "$OUT/data/labelled/labels" --out "$OUT/cache-ras" \
  --spacing "$SPACING,$SPACING,$SPACING" --orientation RAS --quiet
TABLE="$SHARED/totalseg_classmap.json#total"
HELD_INDEX=$(node -e "import('$ROOT/dist/src/infer/vista3d/classes.js').then((m) => console.log(m.classValue(process.argv[1])))" "$HELD_OUT")

prev=
for s in 1 2 3 4; do
  run="$OUT/stage$s"
  n=${IT[$((s - 1))]}
  echo "== stage $s ($n iterations)"
  if [ ! -f "$run/done" ]; then
    extra=()
    [ "$VALIDATE" = 1 ] || extra+=(--set vista3d.validate=false)
    [ -z "$TRAIN_CLASSES" ] || extra+=(--train-classes "$TRAIN_CLASSES")
    [ "$SUPERVOXELS" = 1 ] || extra+=(--set 'vista3d.stages=[{"supervoxels":null},{},{},{}]')
    if [ -f "$run/checkpoints/latest.pt" ]; then extra+=(--resume)
    elif [ -n "$prev" ]; then extra+=(--init "$prev"); fi
    misfm train --preset vista3d-small --data "$OUT/cache-ras" --out "$run" --stage "$s" --label-table "$TABLE" \
      --hold-out "$HELD_OUT" --iterations "$n" --threads "$THREADS" --set training.seed="$SEED" --set training.lr="$LR" \
      --set training.validEvery="$VALID_EVERY" --set training.saveEvery=50 "${aug[@]}" "${extra[@]}"
    misfm plot "$run"
    touch "$run/done"
  fi
  prev="$run/checkpoints/latest.pt"
done

echo "== evaluate on the held-out DICOM series 02"
fit=(); [ "$FIT_WINDOW" = 1 ] && fit=(--fit-window)
mkdir -p "$OUT/eval"
node "$ROOT/experiments/vista3d-eval.mjs" --model "$OUT/stage4/checkpoints/latest.pt" \
  --image "$SHARED/02_totalseg_ct_dicom/uncompressed" --labels "$SHARED/02_totalseg_ct_dicom/labels_total.nii.gz" \
  --label-table "$TABLE" --classes "${TRAIN_CLASSES:-all}" --held-out "$HELD_INDEX" --spacing "$SPACING,$SPACING,$SPACING" --roi 64,64,64 \
  --clicks "$CLICKS" --threads "$THREADS" "${fit[@]}" --out "$OUT/eval" | tee "$OUT/eval/table.txt"
echo "== done: $OUT/eval/vista3d-eval.{md,json}, $OUT/eval/zero-shot.png; curves in $OUT/stage*/curves.png"
