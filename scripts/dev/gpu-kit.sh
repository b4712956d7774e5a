#!/usr/bin/env bash
# Makes .gpu/ (git-ignored through .git/info/exclude): what scripts/dev/gpu-verify.sh needs on a bare GPU
# machine that has python3 + CUDA PyTorch and a C++ compiler but no Node, npm packages or network:
# this machine's node binary (xz), the Node-API headers, the compiled dist/ (src and bench), the
# vista3d_small fixture subset and MONAI's source (for bench/vista3d-monai). About 31 MB.
#   bash scripts/dev/gpu-kit.sh [MONAI_SRC]   (MONAI_SRC: a folder holding the monai package;
#                                             default /tmp/monai-src, e.g. from `git archive HEAD monai`)
set -euo pipefail
cd "$(dirname "$0")/../.."
MONAI=${1:-/tmp/monai-src}
[ -d "$MONAI/monai" ] || { echo "gpu-kit: no monai package under $MONAI" >&2; exit 2; }
[ -d dist/bench ] || { echo "gpu-kit: build first (npx tsc -p tsconfig.json)" >&2; exit 2; }
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/napi .gpu/node-addon-api
xz -T0 -6 -c "$(readlink -f "$(command -v node)")" > .gpu/node.xz
inc=$(dirname "$(readlink -f "$(command -v node)")")/../include/node
[ -f "$inc/node_api.h" ] || inc=/usr/include/node
cp "$inc"/node_api.h "$inc"/node_api_types.h "$inc"/js_native_api.h "$inc"/js_native_api_types.h .gpu/napi/
cp node_modules/node-addon-api/*.h .gpu/node-addon-api/
tar -cJf .gpu/dist.tar.xz --exclude='*.map' --exclude='*.d.ts' dist/src dist/bench
(cd ../shared && tar -cf "$OLDPWD/.gpu/fixtures.tar" fixtures/vista3d_small/weights.safetensors fixtures/vista3d_small/tensors.json \
  fixtures/vista3d_small/input.bin fixtures/vista3d_small/auto fixtures/vista3d_small/point)
(cd "$MONAI" && tar -cJf "$OLDPWD/.gpu/monai.tar.xz" monai)
du -sh .gpu
