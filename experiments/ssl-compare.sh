#!/usr/bin/env bash
# The MIS-FM paper's Table 2 protocol at this machine's scale: which self-supervised pretraining
# helps a segmentation network most? One command, on the real CTs of ../shared/data:
#
#   bash experiments/ssl-compare.sh            # OUT=runs/ssl-compare, SHARED=../shared/data
#
# 1. Pretraining, once per method (volf, voco, patch-swap, genesis, mim): the same backbone, crop,
#    seed and iteration budget, on the unlabelled use of three real CTs: the abdomen CT 01 and the
#    chest CTA 03 for training, the head CT 04 held out for each method's validation
#    (pseudo-segmentation Dice for volf, VoCo's loss for voco, L1 of the restored crop for the
#    others). The test scan 02 is never seen before the evaluation. Each method keeps its own
#    optimiser recipe where its reference has one (VoCo: AdamW, warmup-cosine); the others use the
#    small preset's Adam 1e-3.
# 2. Fine-tuning on the labelled abdomen CT 01 (8 organs shared with scan 02): from each
#    pretrained checkpoint (best validation) and from scratch, with the same seed, data order,
#    augmentation and budget. Pretext heads that do not fit the 9-class head are re-initialised
#    (VoCo hands over its backbone, the encoder).
# 3. Prediction on the held-out DICOM series 02 (another patient, scanner and resolution) and
#    Dice/ASSD/HD95 per organ and mean, one table for all (OUT/table.md), plus curves
#    (OUT/*/curves.png via misfm plot).
# Everything is resampled to 2 mm isotropic at prepare time; predictions are written back on 02's
# native grid. Arms whose outputs exist are skipped and interrupted trainings resume exactly, so
# re-running the command continues where it stopped. A failing arm is reported and the others go on
# (its log is OUT/logs/ARM.log); the command then exits 1.
#
# Backbone (BACKBONE): pctnet-small (default; the bundled model's network, 3.0 M parameters, deep
# supervision) or unet3d (Table 2's PyMIC UNet3D with channels [8,16,32,64,128], dropout
# [0,0,0.2,0.2,0.2], trilinear up-sampling, no multi-scale outputs; VoCo has no UNet3D backbone, so
# it is left out). Session 9 found that this UNet3D collapses to all-background on the crop stream
# for its first ~1000 fine-tuning iterations, so at a 90-minute budget every UNet3D arm was empty
# (docs/results/ssl-compare.md); the small PCT-Net finds organs within the budget. Crop 32x64x64,
# batch 2, CT window [-1000, 1000]. Method parameters: the small preset's (PyMIC's demo values with
# blocks halved with the crop; see src/config/defaults.ts).
#
# Budgets (defaults, pctnet-small): PRETRAIN_ITERATIONS=250 per method, FINETUNE_ITERATIONS=500 per
# initialisation, PRECISION=auto (bf16 on CPUs with native bf16, see docs/results/bf16-accuracy.md),
# JOBS=2 arms at a time with THREADS=1 each: two 1-thread jobs give ~1.6x the throughput of one
# 2-thread job on this 2-core machine. Measured per iteration in that setting: ~1.9 s for volf,
# patch-swap, genesis and mim pretraining, ~8.2 s for VoCo (22 crops per step: 9 base + 2 random
# per volume, 2 volumes), ~2.1 s for fine-tuning; about 90 minutes in all on an idle machine (the
# first run took 134 minutes sharing the cores with CI and other jobs; docs/results/ssl-compare.md).
# Knobs (environment): OUT, SHARED, BACKBONE, PRETRAIN_ITERATIONS, FINETUNE_ITERATIONS, SEED (1),
# THREADS, JOBS, PRECISION, VALID_SAMPLES (8), METHODS ("volf voco patch-swap genesis mim"; without
# voco for unet3d), AUGMENT (1: fine-tuning texture augmentation as in volf-vs-scratch.sh; 0: crops
# and flips only).
# The labels are TotalSegmentator model outputs, not expert annotations, and one training case and
# one test case make this a demonstration, not a benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=$(realpath -m "${OUT:-runs/ssl-compare}")
SHARED=$(realpath -m "${SHARED:-../shared/data}")
BACKBONE=${BACKBONE:-pctnet-small}
PRE_IT=${PRETRAIN_ITERATIONS:-250}
FT_IT=${FINETUNE_ITERATIONS:-500}
SEED=${SEED:-1}
JOBS=${JOBS:-2}
THREADS=${THREADS:-$(( JOBS > 1 ? 1 : 2 ))}
PRECISION=${PRECISION:-auto}
VALID_SAMPLES=${VALID_SAMPLES:-8}
AUGMENT=${AUGMENT:-1}
# The same backbone for every method and for scratch.
COMMON=(--set 'data.intensity={"kind":"ct-window","window":[-1000,1000]}' --set training.seed="$SEED" --precision "$PRECISION")
case "$BACKBONE" in
  pctnet-small) NET=("${COMMON[@]}"); METHODS=${METHODS:-volf voco patch-swap genesis mim} ;;
  unet3d) NET=(--set model.name=unet3d --set 'model.featureChns=[8,16,32,64,128]' --set 'model.dropout=[0,0,0.2,0.2,0.2]'
               --set model.multiscalePred=false --set training.deepSupervision.enabled=false "${COMMON[@]}")
          METHODS=${METHODS:-volf patch-swap genesis mim} ;;
  *) echo "ssl-compare: BACKBONE must be pctnet-small or unet3d, got '$BACKBONE'" >&2; exit 2 ;;
esac
# Validation/checkpoint cadence scales with the budget (at least every iteration for tiny runs).
every() { local n=$(( $1 / $2 )); [ "$n" -ge 1 ] && echo "$n" || echo 1; }
# shellcheck source=experiments/common.sh
source "$ROOT/experiments/common.sh"

check_shared ssl-compare
bash scripts/setup.sh
start=$(date +%s)

stage_and_prepare
mkdir -p "$OUT/logs"
echo "backbone $BACKBONE, precision $PRECISION, $JOBS job(s) x $THREADS thread(s); pretraining $PRE_IT, fine-tuning $FT_IT iterations" | tee "$OUT/logs/settings.txt"

pretrain_arm() {
  local m=$1 run="$OUT/pretrain-$1"
  [ -f "$run/done" ] && return 0
  local extra=(); [ -f "$run/checkpoints/latest.pt" ] && extra=(--resume)
  # VoCo brings its own warmup-cosine schedule; the others decay once, at the end (step scheduler).
  [ "$m" != voco ] && extra+=(--set training.scheduler.stepSize="$PRE_IT")
  misfm pretrain --method "$m" --data "$OUT/cache-unlabelled" --out "$run" --preset small --valid head04 --valid-samples "$VALID_SAMPLES" \
    --iterations "$PRE_IT" --threads "$THREADS" "${NET[@]}" --set training.validEvery="$(every "$PRE_IT" 5)" \
    --set training.saveEvery="$(every "$PRE_IT" 10)" --quiet "${extra[@]}"
  misfm plot "$run" >/dev/null
  touch "$run/done"
}

finetune_arm() {
  local init=$1 run="$OUT/finetune-$1" ev="$OUT/eval-$1"
  if [ ! -f "$run/done" ]; then
    local extra=()
    if [ "$init" != scratch ]; then
      [ -f "$OUT/pretrain-$init/done" ] || { echo "pretraining $init did not finish" >&2; return 1; }
      extra=(--init "$OUT/pretrain-$init/checkpoints/best.pt")
    fi
    [ -f "$run/checkpoints/latest.pt" ] && extra+=(--resume)
    misfm train --data "$OUT/cache-labelled" --out "$run" --preset small-finetune --classes "$CLASSES" --names "$NAMES" \
      --iterations "$FT_IT" --threads "$THREADS" "${NET[@]}" --set training.validEvery="$FT_IT" \
      --set training.saveEvery="$(every "$FT_IT" 10)" --set data.foregroundOversample=0.66 --set training.earlyStopPatience=null \
      --quiet "${aug[@]}" "${extra[@]}"
    misfm plot "$run" >/dev/null
    touch "$run/done"
  fi
  if [ ! -f "$ev/metrics.json" ]; then
    mkdir -p "$ev"
    # The last checkpoint: validation ran on the training scan, so "best" would not be a held-out choice.
    misfm predict --model "$run/checkpoints/latest.pt" --input "$SHARED/02_totalseg_ct_dicom/uncompressed" \
      --output "$ev/ct02.nii.gz" --threads "$THREADS" --precision "$PRECISION"
    misfm evaluate --pred "$ev/ct02.nii.gz" --gt "$SHARED/02_totalseg_ct_dicom/labels_total.nii.gz" \
      --labels "$CLASSES" --names "$NAMES" --metrics dice,assd,hd95 \
      --json "$ev/metrics.json.tmp" --csv "$ev/metrics.csv" > "$ev/table.txt"
    mv "$ev/metrics.json.tmp" "$ev/metrics.json"
  fi
}

# run_arms KIND ARM...: runs "KIND_arm ARM" for each arm, JOBS at a time, each logging to
# OUT/logs/KIND-ARM.log; a failed arm is named and the others go on (listed in $failed).
failed=()
run_arms() {
  local kind=$1 a; shift
  local -A pid_arm=()
  for a in "$@"; do
    while [ "${#pid_arm[@]}" -ge "$JOBS" ]; do reap_one; done
    echo "== $kind $a: started $(date +%H:%M:%S) (log $OUT/logs/$kind-$a.log)"
    ( set -e; "${kind}_arm" "$a" ) > "$OUT/logs/$kind-$a.log" 2>&1 &
    pid_arm[$!]=$a
  done
  while [ "${#pid_arm[@]}" -gt 0 ]; do reap_one; done
}
# reap_one: waits for one arm of run_arms (its pid_arm, kind) to end and reports it.
reap_one() {
  local p rc=0
  wait -n -p p "${!pid_arm[@]}" || rc=$?
  local a=${pid_arm[$p]}
  unset "pid_arm[$p]"
  if [ "$rc" = 0 ]; then echo "== $kind $a: finished $(date +%H:%M:%S)"
  else echo "== $kind $a: FAILED, exit $rc (log $OUT/logs/$kind-$a.log):" >&2; tail -3 "$OUT/logs/$kind-$a.log" >&2; failed+=("$kind-$a"); fi
}

# The longest pretraining (VoCo) goes first so the two slots end together.
order=(); for m in $METHODS; do [ "$m" = voco ] && order=(voco "${order[@]}") || order+=("$m"); done
run_arms pretrain "${order[@]}"
run_arms finetune scratch $METHODS

done_arms=(); for i in scratch $METHODS; do [ -f "$OUT/eval-$i/metrics.json" ] && done_arms+=("$i"); done
node experiments/ssl-compare-table.mjs "$OUT" "${done_arms[@]}" > "$OUT/table.md.tmp"
mv "$OUT/table.md.tmp" "$OUT/table.md"
cat "$OUT/table.md"
echo "== done in $(( ($(date +%s) - start) / 60 )) min (this invocation): $OUT/table.md; curves in $OUT/*/curves.png"
if [ "${#failed[@]}" -gt 0 ]; then echo "ssl-compare: failed arms: ${failed[*]} (re-run to retry them)" >&2; exit 1; fi
