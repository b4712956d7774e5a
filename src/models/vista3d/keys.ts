/**
 * The state-dict names and shapes of a VISTA3D configuration, computed without building the
 * network (the official model holds 218 M parameters: 0.9 GB and ~15 s to allocate here). Used to
 * check the official layout (`shared/reference/vista3d_keys.txt`), by `misfm inspect`, and to tell
 * whether a checkpoint fits a configuration before loading it. The test suite checks that these
 * lists equal the built modules' state dicts for several configurations.
 *
 * Also: the research checkpoint's (VISTA repo, MONAI 1.3) key renames onto MONAI's layout.
 */
import { resolveVista3dOptions, type Vista3dOptions } from './options.js';

export interface KeyShape { key: string; shape: number[]; kind: 'param' | 'buffer'; }

export function vista3dStateShapes(o: Vista3dOptions = {}): KeyShape[] {
  const r = resolveVista3dOptions(o);
  const out: KeyShape[] = [];
  const P = (key: string, ...shape: number[]): void => { out.push({ key, shape, kind: 'param' }); };
  const E = r.featureSize, F = r.initFilters, L = r.blocksDown.length;
  const block = (p: string, c: number): void => {
    P(`${p}.norm1.weight`, c); P(`${p}.norm1.bias`, c); P(`${p}.conv1.weight`, c, c, 3, 3, 3);
    P(`${p}.norm2.weight`, c); P(`${p}.norm2.bias`, c); P(`${p}.conv2.weight`, c, c, 3, 3, 3);
  };
  const ie = 'image_encoder';
  P(`${ie}.encoder.conv_init.weight`, F, r.inChannels, 3, 3, 3);
  r.blocksDown.forEach((n, i) => {
    const c = F * 2 ** i;
    for (let j = 0; j < n; j++) block(`${ie}.encoder.layers.${i}.blocks.${j}`, c);
    if (i < L - 1) P(`${ie}.encoder.layers.${i}.downsample.weight`, 2 * c, c, 3, 3, 3);
  });
  for (const dec of ['up_layers', 'up_layers_auto']) {
    for (let i = 0; i < L - 1; i++) {
      const f = F * 2 ** (L - 2 - i);
      P(`${ie}.${dec}.${i}.upsample.deconv.weight`, 2 * f, f, 3, 3, 3);
      block(`${ie}.${dec}.${i}.blocks.0`, f);
      if (i === L - 2) { P(`${ie}.${dec}.${i}.head.weight`, E, f, 1, 1, 1); P(`${ie}.${dec}.${i}.head.bias`, E); }
    }
  }
  P('class_head.mlp.0.weight', E, E); P('class_head.mlp.0.bias', E); P('class_head.mlp.3.weight', E, E); P('class_head.mlp.3.bias', E);
  P('class_head.class_embeddings.weight', r.nClasses, E);
  for (const i of [0, 1]) for (const c of ['conv1', 'conv2']) P(`class_head.image_post_mapping.${i}.layer.${c}.conv.weight`, E, E, 3, 3, 3);
  const ph = 'point_head';
  for (const i of [0, 3]) { P(`${ph}.feat_downsample.${i}.weight`, E, E, 3, 3, 3); P(`${ph}.feat_downsample.${i}.bias`, E); }
  P(`${ph}.mask_downsample.weight`, 2, 2, 3, 3, 3); P(`${ph}.mask_downsample.bias`, 2);
  const attn = (p: string, inner: number): void => {
    for (const n of ['q_proj', 'k_proj', 'v_proj']) { P(`${p}.${n}.weight`, inner, E); P(`${p}.${n}.bias`, inner); }
    P(`${p}.out_proj.weight`, E, inner); P(`${p}.out_proj.bias`, E);
  };
  const inner = E / r.attentionDownsampleRate;
  const norm = (p: string): void => { P(`${p}.weight`, E); P(`${p}.bias`, E); };
  for (let i = 0; i < r.transformerDepth; i++) {
    const p = `${ph}.transformer.layers.${i}`;
    attn(`${p}.self_attn`, E); norm(`${p}.norm1`);
    attn(`${p}.cross_attn_token_to_image`, inner); norm(`${p}.norm2`);
    P(`${p}.mlp.linear1.weight`, r.mlpDim, E); P(`${p}.mlp.linear1.bias`, r.mlpDim); P(`${p}.mlp.linear2.weight`, E, r.mlpDim); P(`${p}.mlp.linear2.bias`, E);
    norm(`${p}.norm3`); norm(`${p}.norm4`);
    attn(`${p}.cross_attn_image_to_token`, inner);
  }
  attn(`${ph}.transformer.final_attn_token_to_image`, inner); norm(`${ph}.transformer.norm_final_attn`);
  out.push({ key: `${ph}.pe_layer.positional_encoding_gaussian_matrix`, shape: [3, E / 2], kind: 'buffer' });
  for (const n of ['point_embeddings.0', 'point_embeddings.1', 'not_a_point_embed', 'special_class_embed', 'mask_tokens']) P(`${ph}.${n}.weight`, 1, E);
  for (const i of [0, 3]) { P(`${ph}.output_upscaling.${i}.weight`, E, E, 3, 3, 3); P(`${ph}.output_upscaling.${i}.bias`, E); }
  for (const i of [0, 1, 2]) { P(`${ph}.output_hypernetworks_mlps.layers.${i}.weight`, E, E); P(`${ph}.output_hypernetworks_mlps.layers.${i}.bias`, E); }
  P(`${ph}.class_embeddings.weight`, r.nClasses, E);
  P(`${ph}.zeroshot_embed.weight`, 1, E); P(`${ph}.supported_embed.weight`, 1, E);
  return out;
}

/** Parameters MONAI's forward never reads (still loaded and saved). */
export const UNUSED_IN_FORWARD = ['point_head.class_embeddings.weight', 'point_head.mask_downsample.weight', 'point_head.mask_downsample.bias'] as const;

export interface ResearchConversion { renamed: [string, string][]; dropped: string[]; strippedPrefix: boolean; }

/**
 * Map a research checkpoint (`model_monai1.3.pt`, VISTA repo) onto MONAI's names (spec §9):
 * strip a `module.` prefix (multi-GPU saves), rename the transformer MLP `lin1`/`lin2` to
 * `linear1`/`linear2`, drop the unused `weight_mapper.*` and `point_head.output_add_hypernetworks_mlps.*`.
 * Keys already in MONAI's layout pass through, so this is safe on any VISTA3D state dict.
 */
export function convertVista3dResearchStateDict<T>(sd: ReadonlyMap<string, T>): { stateDict: Map<string, T>; report: ResearchConversion } {
  const out = new Map<string, T>();
  const report: ResearchConversion = { renamed: [], dropped: [], strippedPrefix: false };
  const allPrefixed = sd.size > 0 && [...sd.keys()].every((k) => k.startsWith('module.'));
  for (const [k0, v] of sd) {
    const k1 = allPrefixed ? k0.slice('module.'.length) : k0;
    if (/^weight_mapper\./.test(k1) || /^point_head\.output_add_hypernetworks_mlps\./.test(k1)) { report.dropped.push(k0); continue; }
    const k2 = k1.replace(/^(point_head\.transformer\.layers\.\d+\.mlp\.)lin([12])\./, '$1linear$2.');
    if (k2 !== k1) report.renamed.push([k1, k2]);
    out.set(k2, v);
  }
  report.strippedPrefix = allPrefixed;
  return { stateDict: out, report };
}

/** Whether a state dict looks like VISTA3D (either layout). */
export function isVista3dStateDict(keys: Iterable<string>): boolean {
  let enc = false, ph = false;
  for (const k0 of keys) {
    const k = k0.startsWith('module.') ? k0.slice(7) : k0;
    if (k === 'image_encoder.encoder.conv_init.weight') enc = true;
    if (k === 'point_head.pe_layer.positional_encoding_gaussian_matrix') ph = true;
  }
  return enc && ph;
}

/** The VISTA3D options a state dict determines (MONAI layout, or research layout after conversion), and what it cannot. */
export function inferVista3dConfig(shapes: ReadonlyMap<string, readonly number[]>): { config: Record<string, unknown>; unknown: Record<string, string>; notes: string[] } {
  const s = (k: string): readonly number[] | undefined => shapes.get(k);
  const count = (re: RegExp): number => { let n = 0; for (const k of shapes.keys()) { const m = re.exec(k); if (m !== null) n = Math.max(n, Number(m[1]) + 1); } return n; };
  const levels = count(/^image_encoder\.encoder\.layers\.(\d+)\./);
  const blocksDown = Array.from({ length: levels }, (_, i) => count(new RegExp(`^image_encoder\\.encoder\\.layers\\.${i}\\.blocks\\.(\\d+)\\.`)));
  const E = s('class_head.mlp.0.weight')?.[0];
  const inner = s('point_head.transformer.final_attn_token_to_image.q_proj.weight')?.[0];
  const config: Record<string, unknown> = {
    inChannels: s('image_encoder.encoder.conv_init.weight')?.[1],
    initFilters: s('image_encoder.encoder.conv_init.weight')?.[0],
    featureSize: E,
    blocksDown,
    nClasses: s('class_head.class_embeddings.weight')?.[0],
    transformerDepth: count(/^point_head\.transformer\.layers\.(\d+)\./),
    mlpDim: s('point_head.transformer.layers.0.mlp.linear1.weight')?.[0],
    attentionDownsampleRate: E !== undefined && inner !== undefined ? E / inner : undefined,
  };
  const unknown: Record<string, string> = {
    numHeads: 'attention heads have no weights of their own (MONAI uses 4)',
    lastSupported: 'not stored (MONAI: 132; classes above it are zero-shot)',
    maxPrompt: 'a chunk size, not stored (MONAI: 32)',
  };
  const notes: string[] = [];
  const official = vista3dStateShapes({});
  if (official.length === shapes.size && official.every((e) => JSON.stringify(shapes.get(e.key)) === JSON.stringify(e.shape))) {
    notes.push('names and shapes equal the official vista3d132 configuration (preset vista3d-official)');
  }
  return { config, unknown, notes };
}
