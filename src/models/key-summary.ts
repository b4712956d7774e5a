/**
 * A bounded, grouped view of a state dict's names, for `misfm inspect`: networks can have
 * thousands of tensors, so keys are grouped by module path at the deepest level that still fits
 * in `maxGroups` lines, and for a network misfm does not recognise it also says which known
 * network comes closest and what would make the checkpoint recognised.
 */
import type { RawTensor } from '../engine/dtype.js';
import type { Tensor } from '../engine/tensor.js';
import { numelOf } from '../engine/dtype.js';
import { inferArchitecture, RECOGNISED_NETWORKS } from './infer-arch.js';

type AnyTensor = RawTensor | Tensor;

/** One module group of a state dict. */
export interface KeyGroup {
  /** Module path shared by the group's keys ('(top level)' for keys without a module). */
  prefix: string;
  tensors: number;
  /** Values in parameter tensors (buffers such as running means are not counted). */
  params: number;
  /** The group's first keys in file order (at most `firstKeys`). */
  firstKeys: string[];
}

export interface KeySummary {
  /** Module-path depth the keys were grouped at. */
  depth: number;
  /** Groups in order of first appearance, at most `maxGroups`. */
  groups: KeyGroup[];
  /** What did not fit: groups, tensors and parameters beyond the shown groups. */
  omitted: { groups: number; tensors: number; params: number };
}

/** Buffers (not trained) by PyTorch naming. */
export function isBufferKey(k: string): boolean {
  return /running_(mean|var)$|num_batches_tracked$|relative_position_index$|positional_encoding_gaussian_matrix$/.test(k);
}

/** The module path of `key` cut to `depth` components (the tensor's own name is not part of it). */
function prefixAt(key: string, depth: number): string {
  const parts = key.split('.');
  if (parts.length === 1) return '(top level)';
  return parts.slice(0, Math.min(depth, parts.length - 1)).join('.');
}

/**
 * Group keys by module path at the deepest depth (1..maxDepth) that gives at most `maxGroups`
 * groups; when even depth 1 gives more, the first `maxGroups` are shown and the rest counted.
 */
export function summarizeKeys(sd: ReadonlyMap<string, AnyTensor>, opts: { maxGroups?: number; maxDepth?: number; firstKeys?: number } = {}): KeySummary {
  const maxGroups = opts.maxGroups ?? 24, maxDepth = opts.maxDepth ?? 3, firstKeys = opts.firstKeys ?? 3;
  const keys = [...sd.keys()];
  const countAt = (d: number): number => new Set(keys.map((k) => prefixAt(k, d))).size;
  let depth = 1;
  for (let d = 2; d <= maxDepth; d++) if (countAt(d) <= maxGroups) depth = d;
  const byPrefix = new Map<string, KeyGroup>();
  for (const [k, t] of sd) {
    const p = prefixAt(k, depth);
    let g = byPrefix.get(p);
    if (g === undefined) { g = { prefix: p, tensors: 0, params: 0, firstKeys: [] }; byPrefix.set(p, g); }
    g.tensors++;
    if (!isBufferKey(k)) g.params += numelOf(t.shape);
    if (g.firstKeys.length < firstKeys) g.firstKeys.push(k);
  }
  const all = [...byPrefix.values()];
  const shown = all.slice(0, maxGroups), rest = all.slice(maxGroups);
  return {
    depth, groups: shown,
    omitted: { groups: rest.length, tensors: rest.reduce((a, g) => a + g.tensors, 0), params: rest.reduce((a, g) => a + g.params, 0) },
  };
}

/**
 * Why a state dict is not recognised, as readable lines: the networks misfm knows with the
 * tensors that identify them, the closest one, and a shared key prefix whose removal would make
 * it recognised.
 */
export function recognitionHints(sd: ReadonlyMap<string, AnyTensor>): string[] {
  const lines: string[] = [];
  const known = RECOGNISED_NETWORKS.map((n) => `${n.name} (${n.keys.join(' + ')})`).join('; ');
  lines.push(`misfm recognises a network by the names of its tensors (PyMIC/MONAI naming): ${known}`);
  let best: { name: string; have: number; missing: string[] } | undefined;
  for (const n of RECOGNISED_NETWORKS) {
    const missing = n.keys.filter((k) => !sd.has(k));
    const have = n.keys.length - missing.length;
    if (have > 0 && (best === undefined || have > best.have)) best = { name: n.name, have, missing };
  }
  if (best !== undefined) lines.push(`closest: ${best.name}, but ${best.missing.join(', ')} ${best.missing.length === 1 ? 'is' : 'are'} missing (a different variant or an incomplete state dict)`);
  // A wrapper prefix (Lightning's 'model.', 'net.', 'backbone.', ...) on every key hides known names.
  const first = sd.keys().next().value;
  const head = typeof first === 'string' && first.includes('.') ? first.slice(0, first.indexOf('.') + 1) : undefined;
  if (head !== undefined && [...sd.keys()].every((k) => k.startsWith(head))) {
    const stripped = new Map<string, AnyTensor>();
    for (const [k, t] of sd) stripped.set(k.slice(head.length), t);
    const arch = inferArchitecture(stripped);
    lines.push(arch.name !== null
      ? `every key starts with '${head}': without that prefix this is a ${arch.name} state dict; save the state dict without the prefix (only 'module.' is removed automatically)`
      : `every key starts with '${head}' (a wrapper module); without it the names are still not a known network`);
  } else if (best === undefined) {
    lines.push('no identifying tensor of a known network is present: this checkpoint belongs to a network misfm does not implement');
  }
  return lines;
}
