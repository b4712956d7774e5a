#!/usr/bin/env bash
# Does Volume Fusion pretraining help fine-tuning? One command, on the real CTs of ../shared/data:
#
#   bash experiments/volf-vs-scratch.sh            # OUT=runs/volf-vs-scratch, SHARED=../shared/data
#
# 1. Volume Fusion pretraining (--preset small) on the unlabelled use of three real CTs: the
#    abdomen CT 01 and the chest CTA 03 for training, the head CT 04 held out for the
#    pseudo-segmentation Dice. The test scan 02 is never seen before the evaluation.
# 2. Fine-tuning on the labelled abdomen CT 01 (8 organs shared with scan 02), twice with the same
#    seed, data order and budget: from the pretrained weights and from scratch.
# 3. Prediction on the held-out DICOM series 02 (a different patient, scanner and resolution; its
#    label map is stored in another voxel order) and Dice/ASSD/HD95 per organ for both models.
# Everything is resampled to 2 mm isotropic at prepare time (01 is 3 mm, 02 is 0.98x0.98x2 mm);
# predictions are written back on 02's native grid. The spacing is given by hand on purpose: the
# dataset plan (misfm prepare's default) would pick 1.5 mm for the unlabelled cache (median of 01 at
# 3 mm, 03 at 1.5 mm, 04 at 0.96x0.96x1.5 mm) but 3 mm for the labelled one (01 alone), so the
# pretrained filters would be fine-tuned at twice the voxel size they learnt: the comparison needs
# one spacing for every stage (docs/results/volf-vs-scratch.md, "Spacing"). Stages whose outputs exist are skipped, and an
# interrupted pretraining resumes exactly, so re-running the command continues where it stopped.
#
# Knobs (environment): OUT, SHARED, PRETRAIN_ITERATIONS (400), FINETUNE_ITERATIONS (300), SEED (1),
# THREADS (2), VALID_SAMPLES (16: fused held-out crops scored every 50 pretraining iterations),
# AUGMENT (1: fine-tune with noise/blur/brightness/contrast/low-resolution augmentation, run folders
# finetune-<init>-aug and eval-<init>-aug; 0: crops and flips only, as the reference).
# The labels are TotalSegmentator model outputs, not expert annotations, and one training case and
# one test case make this a demonstration, not a benchmark.
# INITS ("volf scratch"): which fine-tuning arms to run; models/pctnet-small-abdomen8 is the volf arm
# alone (INITS=volf), see models/pctnet-small-abdomen8/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=$(realpath -m "${OUT:-runs/volf-vs-scratch}")
SHARED=$(realpath -m "${SHARED:-../shared/data}")
PRE_IT=${PRETRAIN_ITERATIONS:-400}
FT_IT=${FINETUNE_ITERATIONS:-300}
SEED=${SEED:-1}
THREADS=${THREADS:-2}
VALID_SAMPLES=${VALID_SAMPLES:-16}
AUGMENT=${AUGMENT:-1}
INITS=${INITS:-volf scratch}
suffix=
if [ "$AUGMENT" = 1 ]; then suffix=-aug; fi
# shellcheck source=experiments/common.sh
source "$ROOT/experiments/common.sh"

check_shared volf-vs-scratch
bash scripts/setup.sh

stage_and_prepare

echo "== Volume Fusion pretraining ($PRE_IT iterations)"
if [ ! -f "$OUT/pretrain/done" ]; then
  resume=(); [ -f "$OUT/pretrain/checkpoints/latest.pt" ] && resume=(--resume)
  misfm pretrain --data "$OUT/cache-unlabelled" --out "$OUT/pretrain" --preset small --valid head04 --valid-samples "$VALID_SAMPLES" \
    --iterations "$PRE_IT" --threads "$THREADS" --set training.seed="$SEED" --set training.validEvery=50 \
    --set training.saveEvery=50 "${resume[@]}"
  misfm plot "$OUT/pretrain"
  touch "$OUT/pretrain/done"
fi

for init in $INITS; do
  run="$OUT/finetune-$init$suffix"
  ev="$OUT/eval-$init$suffix"
  echo "== fine-tuning from $init ($FT_IT iterations)"
  if [ ! -f "$run/done" ]; then
    extra=(); [ "$init" = volf ] && extra=(--init "$OUT/pretrain/checkpoints/best.pt")
    [ -f "$run/checkpoints/latest.pt" ] && extra+=(--resume)
    misfm train --data "$OUT/cache-labelled" --out "$run" --preset small-finetune --classes "$CLASSES" --names "$NAMES" \
      --iterations "$FT_IT" --threads "$THREADS" --set training.seed="$SEED" --set training.validEvery=150 \
      --set training.saveEvery=50 --set 'data.intensity={"kind":"ct-window","window":[-1000,1000]}' \
      --set data.foregroundOversample=0.66 --set training.earlyStopPatience=null "${aug[@]}" "${extra[@]}"
    misfm plot "$run"
    touch "$run/done"
  fi
  echo "== predict the held-out DICOM series 02 and evaluate ($init)"
  mkdir -p "$ev"
  # The last checkpoint: validation ran on the training scan, so "best" would not be a held-out choice.
  misfm predict --model "$run/checkpoints/latest.pt" --input "$SHARED/02_totalseg_ct_dicom/uncompressed" \
    --output "$ev/ct02.nii.gz" --threads "$THREADS"
  misfm evaluate --pred "$ev/ct02.nii.gz" --gt "$SHARED/02_totalseg_ct_dicom/labels_total.nii.gz" \
    --labels "$CLASSES" --names "$NAMES" --metrics dice,assd,hd95 \
    --json "$ev/metrics.json" --csv "$ev/metrics.csv" | tee "$ev/table.txt"
done
echo "== done: tables in $OUT/eval-volf$suffix/table.txt and $OUT/eval-scratch$suffix/table.txt; curves in $OUT/*/curves.png"
