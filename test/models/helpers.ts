/** Helpers for the model tests: fixture loading and small model factories. */
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { fixturesDir } from '../helpers.js';
import { fromTypedArray } from '../../src/engine/creation.js';
import type { Tensor } from '../../src/engine/tensor.js';
import type { RawTensor } from '../../src/engine/dtype.js';
import { PCTNet } from '../../src/models/pctnet/index.js';
import type { PCTNetOptions } from '../../src/models/pctnet/index.js';

export const pctSmallDir = path.join(fixturesDir, 'pctnet_small');

export interface FixtureMeta {
  meta: { network_params: { in_chns: number; class_num: number; input_size: number[]; feature_chns: number[]; dropout: number[]; depths: number[]; num_heads: number[]; window_sizes: number[]; resolution_mode: 0 | 1 | 2; multiscale_pred: boolean } };
  tensors: Record<string, { file: string; shape: number[]; dtype: string }>;
}

export function readJson<T>(file: string): T {
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}

export function readF32(file: string): Float32Array {
  const b = readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

export function fixtureTensor(dir: string, meta: FixtureMeta, key: string): Tensor {
  const d = meta.tensors[key];
  if (d === undefined) throw new Error(`fixture has no tensor ${key}`);
  return fromTypedArray(readF32(path.join(dir, d.file)), d.shape);
}

/** PCTNet options from a fixture's PyMIC network_params. */
export function optionsFromFixture(meta: FixtureMeta): PCTNetOptions {
  const p = meta.meta.network_params;
  return {
    inChannels: p.in_chns, classNum: p.class_num, inputSize: p.input_size, featureChns: p.feature_chns, dropout: p.dropout,
    depths: p.depths, numHeads: p.num_heads, windowSizes: p.window_sizes, resolutionMode: p.resolution_mode, multiscalePred: p.multiscale_pred,
  };
}

/** A tiny PCT-Net for gradient tests (all attention paths: padded+shifted at e2/e3, fallback window at e4). */
export function tinyPCTNet(mode: 0 | 1 | 2, o: Partial<PCTNetOptions> = {}): PCTNet {
  const inputSize = mode === 0 ? [32, 32, 32] : mode === 1 ? [16, 32, 32] : [8, 32, 32];
  return new PCTNet({
    inChannels: 1, classNum: 3, inputSize, featureChns: [4, 8, 16, 32, 64], numHeads: [2, 4, 8], windowSizes: [3, 3, 3],
    resolutionMode: mode, multiscalePred: true, ...o,
  });
}

/** A RawTensor with only a shape (for name/shape-only code such as inferArchitecture). */
export function shapeOnly(shape: number[], dtype: RawTensor['dtype'] = 'float32'): RawTensor {
  return { dtype, shape, data: new Uint8Array(0) };
}

export interface ParamEntry { name: string; shape: number[]; dtype: string; numel: number; kind: 'param' | 'buffer'; }
export interface ParamLists { summary: Record<string, { entries: number; param_numel: number }>; lists: Record<string, ParamEntry[]>; }
export const paramLists = (): ParamLists => readJson<ParamLists>(path.join(fixturesDir, 'param_lists', 'param_lists.json'));
