/**
 * Guess the network and its configuration from a state dict's names and shapes (for
 * `misfm inspect` and for building the right model before loading a checkpoint).
 * What cannot be known from the weights is listed in `unknown` with the reason.
 */
import type { Tensor } from '../engine/tensor.js';
import type { RawTensor } from '../engine/dtype.js';
import type { ModelName } from './config.js';
import { PRESETS } from './registry.js';
import { normaliseVoCoStateDict } from './swin-unetr/load.js';
import { convertVista3dResearchStateDict, inferVista3dConfig, isVista3dStateDict } from './vista3d/keys.js';

export interface InferredArchitecture {
  /** The network the names belong to, or null if none matches ('vista3d' is a promptable network, not a SegmentationNetwork). */
  name: ModelName | 'vista3d' | null;
  /** Key layout: PyMIC version for UNet3D ('v0.4' flat keys or 'v0.5'), 'vista3d-research' for the VISTA repo's checkpoint; null otherwise. */
  keyLayout: 'v0.4' | 'v0.5' | 'vista3d-research' | null;
  /** Config keys read from the weights, with their values (camelCase, as in ModelConfig). */
  config: Record<string, unknown>;
  /** Config keys the weights do not determine, with the reason. */
  unknown: Record<string, string>;
  /** Further observations (partial information, oddities). */
  notes: string[];
}

type AnyTensor = RawTensor | Tensor;
const shapeOf = (sd: ReadonlyMap<string, AnyTensor>, k: string): number[] | undefined => sd.get(k)?.shape;
const dim0 = (sd: ReadonlyMap<string, AnyTensor>, k: string): number | undefined => shapeOf(sd, k)?.[0];

function countIndexed(sd: ReadonlyMap<string, AnyTensor>, prefix: string): number {
  let n = 0;
  const re = new RegExp(`^${prefix.replace(/\./g, '\\.')}(\\d+)\\.`);
  for (const k of sd.keys()) { const m = re.exec(k); if (m !== null) n = Math.max(n, Number(m[1]) + 1); }
  return n;
}

function inferPCTNet(sd: ReadonlyMap<string, AnyTensor>, out: InferredArchitecture): void {
  const c = out.config;
  c['inChannels'] = shapeOf(sd, 'embeddings.0.proj.weight')?.[1];
  c['featureChns'] = [
    dim0(sd, 'embeddings.0.proj.weight'), dim0(sd, 'embeddings.0.down1.conv.2.weight'), dim0(sd, 'embeddings.0.down2.conv.2.weight'),
    dim0(sd, 'pyramid_ct.down3.conv.2.weight'), dim0(sd, 'pyramid_ct.down4.conv.2.weight'),
  ];
  c['classNum'] = dim0(sd, 'pred_heads.0.out_conv0.conv.2.weight');
  const levels = ['e2', 'e3', 'e4'];
  c['depths'] = levels.map((l) => countIndexed(sd, `pyramid_ct.convtrans_${l}.trans.blocks.`));
  c['numHeads'] = levels.map((l) => shapeOf(sd, `pyramid_ct.convtrans_${l}.trans.blocks.0.attn.relative_position_bias_table`)?.[1]);
  // Effective window per level from the table rows (2ws-1)^3.
  const eff = levels.map((l) => {
    const rows = shapeOf(sd, `pyramid_ct.convtrans_${l}.trans.blocks.0.attn.relative_position_bias_table`)?.[0];
    return rows === undefined ? undefined : Math.round((Math.cbrt(rows) + 1) / 2);
  });
  const largest = Math.max(...eff.map((e) => e ?? 0));
  c['windowSizes'] = eff.map(() => largest);
  out.unknown['resolutionMode'] = 'all three embeddings and heads are in every PCT-Net checkpoint, whichever mode was trained';
  out.unknown['multiscalePred'] = 'the auxiliary heads exist in every checkpoint';
  out.unknown['dropout'] = 'dropout has no weights';
  out.unknown['inputSize'] = 'not stored; only bounds follow from the window sizes (see notes)';
  out.notes.push(`windowSizes assumed ${largest} at every level (the largest effective window found); a level whose resolution is not larger than its window uses min(resolution) as window`);
  eff.forEach((e, i) => {
    const lvl = i + 2;
    if (e === undefined) return;
    out.notes.push(e < largest
      ? `level ${lvl}: window ${e}, so min(level-${lvl} resolution) = ${e}, i.e. min over axes of inputSize / (stem scale * ${2 ** i}) = ${e} (stem scale [4,4,4], [2,4,4] or [1,4,4] for modes 0, 1, 2)`
      : `level ${lvl}: window ${e}, so min(level-${lvl} resolution) >= ${e}`);
  });
  const paper = PRESETS['pctnet-paper'];
  if (paper !== undefined && 'featureChns' in paper && JSON.stringify(c['featureChns']) === JSON.stringify(paper.featureChns) && JSON.stringify(eff) === '[6,6,6]') {
    out.notes.push('channels and windows match the paper configuration (mode 1, inputSize [64,128,128] in the released demos)');
  }
}

function inferUNet3D(sd: ReadonlyMap<string, AnyTensor>, out: InferredArchitecture, p: string, d: string): void {
  const c = out.config;
  const f = [dim0(sd, `${p}in_conv.conv_conv.0.weight`)];
  for (let i = 1; i <= 4; i++) { const v = dim0(sd, `${p}down${i}.maxpool_conv.1.conv_conv.0.weight`); if (v !== undefined) f.push(v); }
  c['inChannels'] = shapeOf(sd, `${p}in_conv.conv_conv.0.weight`)?.[1];
  c['featureChns'] = f;
  c['classNum'] = dim0(sd, `${d}out_conv.weight`);
  c['normType'] = sd.has(`${p}in_conv.conv_conv.1.running_mean`) ? 'batch_norm' : 'instance_norm';
  c['multiscalePred'] = sd.has(`${d}out_conv1.weight`);
  const firstUp = f.length === 5 ? 'up1' : 'up2';
  if (sd.has(`${d}${firstUp}.up.weight`)) c['upMode'] = 'transconv';
  else { c['upMode'] = 'trilinear'; out.notes.push("upMode is 'trilinear' or 'nearest' (both use a 1x1 conv and have the same weights); 'trilinear' is PyMIC's default"); }
  out.unknown['dropout'] = 'dropout has no weights';
  out.unknown['initialization'] = 'irrelevant once weights are loaded';
}

function inferFMUNet(sd: ReadonlyMap<string, AnyTensor>, out: InferredArchitecture): void {
  const c = out.config;
  c['inChannels'] = shapeOf(sd, 'project.weight')?.[1];
  c['featureChns'] = [0, 1, 2, 3, 4].map((i) => dim0(sd, `encoder.en_conv${i}.conv_list.0.3.weight`));
  c['classNum'] = dim0(sd, 'out_layers.0.2.weight');
  c['depth'] = countIndexed(sd, 'encoder.en_conv0.conv_list.');
  const planar = (k: string): boolean => shapeOf(sd, k)?.[2] === 1;
  const d0 = planar('project.weight'), d1 = planar('encoder.en_conv1.conv_list.0.3.weight');
  c['resMode'] = d0 ? (d1 ? 2 : 1) : 0;
  out.unknown['dropout'] = 'dropout has no weights';
  out.unknown['multiscalePred'] = 'the four output layers exist in every checkpoint';
}

function inferSwinUNETR(sd: ReadonlyMap<string, AnyTensor>, out: InferredArchitecture): void {
  const c = out.config;
  const pe = shapeOf(sd, 'swinViT.patch_embed.proj.weight');
  c['inChannels'] = pe?.[1];
  c['featureSize'] = pe?.[0];
  c['depths'] = [1, 2, 3, 4].map((i) => countIndexed(sd, `swinViT.layers${i}.0.blocks.`));
  c['numHeads'] = [1, 2, 3, 4].map((i) => shapeOf(sd, `swinViT.layers${i}.0.blocks.0.attn.relative_position_bias_table`)?.[1]);
  const rows = shapeOf(sd, 'swinViT.layers1.0.blocks.0.attn.relative_position_bias_table')?.[0];
  if (rows !== undefined) c['windowSize'] = Math.round((Math.cbrt(rows) + 1) / 2);
  c['useV2'] = sd.has('swinViT.layers1c.0.layer.conv1.conv.weight');
  const outW = shapeOf(sd, 'out.conv.conv.weight');
  if (outW !== undefined) c['classNum'] = outW[0];
  else {
    delete c['classNum'];
    out.unknown['classNum'] = 'encoder-only weights (as VoCo releases them): decoder5..1 and out are not in the file and start from random values';
  }
  out.unknown['axisOrder'] = "not stored: weights trained by MONAI/VoCo expect (X, Y, Z) RAS input, i.e. axisOrder 'xyz' with data orientation RAS (spec 1.5)";
  out.unknown['downsample'] = "'merging' and 'mergingv2' have the same weights; MONAI's default and VoCo use 'merging'";
  out.unknown['dropPathRate'] = 'dropout has no weights';
}

/** Infer the network type and as much of its config as the weights determine. */
export function inferArchitecture(stateDict0: ReadonlyMap<string, AnyTensor>): InferredArchitecture {
  const out: InferredArchitecture = { name: null, keyLayout: null, config: {}, unknown: {}, notes: [] };
  let stateDict = stateDict0;
  const keys = [...stateDict0.keys()];
  // VoCo layouts: TPAMI training state (backbone./student./teacher.), CVPR's swin_vit naming.
  if (keys.some((k) => k.startsWith('backbone.')) || keys.some((k) => k.includes('swin_vit'))) {
    const { stateDict: sd, renamed } = normaliseVoCoStateDict(stateDict0);
    const heads = [...sd.keys()].filter((k) => /^(student|teacher)\./.test(k));
    stateDict = new Map([...sd].filter(([k]) => !/^(student|teacher|teacher_backbone)\./.test(k)));
    out.notes.push(`VoCo checkpoint layout (${renamed.join(', ')})${heads.length > 0 ? `; ${heads.length} student/teacher projector tensors are pretraining-only and ignored` : ''}`);
  }
  if (stateDict.has('swinViT.patch_embed.proj.weight')) {
    out.name = 'swinunetr';
    inferSwinUNETR(stateDict, out);
  } else if (stateDict.has('embeddings.0.proj.weight') && stateDict.has('pyramid_ct.down3.conv.2.weight')) {
    out.name = 'pctnet';
    inferPCTNet(stateDict, out);
  } else if (stateDict.has('encoder.in_conv.conv_conv.0.weight')) {
    out.name = 'unet3d'; out.keyLayout = 'v0.5';
    inferUNet3D(stateDict, out, 'encoder.', 'decoder.');
  } else if (stateDict.has('in_conv.conv_conv.0.weight') && stateDict.has('out_conv.weight')) {
    out.name = 'unet3d'; out.keyLayout = 'v0.4';
    out.notes.push('PyMIC v0.4 key layout: convert with convertUNet3DStateDictV04() before loading');
    inferUNet3D(stateDict, out, '', '');
  } else if (stateDict.has('project.weight') && stateDict.has('encoder.en_conv0.conv_list.0.3.weight')) {
    out.name = 'fmunet';
    inferFMUNet(stateDict, out);
  } else if (isVista3dStateDict(stateDict.keys())) {
    out.name = 'vista3d';
    const conv = convertVista3dResearchStateDict(stateDict);
    if (conv.report.renamed.length + conv.report.dropped.length > 0) {
      out.keyLayout = 'vista3d-research';
      out.notes.push(`research (VISTA repo) key layout: ${conv.report.renamed.length} keys renamed and ${conv.report.dropped.length} unused dropped on loading`);
    }
    const v = inferVista3dConfig(new Map([...conv.stateDict].map(([k, t]) => [k, t.shape])));
    Object.assign(out.config, v.config); Object.assign(out.unknown, v.unknown); out.notes.push(...v.notes);
  } else {
    const sample = [...stateDict.keys()].slice(0, 5).join(', ');
    out.notes.push(`no known network has these keys (first keys: ${sample})`);
  }
  for (const [k, v] of Object.entries(out.config)) {
    if (v === undefined || (Array.isArray(v) && v.some((e) => e === undefined))) {
      delete out.config[k];
      out.unknown[k] = 'the tensors it is read from are missing';
    }
  }
  return out;
}

/**
 * The tensors by which `inferArchitecture` recognises each network, for messages about
 * checkpoints it does not recognise. A recogniser added above adds its row here.
 */
export const RECOGNISED_NETWORKS: ReadonlyArray<{ name: string; keys: readonly string[] }> = [
  { name: 'pctnet', keys: ['embeddings.0.proj.weight', 'pyramid_ct.down3.conv.2.weight'] },
  { name: 'unet3d (PyMIC v0.5)', keys: ['encoder.in_conv.conv_conv.0.weight'] },
  { name: 'unet3d (PyMIC v0.4)', keys: ['in_conv.conv_conv.0.weight', 'out_conv.weight'] },
  { name: 'fmunet', keys: ['project.weight', 'encoder.en_conv0.conv_list.0.3.weight'] },
];
