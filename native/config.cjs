// Build configuration for binding.gyp: Debian's libtorch-dev by default, or a LibTorch folder named by
// the LIBTORCH environment variable (e.g. a CUDA build). Prints gyp-list values for the asked key.
'use strict';
const fs = require('fs');
const path = require('path');
const root = process.env.LIBTORCH;
const what = process.argv[2];
function out(list) { process.stdout.write(list.join(' ')); }
if (root) {
  const lib = path.join(root, 'lib');
  if (!fs.existsSync(path.join(lib, 'libtorch.so'))) {
    process.stderr.write(`LIBTORCH=${root}: no lib/libtorch.so there\n`);
    process.exit(1);
  }
  const cuda = fs.existsSync(path.join(lib, 'libtorch_cuda.so'));
  if (what === 'include') out([path.join(root, 'include'), path.join(root, 'include/torch/csrc/api/include')]);
  else if (what === 'libs') out([`-L${lib}`, `-Wl,-rpath,${lib}`, '-Wl,--no-as-needed', '-ltorch', '-ltorch_cpu', ...(cuda ? ['-ltorch_cuda'] : []), '-lc10', ...(cuda ? ['-lc10_cuda'] : []), '-Wl,--as-needed']);
  else if (what === 'defines') out(cuda ? ['MISFM_WITH_CUDA=1'] : []);
} else {
  if (what === 'include') out(['/usr/include/torch/csrc/api/include']);
  else if (what === 'libs') out(['-ltorch', '-ltorch_cpu', '-lc10']);
  else if (what === 'defines') out([]);
}
