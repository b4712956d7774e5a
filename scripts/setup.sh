#!/usr/bin/env bash
# Idempotent set-up: libtorch (apt), npm packages, the native addon and the TypeScript build.
# Usage: bash scripts/setup.sh [--with-python-torch] [--with-browser]
#   --with-python-torch  also installs Debian's python3-torch (tests use it to check .pt interop) and
#                        dicom3tools (tests validate misfm's DICOM-SEG output with its dciodvfy).
#   --with-browser       also installs Debian's chromium (the `misfm serve` end-to-end browser test drives it).
# Set LIBTORCH=/path/to/libtorch to build against your own LibTorch (e.g. with CUDA) instead of apt's.
set -euo pipefail
cd "$(dirname "$0")/.."
want_py=0
want_browser=0
for arg in "$@"; do
  case "$arg" in
    --with-python-torch) want_py=1 ;;
    --with-browser) want_browser=1 ;;
    *) echo "setup: unknown option $arg" >&2; exit 2 ;;
  esac
done

need_apt=()
if [ -z "${LIBTORCH:-}" ] && ! dpkg -s libtorch-dev >/dev/null 2>&1; then need_apt+=(libtorch-dev); fi
# Gloo headers: the addon's c10d bindings (distributed training) include ProcessGroupGloo.hpp.
if [ -z "${LIBTORCH:-}" ] && ! dpkg -s libgloo-dev >/dev/null 2>&1; then need_apt+=(libgloo-dev); fi
# Debian's libtorch links the generic libblas.so.3; without OpenBLAS that is netlib's reference BLAS
# (1.6 GFLOP/s for a 2048^2 matmul here vs 52 with OpenBLAS; the pthread build, not the OpenMP one,
# which was 4x slower than reference BLAS on batched small matmuls). See ARCHITECTURE.md.
if [ -z "${LIBTORCH:-}" ] && ! dpkg -s libopenblas0-pthread >/dev/null 2>&1; then need_apt+=(libopenblas0-pthread); fi
# jemalloc: bin/misfm.js preloads it (flat memory over long runs; glibc's heap fragments, see there).
if ! dpkg -s libjemalloc2 >/dev/null 2>&1; then need_apt+=(libjemalloc2); fi
if [ "$want_py" = 1 ] && ! /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; then need_apt+=(python3-torch); fi
if [ "$want_py" = 1 ] && ! command -v dciodvfy >/dev/null 2>&1; then need_apt+=(dicom3tools); fi
if [ "$want_browser" = 1 ] && ! command -v chromium >/dev/null 2>&1; then need_apt+=(chromium); fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} (apt)" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Point libblas at OpenBLAS-pthread even if another BLAS (e.g. OpenBLAS-OpenMP) has a higher priority.
blas=/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3
if [ -z "${LIBTORCH:-}" ] && [ -f "$blas" ] && [ "$(readlink -f /etc/alternatives/libblas.so.3-x86_64-linux-gnu 2>/dev/null)" != "$blas" ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO update-alternatives --set libblas.so.3-x86_64-linux-gnu "$blas" >/dev/null
fi

# npm packages: reinstall when the lock file changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi

# Native addon: rebuild when missing or older than its sources.
addon=native/build/Release/misfm_native.node
if [ ! -f "$addon" ] || [ -n "$(find native/src native/binding.gyp native/config.cjs -newer "$addon" 2>/dev/null | head -1)" ]; then
  echo "setup: building the native addon (about a minute)" >&2
  (cd native && npx --no-install node-gyp rebuild --jobs max --loglevel=error >/dev/null)
fi

# TypeScript: rebuild when any source is newer than the last build.
stamp=dist/.build-stamp
if [ ! -f "$stamp" ] || [ -n "$(find src test bench tsconfig.json -newer "$stamp" -name '*.ts' -o -newer "$stamp" -name 'tsconfig.json' 2>/dev/null | head -1)" ]; then
  echo "setup: compiling TypeScript" >&2
  npx --no-install tsc -p tsconfig.json
  touch "$stamp"
fi

# The `misfm serve` page: NiiVue and the UI bundled by esbuild into dist/viewer (no CDN at run time);
# the script rebuilds only when viewer/ or the lock file is newer than the bundle.
node scripts/build-viewer.mjs
