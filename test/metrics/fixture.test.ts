import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { assd, binaryMetrics, dice, hd95, RAW_OPTIONS, surfaceDistances } from '../../src/metrics/binary.js';
import type { Shape3, Spacing3 } from '../../src/metrics/types.js';
import { readMaskFixture, relDiff, sharedPath } from './helpers.js';

interface Fixture {
  meta: { metrics: { dice: number; assd_spacing: number; hd95_spacing: number; assd_unit: number; hd95_unit: number; spacing_zyx: number[] } };
  tensors: { seg: { shape: number[]; dtype: string }; gt: { shape: number[]; dtype: string } };
}

const dir = sharedPath('fixtures', 'metrics');
const fx = JSON.parse(readFileSync(`${dir}/tensors.json`, 'utf8')) as Fixture;
const shape = fx.tensors.seg.shape as unknown as Shape3;
const seg = readMaskFixture(`${dir}/seg.bin`);
const gt = readMaskFixture(`${dir}/gt.bin`);
const ref = fx.meta.metrics;
const spacing = ref.spacing_zyx as unknown as Spacing3;

test('fixture layout is as tensors.json says', () => {
  assert.equal(fx.tensors.seg.dtype, 'float32');
  assert.deepEqual(fx.tensors.gt.shape, fx.tensors.seg.shape);
  assert.equal(seg.length, shape[0] * shape[1] * shape[2]);
  // the fixture values in summary.json agree with tensors.json
  const summary = JSON.parse(readFileSync(sharedPath('fixtures', 'summary.json'), 'utf8')) as { metrics: Fixture['meta']['metrics'] };
  assert.deepEqual(summary.metrics, ref);
});

test('dice matches PyMIC', () => {
  assert.ok(relDiff(dice(seg, gt), ref.dice) < 1e-12, `dice ${dice(seg, gt)} vs ${ref.dice}`);
});

test('ASSD and HD95 match PyMIC with anisotropic spacing (2.5,0.8,0.9)', () => {
  const d = surfaceDistances(seg, gt, shape, spacing);
  const a = assd(d), h = hd95(d);
  assert.ok(relDiff(a, ref.assd_spacing) < 1e-9, `assd ${a} vs ${ref.assd_spacing}`);
  assert.ok(relDiff(h, ref.hd95_spacing) < 1e-9, `hd95 ${h} vs ${ref.hd95_spacing}`);
  // well inside the clip limits, so raw mode gives the same numbers
  assert.equal(assd(d, RAW_OPTIONS), a);
  assert.equal(hd95(d, RAW_OPTIONS), h);
});

test('ASSD and HD95 match PyMIC with unit spacing', () => {
  const m = binaryMetrics(seg, gt, shape, [1, 1, 1], ['dice', 'assd', 'hd95']);
  assert.ok(relDiff(m.assd, ref.assd_unit) < 1e-9, `assd ${m.assd} vs ${ref.assd_unit}`);
  assert.ok(relDiff(m.hd95, ref.hd95_unit) < 1e-9, `hd95 ${m.hd95} vs ${ref.hd95_unit}`);
  assert.ok(relDiff(m.dice, ref.dice) < 1e-12);
});

test('swapping spacing axes changes the answer (spacing order is z,y,x)', () => {
  const m = binaryMetrics(seg, gt, shape, [0.9, 0.8, 2.5], ['assd']);
  assert.ok(relDiff(m.assd, ref.assd_spacing) > 1e-3);
});
