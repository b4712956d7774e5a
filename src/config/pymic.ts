/**
 * Import of a PyMIC `.cfg` (spec 5) for pretraining (Volume Fusion) and fine-tuning: keys with a
 * misfm equivalent are mapped onto a RunConfig over the matching preset; every other key is
 * returned in `ignored` with the reason, never dropped silently. Values that are wrong for the
 * mapped key are ConfigErrors naming the misfm key and the PyMIC key it came from.
 *
 * Paths (train_dir, ckpt_dir, ckpt_init_name) are kept relative to the working directory, as
 * PyMIC uses them; ckpt_init_name is joined onto ckpt_dir as PyMIC does.
 */
import path from 'node:path';
import { ConfigError } from '../util/errors.js';
import { fromPymicNetworkSection, type ResolvedModelConfig } from '../models/config.js';
import { show } from './check.js';
import { resolveConfig, withFile } from './resolve.js';
import { parsePymicCfg, pymicKeyError, type PymicConfig, type PymicValue } from './pymic-ini.js';
import type { PresetName, RawConfig, RunConfig, Task } from './types.js';

export { parsePymicCfg, parsePymicValue, type PymicConfig, type PymicValue } from './pymic-ini.js';

/** A PyMIC key that was not used, and why. `key` is `section.key` as in the file (lower-cased). */
export interface IgnoredKey { key: string; value: PymicValue; reason: string }

export interface PymicImport {
  config: RunConfig;
  ignored: IgnoredKey[];
  /** The partial misfm config built from the file (before merging over the preset). */
  raw: RawConfig;
}

/** Collects mapped values and ignored keys; remembers which PyMIC key set which misfm key. */
class Mapper {
  readonly raw: RawConfig = {};
  readonly ignored: IgnoredKey[] = [];
  readonly source = new Map<string, string>();
  constructor(readonly cfg: PymicConfig, readonly file: string | undefined) {}

  set(misfmPath: string, value: unknown, from: string): void {
    const keys = misfmPath.split('.');
    let cur = this.raw as Record<string, unknown>;
    for (const k of keys.slice(0, -1)) {
      if (typeof cur[k] !== 'object' || cur[k] === null) cur[k] = {};
      cur = cur[k] as Record<string, unknown>;
    }
    cur[keys[keys.length - 1]!] = value;
    this.source.set(misfmPath, from);
  }
  ignore(key: string, value: PymicValue, reason: string): void { this.ignored.push({ key, value, reason }); }
  get(section: string, key: string): PymicValue | undefined { return this.cfg[section]?.[key]; }
  has(section: string, key: string): boolean { return this.get(section, key) !== undefined; }
  error(section: string, key: string, message: string): ConfigError { return pymicKeyError(section, key, message, this.file); }
}

const str = (v: PymicValue): string => (typeof v === 'string' ? v : JSON.stringify(v));
const names = (v: PymicValue): string[] => (Array.isArray(v) ? v.map(str) : [str(v)]);

const TRANSFORMS_USED = new Set(['RandomCrop', 'RandomFlip', 'NormalizeWithMeanStd', 'NormalizeWithMinMax', 'LabelToProbability', 'Pad', 'Crop4VolumeFusion', 'VolumeFusion']);

function mapDataset(m: Mapper): void {
  const sec = 'dataset';
  const transforms = names(m.get(sec, 'train_transform') ?? []);
  const flipOn = transforms.includes('RandomFlip');
  for (const [k, v] of Object.entries(m.cfg[sec] ?? {})) {
    const key = `${sec}.${k}`;
    switch (k) {
      case 'task_type':
        if (String(v).toLowerCase() !== 'seg') throw m.error(sec, k, `misfm only does segmentation, got ${show(v)}`);
        m.ignore(key, v, 'segmentation is the only task type');
        break;
      case 'supervise_type': break; // read by taskOf()
      case 'tensor_type': m.ignore(key, v, 'misfm always computes in float32'); break;
      case 'train_dir': case 'root_dir': m.set('data.folder', v, key); break;
      case 'valid_dir': m.set('data.validFolder', v, key); break;
      case 'train_csv': case 'valid_csv': case 'test_csv': m.ignore(key, v, 'misfm finds cases in data.folder / data.validFolder; CSV case lists are not read'); break;
      case 'test_dir': m.ignore(key, v, 'test images are given to `misfm infer` on the command line'); break;
      case 'modal_num': m.ignore(key, v, 'the channel count comes from [network] in_chns'); break;
      case 'train_batch_size': m.set('data.batchSize', v, key); break;
      case 'valid_batch_size': case 'test_batch_size': m.ignore(key, v, 'validation and test use the sliding window with inference.batchSize'); break;
      case 'num_worker': case 'num_workers': m.set('data.numWorkers', v, key); break;
      case 'patch_size': m.set('data.patchSize', v, key); break;
      case 'randomcrop_output_size': case 'crop4volumefusion_output_size':
        if (!m.has(sec, 'patch_size')) m.set('data.patchSize', v, key);
        else if (JSON.stringify(v) !== JSON.stringify(m.get(sec, 'patch_size'))) m.ignore(key, v, `differs from patch_size ${show(m.get(sec, 'patch_size'))}; misfm crops to data.patchSize`);
        break;
      case 'train_transform':
        for (const t of transforms) if (!TRANSFORMS_USED.has(t)) m.ignore(`${key}[${t}]`, t, 'no misfm equivalent of this transform');
        m.set('data.flips', {
          depth: flipOn && m.get(sec, 'randomflip_flip_depth') !== false,
          height: flipOn && m.get(sec, 'randomflip_flip_height') !== false,
          width: flipOn && m.get(sec, 'randomflip_flip_width') !== false,
        }, key);
        if (transforms.includes('NormalizeWithMeanStd')) m.set('data.intensity', { kind: 'zscore' }, key);
        if (transforms.includes('NormalizeWithMinMax')) {
          const lo = m.get(sec, 'normalizewithminmax_threshold_lower'), hi = m.get(sec, 'normalizewithminmax_threshold_upper');
          if (lo === undefined || hi === undefined) throw m.error(sec, 'normalizewithminmax_threshold_lower', 'NormalizeWithMinMax needs both threshold_lower and threshold_upper to map to a CT window');
          m.set('data.intensity', { kind: 'ct-window', window: [lo, hi] }, 'dataset.normalizewithminmax_threshold_lower');
        }
        if (transforms.includes('VolumeFusion')) m.set('ssl.mode', 'grid', key);
        break;
      case 'valid_transform': case 'test_transform': m.ignore(key, v, 'misfm applies data.intensity at validation and test'); break;
      case 'randomflip_flip_depth': case 'randomflip_flip_height': case 'randomflip_flip_width':
        if (typeof v !== 'boolean') throw m.error(sec, k, `must be True or False, got ${show(v)}`);
        if (!flipOn) m.ignore(key, v, 'RandomFlip is not in train_transform');
        break;
      case 'randomcrop_foreground_focus':
        if (v === true) {
          const r = m.get(sec, 'randomcrop_foreground_ratio');
          if (r === undefined) m.ignore(key, v, 'no randomcrop_foreground_ratio given; set data.foregroundOversample');
          else m.set('data.foregroundOversample', r, 'dataset.randomcrop_foreground_ratio');
        } else if (v === false) m.set('data.foregroundOversample', 0, key);
        else throw m.error(sec, k, `must be True or False, got ${show(v)}`);
        break;
      case 'randomcrop_foreground_ratio': if (m.get(sec, 'randomcrop_foreground_focus') !== true) m.ignore(key, v, 'randomcrop_foreground_focus is not True'); break;
      case 'normalizewithminmax_threshold_lower': case 'normalizewithminmax_threshold_upper':
        if (!transforms.includes('NormalizeWithMinMax')) m.ignore(key, v, 'NormalizeWithMinMax is not in train_transform');
        break;
      case 'normalizewithmeanstd_channels': m.ignore(key, v, 'misfm normalises every channel'); break;
      case 'normalizewithmeanstd_mean': case 'normalizewithmeanstd_std': m.ignore(key, v, 'fixed mean/std are not supported; misfm uses per-volume statistics'); break;
      case 'labeltoprobability_class_num': m.ignore(key, v, 'taken from [network] class_num'); break;
      case 'pad_output_size': m.ignore(key, v, 'misfm pads images smaller than data.patchSize to the patch size'); break;
      case 'volumefusion_cls_num':
        if (typeof v !== 'number') throw m.error(sec, k, `must be an integer, got ${show(v)}`);
        m.set('ssl.levels', v - 1, key);
        break;
      case 'volumefusion_foreground_ratio': m.set('ssl.grid.foregroundRatio', v, key); break;
      case 'volumefusion_patchsize_min': m.set('ssl.grid.sizeMin', v, key); break;
      case 'volumefusion_patchsize_max': m.set('ssl.grid.sizeMax', v, key); break;
      default:
        m.ignore(key, v, k.startsWith('crop4volumefusion_') ? 'the grid variant\'s crop augmentations are not implemented' : 'no misfm equivalent');
    }
  }
}

/** Network keys misfm's network import drops without comment; listed here so they are reported. */
const NETWORK_DROPPED: Readonly<Record<string, string>> = {
  update_mode: 'only update_mode 0 exists in the reference', finetune_mode: 'not a network option in misfm',
  weights_load_mode: 'not a network option in misfm', stage: 'not a network option in misfm', trilinear: 'not a network option in misfm',
  deep_supervise: 'deep supervision is training.deepSupervision ([training] deep_supervise)',
};

function mapNetwork(m: Mapper): ResolvedModelConfig | undefined {
  const section = m.cfg['network'];
  if (section === undefined) return undefined;
  const sec: Record<string, PymicValue> = { ...section };
  for (const [k, reason] of Object.entries(NETWORK_DROPPED)) if (k in sec) m.ignore(`network.${k}`, sec[k]!, reason);
  // PCT-Net's input size is the crop (PyMIC configs normally give both).
  if (String(sec['net_type']).toLowerCase() === 'pctnet' && sec['input_size'] === undefined) {
    const p = m.get('dataset', 'patch_size') ?? m.get('dataset', 'randomcrop_output_size');
    if (p !== undefined) sec['input_size'] = p;
  }
  // Keys the network does not take come back as ConfigErrors one at a time; report and retry.
  for (let tries = 0; tries <= Object.keys(section).length; tries++) {
    try {
      return withFile(m.file, () => fromPymicNetworkSection(sec, 'network'));
    } catch (err) {
      const k = err instanceof ConfigError ? err.path.replace(/^network\./, '') : '';
      if (!(err instanceof ConfigError) || !(k in sec) || k === 'net_type' || !/is not a .* option/.test(err.message)) throw err;
      m.ignore(`network.${k}`, sec[k]!, `not an option of this network in misfm`);
      delete sec[k];
    }
  }
  return undefined;
}

const OPTIMIZER_NAMES: Readonly<Record<string, string>> = { adam: 'adam', adamw: 'adamw', sgd: 'sgd' };
const SCHEDULER_NAMES: Readonly<Record<string, string>> = { steplr: 'step', multisteplr: 'multistep', polynomiallr: 'poly', cosineannealinglr: 'cosine' };
const LOSS_NAMES: Readonly<Record<string, 'dice' | 'ce'>> = { diceloss: 'dice', crossentropyloss: 'ce' };

function mapTraining(m: Mapper): void {
  const sec = 'training';
  const ckptDir = m.get(sec, 'ckpt_dir') ?? m.get(sec, 'ckpt_save_dir');
  // PyMIC's deep_supervise defaults to False, unlike the PCT-Net presets.
  if (!m.has(sec, 'deep_supervise')) m.set('training.deepSupervision.enabled', false, 'training.deep_supervise (absent: False)');
  for (const [k, v] of Object.entries(m.cfg[sec] ?? {})) {
    const key = `${sec}.${k}`;
    switch (k) {
      case 'optimizer': {
        const o = OPTIMIZER_NAMES[String(v).toLowerCase()];
        if (o === undefined) m.ignore(key, v, `optimizer ${show(v)} is not supported (adam, adamw, sgd); the preset's optimizer is kept`);
        else m.set('training.optimizer', o, key);
        break;
      }
      case 'learning_rate': m.set('training.lr', v, key); break;
      case 'momentum': m.set('training.momentum', v, key); break;
      case 'weight_decay': m.set('training.weightDecay', v, key); break;
      case 'lr_scheduler': {
        const s = SCHEDULER_NAMES[String(v).toLowerCase()];
        if (s === undefined) m.ignore(key, v, `scheduler ${show(v)} is not supported (StepLR, MultiStepLR, PolynomialLR, CosineAnnealingLR); the preset's schedule is kept`);
        else { m.set('training.scheduler.kind', s, key); m.set('training.scheduler.unit', 'validation', key); }
        break;
      }
      case 'lr_step': m.set('training.scheduler.stepSize', v, key); break;
      case 'lr_gamma': m.set('training.scheduler.gamma', v, key); break;
      case 'lr_power': m.set('training.scheduler.power', v, key); break;
      case 'lr_milestones': m.set('training.scheduler.milestones', v, key); break;
      case 'iter_max': m.set('training.iterations', v, key); break;
      case 'iter_valid': m.set('training.validEvery', v, key); break;
      case 'iter_save':
        if (Array.isArray(v)) m.ignore(key, v, 'misfm saves at a fixed interval (training.saveEvery), not at a list of iterations');
        else m.set('training.saveEvery', v, key);
        break;
      case 'early_stop_patience': m.set('training.earlyStopPatience', v, key); break;
      case 'deep_supervise': m.set('training.deepSupervision.enabled', v, key); break;
      case 'deep_supervise_weight': m.set('training.deepSupervision.weights', v, key); break;
      case 'deep_supervise_mode': if (v !== 2) m.ignore(key, v, 'only mode 2 (ground truth pooled to each output) is implemented'); break;
      case 'loss_type': {
        const types = names(v);
        const ws = m.get(sec, 'loss_weight');
        const weights = Array.isArray(ws) ? ws : types.length === 1 ? [ws ?? 1] : [];
        if (weights.length !== types.length) throw m.error(sec, 'loss_weight', `must give one weight per loss_type entry (${types.length}), got ${show(ws)}`);
        const lw = { dice: 0, ce: 0 };
        types.forEach((t, i) => {
          const term = LOSS_NAMES[t.toLowerCase()];
          if (term === undefined) m.ignore(`${key}[${t}]`, t, 'only DiceLoss and CrossEntropyLoss are implemented');
          else lw[term] += Number(weights[i]);
        });
        m.set('training.lossWeights', lw, key);
        break;
      }
      case 'loss_weight': break; // read with loss_type
      case 'class_weight': m.set('training.classWeights', v, key); break;
      case 'random_seed': m.set('training.seed', v, key); break;
      case 'ckpt_dir': case 'ckpt_save_dir': m.set('output.dir', v, key); break;
      case 'ckpt_init_name':
        m.set('training.initCheckpoint', ckptDir === undefined ? v : path.posix.normalize(path.posix.join(String(ckptDir), String(v))), key);
        break;
      case 'ckpt_init_mode': m.set('training.initMode', v === 0 ? 'weights' : 'resume', key); break;
      case 'ckpt_prefix': m.ignore(key, v, 'misfm names its checkpoints itself'); break;
      case 'gpus': m.ignore(key, v, 'the device is chosen on the command line'); break;
      case 'deterministic': m.ignore(key, v, 'misfm always seeds its generators (training.seed)'); break;
      default: m.ignore(key, v, 'no misfm equivalent');
    }
  }
}

function mapSsl(m: Mapper): void {
  const sec = 'self_supervised_learning';
  for (const [k, v] of Object.entries(m.cfg[sec] ?? {})) {
    const key = `${sec}.${k}`;
    switch (k) {
      case 'method_name':
        if (String(v).toLowerCase() !== 'volumefusion') throw m.error(sec, k, `only VolumeFusion pretraining is implemented, got ${show(v)}`);
        break;
      case 'volumefusion_block_range': m.set('ssl.blocks.count', v, key); break;
      case 'volumefusion_size_min': m.set('ssl.blocks.sizeMin', v, key); break;
      case 'volumefusion_size_max': m.set('ssl.blocks.sizeMax', v, key); break;
      case 'volumefusion_cls_num':
        if (typeof v !== 'number') throw m.error(sec, k, `must be an integer, got ${show(v)}`);
        m.set('ssl.levels', v - 1, key);
        break;
      default: m.ignore(key, v, 'no misfm equivalent');
    }
  }
}

function mapTesting(m: Mapper): void {
  const sec = 'testing';
  for (const [k, v] of Object.entries(m.cfg[sec] ?? {})) {
    const key = `${sec}.${k}`;
    switch (k) {
      case 'sliding_window_size': m.set('inference.window', v, key); break;
      case 'sliding_window_stride': m.set('inference.stride', v, key); break;
      case 'sliding_window_batch': m.set('inference.batchSize', v, key); break;
      case 'sliding_window_enable':
        if (v !== true) m.ignore(key, v, 'misfm always runs the sliding window (one window when it covers the image)');
        break;
      case 'ckpt_mode':
        if (v === 0) m.set('inference.checkpoint', 'latest', key);
        else if (v === 1) m.set('inference.checkpoint', 'best', key);
        else m.ignore(key, v, 'give a specific checkpoint (or several) on the command line');
        break;
      case 'tta_mode':
        if (v === 0) m.set('inference.ttaFlips', [], key);
        else m.ignore(key, v, "PyMIC's TTA modes do not match misfm's per-axis flips; set inference.ttaFlips");
        break;
      case 'post_process':
        if (v === null) m.set('inference.keepLargest', 'none', key);
        else if (String(v).toLowerCase() === 'keeplargestcomponent') {
          m.set('inference.keepLargest', m.get(sec, 'keeplargestcomponent_mode') === 2 ? 'per-class' : 'union', key);
        } else m.ignore(key, v, 'only KeepLargestComponent is implemented');
        break;
      case 'keeplargestcomponent_mode': break; // read with post_process
      default: m.ignore(key, v, k === 'gpus' ? 'the device is chosen on the command line' : 'no misfm equivalent (inference options are command-line arguments)');
    }
  }
}

/** pretrain when the cfg does self-supervised learning, finetune otherwise. */
function taskOf(cfg: PymicConfig): Task {
  const sup = String(cfg['dataset']?.['supervise_type'] ?? '').toLowerCase();
  return sup === 'self_sup' || cfg['self_supervised_learning'] !== undefined ? 'pretrain' : 'finetune';
}

/** Map a parsed PyMIC config onto a partial misfm config; see the module comment. */
export function pymicToRawConfig(cfg: PymicConfig, file?: string): { raw: RawConfig; ignored: IgnoredKey[]; source: Map<string, string> } {
  const m = new Mapper(cfg, file);
  const task = taskOf(cfg);
  m.set('task', task, cfg['dataset']?.['supervise_type'] !== undefined ? 'dataset.supervise_type' : 'self_supervised_learning');
  const sup = cfg['dataset']?.['supervise_type'];
  if (sup !== undefined && !['self_sup', 'fully_sup'].includes(String(sup).toLowerCase())) {
    m.ignore('dataset.supervise_type', sup, `misfm trains fully supervised or by Volume Fusion; treated as ${task}`);
  }
  mapDataset(m);
  const model = mapNetwork(m);
  if (model !== undefined) {
    m.raw['model'] = model;
    m.source.set('model', 'network');
    // VolF segments K+1 levels, so K follows from class_num unless the cfg says otherwise.
    if (task === 'pretrain' && !m.source.has('ssl.levels')) m.set('ssl.levels', model.classNum - 1, 'network.class_num');
  }
  mapTraining(m);
  mapSsl(m);
  mapTesting(m);
  for (const [secName, sec] of Object.entries(cfg)) {
    if (['dataset', 'network', 'training', 'self_supervised_learning', 'testing'].includes(secName)) continue;
    const reason = secName === 'evaluation' ? 'evaluation settings are options of `misfm evaluate`' : 'unknown section';
    for (const [k, v] of Object.entries(sec)) m.ignore(`${secName}.${k}`, v, reason);
  }
  return { raw: m.raw, ignored: m.ignored, source: m.source };
}

export interface PymicImportOptions {
  file?: string;
  /** Preset to start from; default 'paper' for pretraining, 'paper-finetune' otherwise. */
  preset?: PresetName;
}

/**
 * Import a PyMIC .cfg text: parse, map, merge over the preset, validate. Errors name the file,
 * the misfm key and, where it came from one, the PyMIC key.
 */
export function importPymicConfig(text: string, opts: PymicImportOptions = {}): PymicImport {
  const cfg = parsePymicCfg(text, opts.file);
  const { raw, ignored, source } = pymicToRawConfig(cfg, opts.file);
  const preset = opts.preset ?? (raw['task'] === 'pretrain' ? 'paper' : 'paper-finetune');
  try {
    return { config: resolveConfig(raw, { preset }), ignored, raw };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    let from: string | undefined;
    for (const [p, k] of source) if (err.path === p || err.path.startsWith(`${p}.`) || err.path.startsWith(`${p}[`)) from = k;
    const msg = err.message.slice(err.path.length + 2);
    throw new ConfigError(err.path, from === undefined ? msg : `${msg} (from PyMIC key ${from})`, opts.file);
  }
}
