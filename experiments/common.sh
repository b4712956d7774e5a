# Shared by the experiments (sourced, not run): the real-data staging and 2 mm caches, the eight
# abdomen classes, the fine-tuning augmentation and the misfm wrapper. Needs ROOT, OUT, SHARED, AUGMENT.

CLASSES=1,5,6,52,63,79,86,87
NAMES=spleen,liver,stomach,aorta,inferior_vena_cava,spinal_cord,autochthon_left,autochthon_right
# One training scan at 3 mm is smooth once resampled to 2 mm; the test series (0.98 mm) is not.
# Without texture augmentation the fine-tuned models found almost nothing on it (see the README).
aug=()
if [ "$AUGMENT" = 1 ]; then
  aug=(--set 'data.augment.noise={"p":0.3,"range":[0,0.05]}' --set 'data.augment.blur={"p":0.3,"range":[0.5,1.5]}'
       --set 'data.augment.brightness={"p":0.15,"range":[0.75,1.25]}' --set 'data.augment.contrast={"p":0.15,"range":[0.75,1.25]}'
       --set 'data.augment.lowResolution={"p":0.25,"range":[0.5,1]}')
fi
misfm() { node "$ROOT/bin/misfm.js" "$@"; }

# check_shared NAME: every real scan the experiments use is there, or exit 2 naming the missing one.
check_shared() {
  for f in 01_totalseg_abdomen_ct/ct.nii.gz 01_totalseg_abdomen_ct/labels_total_fast.nii.gz 03_totalseg_chest_cta/ct.nii.gz \
           04_invesalius_head_ct/ct.nii.gz 02_totalseg_ct_dicom/labels_total.nii.gz 02_totalseg_ct_dicom/uncompressed; do
    [ -e "$SHARED/$f" ] || { echo "$1: missing $SHARED/$f (set SHARED to the shared data folder)" >&2; exit 2; }
  done
}

# stage_labelled: links the labelled abdomen CT 01 (image and TotalSegmentator labels) under
# $OUT/data/labelled/{images,labels}.
stage_labelled() {
  mkdir -p "$OUT/data/labelled/images" "$OUT/data/labelled/labels"
  ln -sfn "$SHARED/01_totalseg_abdomen_ct/ct.nii.gz" "$OUT/data/labelled/images/abdomen01.nii.gz"
  ln -sfn "$SHARED/01_totalseg_abdomen_ct/labels_total_fast.nii.gz" "$OUT/data/labelled/labels/abdomen01.nii.gz"
}

# stage_and_prepare: links the unlabelled CTs (01, 03, 04) and the labelled abdomen CT 01 under
# $OUT/data, and prepares both at 2 mm into $OUT/cache-unlabelled and $OUT/cache-labelled.
stage_and_prepare() {
  echo "== staging data under $OUT/data"
  mkdir -p "$OUT/data/unlabelled" "$OUT/data/labelled/images" "$OUT/data/labelled/labels"
  ln -sfn "$SHARED/01_totalseg_abdomen_ct/ct.nii.gz" "$OUT/data/unlabelled/abdomen01.nii.gz"
  ln -sfn "$SHARED/03_totalseg_chest_cta/ct.nii.gz" "$OUT/data/unlabelled/cta03.nii.gz"
  ln -sfn "$SHARED/04_invesalius_head_ct/ct.nii.gz" "$OUT/data/unlabelled/head04.nii.gz"
  stage_labelled
  echo "== prepare (2 mm isotropic, LPS)"
  misfm prepare "$OUT/data/unlabelled" --out "$OUT/cache-unlabelled" --spacing 2,2,2 --quiet
  misfm prepare "$OUT/data/labelled/images" --labels "$OUT/data/labelled/labels" --out "$OUT/cache-labelled" --spacing 2,2,2 --quiet
}
