/** `misfm export CKPT --out FILE [--half]`: an inference-ready copy of a training checkpoint. */
import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { exportModel } from '../../train/export.js';
import { MisfmError } from '../../util/errors.js';
import { keepLargestMode } from '../args.js';

export const exportCommand: Command = {
  name: 'export',
  summary: 'write a trained model for sharing: weights and run record, no optimizer state (optionally float16)',
  usage: `Usage: misfm export CHECKPOINT --out FILE.pt [--half] [--keep-largest none|union|per-class]

Keeps what prediction, serve and train --init need (weights, the run config with its
preprocessing and class names, best score and validation history) and drops what only resuming
needs (optimizer and generator state, loader position). --half stores float32 weights as
float16 (half the size; they are cast back to float32 on load) and prints the largest relative
rounding error. --keep-largest records the post-processing predict applies by default with
this model (predict --keep-largest still overrides it). The copy cannot be resumed; predict with
it as with any run checkpoint.`,
  async run(argv) {
    const { values, positionals } = parseArgs({ args: argv, options: { out: { type: 'string' }, half: { type: 'boolean' }, 'keep-largest': { type: 'string' } }, allowPositionals: true, strict: true });
    if (positionals.length !== 1) throw new MisfmError('ARGUMENT', 'give exactly one checkpoint to export');
    if (values.out === undefined) throw new MisfmError('ARGUMENT', '--out FILE.pt is required');
    const k = values['keep-largest'];
    const r = exportModel(positionals[0]!, values.out, { half: values.half ?? false, ...(k !== undefined ? { keepLargest: keepLargestMode(k) } : {}) });
    process.stdout.write(`${r.file}: ${(r.bytes / 1e6).toFixed(2)} MB, ${r.tensors} tensors from iteration ${r.iteration}` +
      (r.halved > 0 ? `, ${r.halved} stored as float16 (largest relative rounding error ${r.maxRelativeError.toExponential(2)})` : '') +
      (r.keptFloat32 > 0 ? `, ${r.keptFloat32} kept in float32 (values too small for float16)` : '') + '\n');
    return 0;
  },
};
