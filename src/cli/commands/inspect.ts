/** `misfm inspect CKPT`: what a checkpoint holds (architecture guess, parameters, keys). */
import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { loadCheckpointFile, isPyDict } from '../../io/checkpoint/index.js';
import { inferArchitecture } from '../../models/infer-arch.js';
import { numelOf } from '../../engine/dtype.js';
import { MisfmError } from '../../util/errors.js';

export async function inspectCheckpoint(file: string): Promise<string> {
  const ck = await loadCheckpointFile(file);
  const sd = ck.stateDict;
  const arch = inferArchitecture(sd);
  let params = 0, buffers = 0;
  const groups = new Map<string, { n: number; numel: number }>();
  for (const [k, t] of sd) {
    const isBuffer = /running_(mean|var)$|num_batches_tracked$|relative_position_index$|positional_encoding_gaussian_matrix$/.test(k);
    const n = numelOf(t.shape);
    if (isBuffer) buffers += n; else params += n;
    const g = k.split('.').slice(0, 2).join('.');
    const e = groups.get(g) ?? { n: 0, numel: 0 };
    e.n++; if (!isBuffer) e.numel += n;
    groups.set(g, e);
  }
  const lines = [
    `file:          ${file}`,
    `format:        ${ck.meta.format}${ck.meta.stateDictKey !== null && ck.meta.stateDictKey !== undefined ? ` (state dict under '${ck.meta.stateDictKey}')` : ''}`,
    `architecture:  ${arch.name ?? 'unknown'}${arch.keyLayout !== null ? ` (${arch.keyLayout} key layout)` : ''}`,
  ];
  for (const [k, v] of Object.entries(arch.config)) lines.push(`  ${k}: ${JSON.stringify(v)}`);
  for (const [k, why] of Object.entries(arch.unknown)) lines.push(`  ${k}: not determined (${why})`);
  for (const n of arch.notes) lines.push(`  note: ${n}`);
  lines.push(`tensors:       ${sd.size} (${params.toLocaleString('en-US')} parameters, ${buffers.toLocaleString('en-US')} buffer values)`);
  const raw = ck.raw;
  if (isPyDict(raw)) {
    const it = raw.get('iteration');
    if (typeof it === 'number') lines.push(`iteration:     ${it}`);
    const extra = [...raw.keys()].filter((k) => k !== ck.meta.stateDictKey).map(String);
    if (extra.length > 0) lines.push(`other entries: ${extra.join(', ')}`);
  }
  lines.push('keys by module:');
  for (const [g, e] of groups) lines.push(`  ${g.padEnd(36)} ${String(e.n).padStart(4)} tensors ${e.numel.toLocaleString('en-US').padStart(12)} params`);
  return lines.join('\n');
}

export const inspectCommand: Command = {
  name: 'inspect',
  summary: 'show the architecture, parameter count and keys of a checkpoint',
  usage: 'Usage: misfm inspect CHECKPOINT\n\nReads .pt/.pth (torch.save, incl. PyMIC {"model_state_dict": ...}), misfm run checkpoints and safetensors.',
  async run(argv) {
    const { positionals } = parseArgs({ args: argv, options: {}, allowPositionals: true, strict: true });
    if (positionals.length !== 1) throw new MisfmError('ARGUMENT', 'give exactly one checkpoint file');
    process.stdout.write(`${await inspectCheckpoint(positionals[0]!)}\n`);
    return 0;
  },
};
