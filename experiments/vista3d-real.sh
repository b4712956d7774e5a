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
#    clicks (zero-shot), with a plot. Tables as Markdown and JSON in $OUT/eval. The same on the
#    training scan CT 01 in $OUT/eval-train (whether each branch learnt, not a held-out figure).
# With CTA=1 the contrast chest CTA 03 (another patient, arterial phase; aorta, five arteries and
# T12 labelled) trains beside CT 01 as a second dataset with its own label table: its crops prompt
# only the classes 03 annotates, so 03's unlabelled liver is never taught as absent. With CTA=0 it
# is a second held-out scan instead: the trained classes it has (the aorta) are evaluated in $OUT/eval-cta03.
# Evaluation is on the working grid (02 resampled to SPACING mm, labels by nearest neighbour).
# Stages whose `done` marker exists are skipped and an interrupted stage resumes exactly, so
# re-running the command continues where it stopped.
#
# Knobs (environment): OUT, SHARED, STAGE_ITERATIONS ("1200 300 300 150": iterations of stages
# 1-4; one iteration = one click round = one optimizer step), SPACING (3: mm, isotropic),
# HELD_OUT (spleen), CLICKS (5), THREADS (2), SEED (0), VALID_EVERY (500), LR (3e-4; at 1e-3 the
# interactive branch stayed on its loss plateau in every run of sessions 8-12), VALIDATE (0: every
# case trains and $OUT/eval-train measures the training scan instead; 1: each stage also validates
# on whole volumes, on a case held out of training by the seed when there are two), CTA (1, see above;
# 0: CT 01 alone, as in session 12), TRAIN_CLASSES ("1,12,6,7": liver,
# stomach, aorta, inferior vena cava, trained in every stage and evaluated in (a)-(c); empty: every
# class of CT 01 that maps onto the table; eight organs "1,5,14,12,6,7,4,10" did not leave the
# stage-1 plateau within 500 iterations), AUGMENT (0: crops only; 1: the fine-tuning texture
# augmentation of volf-vs-scratch.sh (noise, blur, brightness, contrast, low resolution) in every
# stage, which helped the automatic branch on 02 in session 10; at lr 3e-4 stage 1 follows the same
# curve with it),
# FIT_WINDOW (1: the evaluation's window is shrunk to 02's thin axis, --fit-window: series 02 is
# 20 slices, 14 voxels at 3 mm, and in a 64-voxel window padded as MONAI pads it every model found
# nothing, even on a 14-slice slab of its own training scan; 0: MONAI's padding), SUPERVOXELS (0:
# stage 1 trains on the labelled classes' clicks only; 1: it also draws supervoxel zero-shot prompts
# as the research recipe does; in session 14 that raised zero-shot spleen on 02 from 0.020 to 0.052
# after 5 clicks and lowered the automatic mean from 0.113 to 0.071). The defaults are the run of docs/results/vista3d-real.md, session 13.
# Time (idle 2-core machine, THREADS=2): stage 1 ~2.3 s/it, stage 2 ~2.6, stages 3-4 ~1 s/it, so the
# defaults take about 1 h 10 min, plus a minute or two of evaluation. The labels are
# TotalSegmentator model outputs, and two training CTs and one test series make this a
# demonstration, not a benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=$(realpath -m "${OUT:-runs/vista3d-real}")
SHARED=$(realpath -m "${SHARED:-../shared/data}")
read -r -a IT <<< "${STAGE_ITERATIONS:-1200 300 300 150}"
SPACING=${SPACING:-3}
HELD_OUT=${HELD_OUT:-spleen}
CLICKS=${CLICKS:-5}
THREADS=${THREADS:-2}
SEED=${SEED:-0}
VALID_EVERY=${VALID_EVERY:-500}
LR=${LR:-3e-4}
VALIDATE=${VALIDATE:-0}
CTA=${CTA:-1}
TRAIN_CLASSES=${TRAIN_CLASSES-1,12,6,7}
AUGMENT=${AUGMENT:-0}
FIT_WINDOW=${FIT_WINDOW:-1}
SUPERVOXELS=${SUPERVOXELS:-0}
# shellcheck source=experiments/common.sh
source "$ROOT/experiments/common.sh"
[ "${#IT[@]}" -eq 4 ] || { echo "vista3d-real: STAGE_ITERATIONS must hold 4 numbers, got '${STAGE_ITERATIONS:-}'" >&2; exit 2; }

check_shared vista3d-real
bash scripts/setup.sh

echo "== staging the labelled CT 01 under $OUT/data and preparing it (RAS, $SPACING mm)"
stage_labelled
CTA_TABLE="$SHARED/03_totalseg_chest_cta/labels_vessels.json"
if [ "$CTA" = 1 ]; then
  ln -sfn "$SHARED/03_totalseg_chest_cta/ct.nii.gz" "$OUT/data/labelled/images/cta03.nii.gz"
  ln -sfn "$SHARED/03_totalseg_chest_cta/labels_vessels.nii.gz" "$OUT/data/labelled/labels/cta03.nii.gz"
fi
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
    [ "$CTA" = 1 ] && extra+=(--set "vista3d.datasets=[{\"cases\":[\"cta03\"],\"labelTable\":\"$CTA_TABLE\"}]")
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

# evaluate NAME IMAGE LABELS LABEL_TABLE [extra eval options]: protocols (a)-(c) and the held-out clicks into $OUT/NAME.
evaluate() {
  local name=$1 image=$2 labels=$3 table=$4; shift 4
  mkdir -p "$OUT/$name"
  node "$ROOT/experiments/vista3d-eval.mjs" --model "$OUT/stage4/checkpoints/latest.pt" --image "$image" --labels "$labels" \
    --label-table "$table" --classes "${TRAIN_CLASSES:-all}" --held-out "$HELD_INDEX" --spacing "$SPACING,$SPACING,$SPACING" --roi 64,64,64 \
    --clicks "$CLICKS" --threads "$THREADS" "$@" --out "$OUT/$name" | tee "$OUT/$name/table.txt"
}
echo "== evaluate on the held-out DICOM series 02"
fit=(); [ "$FIT_WINDOW" = 1 ] && fit=(--fit-window)
evaluate eval "$SHARED/02_totalseg_ct_dicom/uncompressed" "$SHARED/02_totalseg_ct_dicom/labels_total.nii.gz" "$TABLE" "${fit[@]}"
echo "== evaluate on the training scan CT 01 (did each branch learn at all; not a held-out figure)"
evaluate eval-train "$SHARED/01_totalseg_abdomen_ct/ct.nii.gz" "$SHARED/01_totalseg_abdomen_ct/labels_total_fast.nii.gz" "$TABLE"
if [ "$CTA" = 0 ]; then
  echo "== evaluate on the contrast CTA 03 (another patient, arterial phase; its trained classes only)"
  cta_classes=$(node -e "import('$ROOT/dist/src/train/vista3d/labelmap.js').then((m) => { const want = process.argv[1] ? process.argv[1].split(',').map(Number) : null; console.log([...m.mapLabelNames(m.readLabelTable(process.argv[2])).map.values()].filter((k) => want === null || want.includes(k)).join(',')); })" "$TRAIN_CLASSES" "$CTA_TABLE")
  if [ -n "$cta_classes" ]; then
    TRAIN_CLASSES=$cta_classes evaluate eval-cta03 "$SHARED/03_totalseg_chest_cta/ct.nii.gz" "$SHARED/03_totalseg_chest_cta/labels_vessels.nii.gz" "$CTA_TABLE"
  fi
fi
echo "== done: $OUT/eval{,-train}/vista3d-eval.{md,json}, $OUT/eval{,-train}/zero-shot.png; curves in $OUT/stage*/curves.png"
