#!/bin/bash
# GPU-machine side of the CUDA verification (kit made here by scripts/dev/gpu-kit.sh into .gpu/):
# builds the addon against that machine's pip LibTorch (CUDA) with g++ directly (no node-gyp, no
# network), then runs bench/cuda-check and bench/vista3d-monai (official VISTA3D, 128^3) on the GPU.
# There, from the repository root: bash scripts/dev/gpu-verify.sh   (OUT=folder for the results)
# Not yet run on a GPU (no machine was lent when it was written): expect to fix compile errors first.
set -u
K=$PWD/.gpu
O=${OUT:-/tmp/out}
mkdir -p "$O"
exec > >(tee "$O/log.txt") 2>&1
date; nvidia-smi -L; nproc
mkdir -p /tmp/bin && xz -dc "$K/node.xz" > /tmp/bin/node && chmod +x /tmp/bin/node
export PATH=/tmp/bin:$PATH
node -v
tar -xJf "$K/dist.tar.xz"
PY=python3
$PY -c 'import torch;print("torch", torch.__version__, torch.version.cuda, torch.cuda.is_available(), "abi", torch._C._GLIBCXX_USE_CXX11_ABI)'
T=$($PY -c 'import torch,os;print(os.path.dirname(torch.__file__))')
SITE=$(dirname "$T")
ABI=$($PY -c 'import torch;print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
INC="-I$K/napi -I$K/node-addon-api -I$T/include -I$T/include/torch/csrc/api/include"
for d in /usr/local/cuda/include $(ls -d "$SITE"/nvidia/*/include "$SITE"/nvidia/*/*/include 2>/dev/null); do INC="$INC -I$d"; done
echo "gloo headers: $(ls "$T/include/gloo/algorithm.h" 2>&1)"; echo "nccl.h: $(find "$SITE/nvidia" -name nccl.h 2>/dev/null | head -1)"
STD=${STD:-c++17}
FL="-std=$STD -fPIC -O2 -fexceptions -frtti -DNAPI_VERSION=8 -DNODE_ADDON_API_DISABLE_DEPRECATED -DMISFM_WITH_CUDA=1 -D_GLIBCXX_USE_CXX11_ABI=$ABI -Wno-unused-parameter -Wno-deprecated-declarations"
mkdir -p /tmp/obj
t0=$(date +%s)
for f in addon ops checkpoint dist; do
  ( g++ $FL $INC -c "native/src/$f.cc" -o "/tmp/obj/$f.o" 2> "/tmp/obj/$f.err" || { echo "== compile $f FAILED"; grep -m 12 -A3 "error" "/tmp/obj/$f.err"; } ) &
done
wait
echo "compile: $(( $(date +%s) - t0 )) s"
cp /tmp/obj/*.err "$O/" 2>/dev/null
g++ -shared -o /tmp/obj/misfm_native.node /tmp/obj/*.o -L"$T/lib" -Wl,-rpath,"$T/lib" -Wl,--no-as-needed -ltorch -ltorch_cpu -ltorch_cuda -lc10 -lc10_cuda -Wl,--as-needed || { echo "link FAILED"; exit 1; }
export MISFM_NATIVE_ADDON=/tmp/obj/misfm_native.node
node -e "import('./dist/src/engine/native.js').then(m=>{const i=m.native().info();console.log(JSON.stringify({v:i.torchVersion,cuda:i.cudaAvailable,n:i.cudaDeviceCount,b:m.native().distBackends()}))})"
mkdir -p /tmp/shared && tar -xf "$K/fixtures.tar" -C /tmp/shared && tar -xJf "$K/monai.tar.xz" -C /tmp/shared
timeout 200 node dist/bench/cuda-check.js --fixtures /tmp/shared/fixtures --python $PY --reps 5 > "$O/cuda-check.json"; echo "cuda-check rc $?"
cat "$O/cuda-check.json"
for roi in 128; do
  timeout 150 node dist/bench/vista3d-monai.js --preset vista3d-official --roi $roi --classes 3 --reps 5 --threads 16 --device cuda --monai /tmp/shared --python $PY > "$O/vista3d-monai-cuda-$roi.json"; echo "vista3d-monai $roi rc $?"
  cat "$O/vista3d-monai-cuda-$roi.json"
done
date
