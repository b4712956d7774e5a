/**
 * Loading pretrained weights into a (possibly differently configured) network, the way PyMIC does
 * it (by name, only where shapes match) but with nothing skipped silently, and re-initialising the
 * class-dependent output layers when the class count differs (e.g. a 5-class VolF checkpoint
 * fine-tuned for 2 classes).
 */
import type { Tensor } from '../engine/tensor.js';
import type { RawTensor } from '../engine/dtype.js';
import { Module, type LoadReport } from '../nn/module.js';
import { Conv3d, ConvTranspose3d } from '../nn/layers/conv.js';
import { kaimingUniform_, defaultBias_, kaimingNormal_, constant_ } from '../nn/init.js';
import { MisfmError, fmtShape } from '../util/errors.js';
import type { SegmentationNetwork } from './types.js';
import { PCTNet } from './pctnet/model.js';

export interface PretrainedReport {
  /** Keys copied from the checkpoint. */
  loaded: string[];
  /** Output-layer keys whose class count differs: left out and freshly initialised. */
  reinitialised: string[];
  /** Model keys absent from the checkpoint (left at their current values). */
  missing: string[];
  /** Checkpoint keys the model does not have. */
  unexpected: string[];
  /** Other keys whose shapes differ (left at their current values), e.g. relative-position tables of another input size. */
  mismatched: { key: string; expected: number[]; got: number[] }[];
  /** Keys excluded by the `include` filter. */
  excluded: string[];
}

export interface LoadPretrainedOptions {
  /** Load only keys for which this returns true (e.g. `(k) => k.startsWith('encoder.')`). Default: all. */
  include?: (key: string) => boolean;
  /** Re-initialise class-dependent output layers whose shape differs (default true). */
  reinitHeads?: boolean;
  /** Throw if anything other than re-initialised heads was missing or mismatched (default false). */
  strict?: boolean;
}

/** The output convolutions (their shapes follow classNum), by module path. */
export function headModulePaths(model: SegmentationNetwork): string[] {
  const out: string[] = [];
  for (const [path, m] of model.namedModules()) {
    if (!(m instanceof Conv3d)) continue;
    if (m.outChannels !== model.classNum) continue;
    if (/(^|\.)(out_conv\d?|out_layers\.\d+)(\.|$)/.test(path)) out.push(path);
  }
  return out;
}

function reinitConv(model: SegmentationNetwork, conv: Conv3d | ConvTranspose3d): void {
  if (model instanceof PCTNet) {
    // PCT-Net uses PyTorch's default init.
    kaimingUniform_(conv.weight);
    if (conv.bias !== null) defaultBias_(conv.bias, conv.weight.shape);
  } else {
    // PyMIC's He init for UNet3D / FMUNet.
    kaimingNormal_(conv.weight, 1e-2);
    if (conv.bias !== null) constant_(conv.bias, 0);
  }
}

/**
 * Load `stateDict` into `model` by name where shapes match. Output layers whose class count
 * differs are re-initialised (reported in `reinitialised`); everything else that did not load is
 * reported. With `strict`, anything but re-initialised heads not loading throws a STATE_DICT error.
 */
export function loadPretrained(model: SegmentationNetwork, stateDict: ReadonlyMap<string, RawTensor | Tensor>, opts: LoadPretrainedOptions = {}): PretrainedReport {
  const include = opts.include ?? ((): boolean => true);
  const source = new Map<string, RawTensor | Tensor>();
  const excluded: string[] = [];
  for (const [k, v] of stateDict) (include(k) ? source.set(k, v) : excluded.push(k));
  const r: LoadReport = model.loadStateDict(source, { mode: 'filter' });
  const heads = headModulePaths(model);
  const isHeadKey = (k: string): boolean => heads.some((h) => k === `${h}.weight` || k === `${h}.bias`);
  const reinitialised: string[] = [];
  const mismatched = r.mismatched.filter((m) => {
    if (!(opts.reinitHeads ?? true) || !isHeadKey(m.key)) return true;
    reinitialised.push(m.key);
    return false;
  });
  const modules = new Map(model.namedModules());
  for (const h of heads) {
    if (!reinitialised.some((k) => k.startsWith(`${h}.`))) continue;
    const conv = modules.get(h);
    if (conv instanceof Conv3d) reinitConv(model, conv);
  }
  const missing = r.missing.filter((k) => include(k));
  const report: PretrainedReport = { loaded: r.loaded, reinitialised, missing, unexpected: r.unexpected, mismatched, excluded };
  if ((opts.strict ?? false) && (missing.length > 0 || mismatched.length > 0)) {
    throw new MisfmError('STATE_DICT', `pretrained weights do not fit ${model.constructor.name}:\n${formatPretrainedReport(report)}`);
  }
  return report;
}

/** A human-readable multi-line summary of a PretrainedReport. */
export function formatPretrainedReport(r: PretrainedReport): string {
  const list = (ks: string[]): string => (ks.length <= 8 ? ks.join(', ') : `${ks.slice(0, 8).join(', ')}, ... (${ks.length - 8} more)`);
  const lines = [`loaded ${r.loaded.length} tensors`];
  if (r.reinitialised.length > 0) lines.push(`re-initialised ${r.reinitialised.length} output-layer tensors (class count differs): ${list(r.reinitialised)}`);
  if (r.mismatched.length > 0) {
    lines.push(`kept ${r.mismatched.length} tensors at their initial values because shapes differ:`);
    for (const m of r.mismatched.slice(0, 12)) lines.push(`  ${m.key}: checkpoint ${fmtShape(m.got)}, model ${fmtShape(m.expected)}`);
    if (r.mismatched.length > 12) lines.push(`  ... and ${r.mismatched.length - 12} more`);
  }
  if (r.missing.length > 0) lines.push(`missing from the checkpoint (${r.missing.length}): ${list(r.missing)}`);
  if (r.unexpected.length > 0) lines.push(`not in the model (${r.unexpected.length}): ${list(r.unexpected)}`);
  if (r.excluded.length > 0) lines.push(`excluded by the filter: ${r.excluded.length}`);
  return lines.join('\n');
}

/** Narrow a Module to a SegmentationNetwork (for callers holding a plain Module). */
export function isSegmentationNetwork(m: Module): m is SegmentationNetwork {
  const s = m as unknown as Partial<SegmentationNetwork>;
  return typeof s.classNum === 'number' && typeof s.inChannels === 'number' && Array.isArray(s.sizeDivisor);
}

