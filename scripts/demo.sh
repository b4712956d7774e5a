#!/usr/bin/env bash
# The main job: set-up (idempotent), then `misfm demo` on the bundled real CT sample.
# Extra arguments go to `misfm demo` (e.g. --out DIR --pretrain-iterations 40).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node bin/misfm.js doctor
exec node bin/misfm.js demo "$@"
