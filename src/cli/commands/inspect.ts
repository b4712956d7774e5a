/** `misfm inspect CKPT`: what a checkpoint holds (architecture guess, parameters, keys). */
import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { loadCheckpointFile, isPyDict } from '../../io/checkpoint/index.js';
import { inferArchitecture } from '../../models/infer-arch.js';
import { numelOf } from '../../engine/dtype.js';
import { isBufferKey, recognitionHints, summarizeKeys } from '../../models/key-summary.js';
import { MisfmError } from '../../util/errors.js';

export async function inspectCheckpoint(file: string): Promise<string> {
  const ck = await loadCheckpointFile(file);
  const sd = ck.stateDict;
  const arch = inferArchitecture(sd);
  let params = 0, buffers = 0;
  for (const [k, t] of sd) {
    if (isBufferKey(k)) buffers += numelOf(t.shape); else params += numelOf(t.shape);
  }
  const lines = [
    `file:          ${file}`,
    `format:        ${ck.meta.format}${ck.meta.stateDictKey !== null && ck.meta.stateDictKey !== undefined ? ` (state dict under '${ck.meta.stateDictKey}')` : ''}` +
      (ck.meta.strippedPrefix !== null ? ` (prefix '${ck.meta.strippedPrefix}' removed from every key)` : ''),
    `architecture:  ${arch.name ?? 'unknown'}${arch.keyLayout !== null ? ` (${arch.keyLayout} key layout)` : ''}`,
  ];
  for (const [k, v] of Object.entries(arch.config)) lines.push(`  ${k}: ${JSON.stringify(v)}`);
  for (const [k, why] of Object.entries(arch.unknown)) lines.push(`  ${k}: not determined (${why})`);
  // The unknown-network note repeats first keys that the grouped list below shows anyway.
  for (const n of arch.notes) if (arch.name !== null) lines.push(`  note: ${n}`);
  if (arch.name === null) for (const h of recognitionHints(sd)) lines.push(`  ${h}`);
  lines.push(`tensors:       ${sd.size} (${params.toLocaleString('en-US')} parameters, ${buffers.toLocaleString('en-US')} buffer values)`);
  const raw = ck.raw;
  // Entries beside the state dict (optimizer, iteration, ...); a bare state dict has none.
  if (isPyDict(raw) && ck.meta.stateDictKey !== null) {
    const it = raw.get('iteration');
    if (typeof it === 'number') lines.push(`iteration:     ${it}`);
    const extra = [...raw.keys()].filter((k) => k !== ck.meta.stateDictKey).map(String);
    if (extra.length > 0) lines.push(`other entries: ${extra.slice(0, MAX_ENTRIES).join(', ')}${extra.length > MAX_ENTRIES ? `, ... (${extra.length - MAX_ENTRIES} more)` : ''}`);
  }
  const s = summarizeKeys(sd, { firstKeys: arch.name === null ? 2 : 0 });
  const total = s.groups.length + s.omitted.groups;
  lines.push(`keys by module (${total} group${total === 1 ? '' : 's'} at depth ${s.depth}${s.omitted.groups > 0 ? `, first ${s.groups.length} shown` : ''}):`);
  for (const g of s.groups) {
    const eg = g.firstKeys.length > 0 ? `   e.g. ${g.firstKeys.join(', ')}${g.tensors > g.firstKeys.length ? ', ...' : ''}` : '';
    lines.push(`  ${g.prefix.padEnd(36)} ${String(g.tensors).padStart(4)} tensors ${g.params.toLocaleString('en-US').padStart(12)} params${eg}`);
  }
  if (s.omitted.groups > 0) {
    lines.push(`  ... ${s.omitted.groups} more groups: ${s.omitted.tensors} tensors, ${s.omitted.params.toLocaleString('en-US')} params`);
  }
  return lines.join('\n');
}

/** Most top-level entries listed by name. */
const MAX_ENTRIES = 12;

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
