#!/usr/bin/env bash
# The full test suite: set-up (idempotent, includes python3-torch for interop checks and chromium for
# the browser test of `misfm serve`), then every
# test file under test/ with node's test runner. Extra arguments are passed to `node --test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-python-torch --with-browser
mapfile -t files < <(find dist/test -name '*.test.js' | sort)
if [ "${#files[@]}" -eq 0 ]; then echo "no test files found" >&2; exit 1; fi
export MISFM_NUM_THREADS="${MISFM_NUM_THREADS:-2}"
# The allocator misfm runs under (bin/allocator.js, see bin/misfm.js): jemalloc when installed,
# else glibc with raised thresholds; the CLI children of the tests then keep it as it is.
eval "$(node bin/allocator.js)"
export MISFM_ALLOCATOR_SET=1
exec node --test --test-reporter=spec "$@" "${files[@]}"
