import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as zlib from 'node:zlib';
import { crc32, encodePng } from '../../src/util/png.js';
import { plotLines, renderLines, type Rgb } from '../../src/util/plot.js';
import { MisfmError } from '../../src/util/errors.js';

interface Decoded { width: number; height: number; channels: number; pixels: Uint8Array }

/** Minimal PNG decoder for 8-bit RGB/RGBA, all five filter types; checks signature, CRCs, sizes. */
function decodePng(png: Uint8Array): Decoded {
  const buf = Buffer.from(png);
  assert.deepEqual([...buf.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  let off = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  const types: string[] = [];
  while (off < buf.length) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    const body = buf.subarray(off + 8, off + 8 + len);
    assert.equal(buf.readUInt32BE(off + 8 + len), zlib.crc32(buf.subarray(off + 4, off + 8 + len)), `CRC of ${type}`);
    types.push(type);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      assert.equal(body[8], 8);
      channels = body[9] === 6 ? 4 : body[9] === 2 ? 3 : 0;
      assert.deepEqual([body[10], body[11], body[12]], [0, 0, 0]);
    } else if (type === 'IDAT') {
      idat.push(body);
    }
    off += 12 + len;
  }
  assert.equal(types[0], 'IHDR');
  assert.equal(types[types.length - 1], 'IEND');
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  assert.equal(raw.length, (stride + 1) * height, 'inflated IDAT size');
  const px = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!;
    for (let i = 0; i < stride; i++) {
      const x = raw[y * (stride + 1) + 1 + i]!;
      const a = i >= channels ? px[y * stride + i - channels]! : 0;
      const b = y > 0 ? px[(y - 1) * stride + i]! : 0;
      const c = i >= channels && y > 0 ? px[(y - 1) * stride + i - channels]! : 0;
      const p = a + b - c;
      const pr = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
      const pred = [0, a, b, (a + b) >> 1, pr][f];
      assert.ok(pred !== undefined, `filter ${f}`);
      px[y * stride + i] = (x + pred) & 255;
    }
  }
  return { width, height, channels, pixels: px };
}

test('crc32 matches the standard check value and node:zlib', () => {
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  const data = Uint8Array.from({ length: 1000 }, (_, i) => (i * 31) & 255);
  assert.equal(crc32(data), zlib.crc32(data));
});

test('encodePng round-trips RGB and RGBA images', () => {
  for (const channels of [3, 4] as const) {
    const width = 17;
    const height = 9;
    const data = Uint8Array.from({ length: width * height * channels }, (_, i) => (i * 37 + (i >> 5)) & 255);
    const dec = decodePng(encodePng({ width, height, channels, data }));
    assert.deepEqual([dec.width, dec.height, dec.channels], [width, height, channels]);
    assert.deepEqual(dec.pixels, data);
  }
  assert.throws(() => encodePng({ width: 2, height: 2, channels: 3, data: new Uint8Array(11) }), (e: unknown) => e instanceof MisfmError && /needs 12 bytes, got 11/.test(e.message));
  assert.throws(() => encodePng({ width: 0, height: 2, channels: 3, data: new Uint8Array(0) }), /width and height/);
});

function countColour(d: Decoded, c: Rgb, region?: (x: number, y: number) => boolean): number {
  let n = 0;
  for (let y = 0; y < d.height; y++) for (let x = 0; x < d.width; x++) {
    const i = (y * d.width + x) * d.channels;
    if (d.pixels[i] === c[0] && d.pixels[i + 1] === c[1] && d.pixels[i + 2] === c[2] && (region === undefined || region(x, y))) n++;
  }
  return n;
}

test('plotLines draws each series where its data are, plus axes, tick labels, title and legend', () => {
  const red: Rgb = [220, 0, 0];
  const blue: Rgb = [0, 0, 220];
  const up = Array.from({ length: 101 }, (_, i): [number, number] => [i / 10, i / 10]);
  const down = up.map(([x, y]): [number, number] => [x, 10 - y]);
  const png = plotLines([{ name: 'train loss', points: up, color: red }, { name: 'valid Dice', points: down, color: blue }],
    { width: 600, height: 400, title: 'Training', xLabel: 'iteration', yLabel: 'value', xMin: 0, xMax: 10, yMin: 0, yMax: 10 });
  const d = decodePng(png);
  assert.deepEqual([d.width, d.height, d.channels], [600, 400, 3]);
  const cx = 330;
  const cy = 210;
  const upperLeft = (x: number, y: number): boolean => x < cx - 40 && y < cy - 40;
  const lowerLeft = (x: number, y: number): boolean => x < cx - 40 && y > cy + 40;
  const lowerRight = (x: number, y: number): boolean => x > cx + 40 && y > cy + 40;
  assert.ok(countColour(d, red) > 500, 'red line drawn');
  assert.ok(countColour(d, red, lowerLeft) > 100);
  assert.equal(countColour(d, red, upperLeft), 0);
  assert.equal(countColour(d, red, lowerRight), 0);
  assert.ok(countColour(d, blue, upperLeft) > 100);
  assert.ok(countColour(d, blue, lowerRight) > 100);
  assert.equal(countColour(d, blue, lowerLeft), 0);
  const ink: Rgb = [30, 30, 30];
  assert.ok(countColour(d, ink, (_x, y) => y < 30) > 50, 'title text');
  assert.ok(countColour(d, ink, (_x, y) => y > 360) > 100, 'x tick labels and axis label');
  assert.ok(countColour(d, ink, (x) => x < 30) > 30, 'rotated y label');
});

test('non-finite points break the line; log axis drops y <= 0; degenerate data still render', () => {
  const green: Rgb = [0, 200, 0];
  const pts: Array<[number, number]> = Array.from({ length: 200 }, (_, i) => [i, 5]);
  for (let i = 80; i < 120; i++) pts[i] = [i, Number.NaN];
  const img = renderLines([{ name: 'g', points: pts, color: green }], { width: 400, height: 300, xMin: 0, xMax: 199 });
  const d = { width: img.width, height: img.height, channels: 3, pixels: img.data };
  // Plot spans roughly x in [~40, 380]; the gap covers 40% of the data range in the middle.
  assert.equal(countColour(d, green, (x, y) => x > 200 && x < 230 && y > 100), 0);
  assert.ok(countColour(d, green, (x, y) => x < 150 && y > 100) > 50);
  const logImg = renderLines([{ name: 'lr', points: [[0, 0], [1, 1e-3], [2, 1e-4], [3, -1]] }], { logY: true });
  assert.equal(logImg.data.length, 800 * 500 * 3);
  decodePng(plotLines([], {}));
  decodePng(plotLines([{ name: 'flat', points: [[1, 2]] }], { title: 'one point' }));
  assert.throws(() => plotLines([], { width: 50 }), (e: unknown) => e instanceof MisfmError && /width and height/.test(e.message));
});

test('dense series keep their full vertical extent in every pixel column (min/max decimation)', () => {
  const c: Rgb = [200, 0, 200];
  // 20000 points at 5 with spikes to 0 (every 7th) and 10 (every 11th), about 50 points per pixel
  // column: keeping only each column's first and last point would draw a flat line at 5.
  const pts = Array.from({ length: 20000 }, (_, i): [number, number] => [i, i % 7 === 3 ? 0 : i % 11 === 5 ? 10 : 5]);
  const img = renderLines([{ name: 'saw', points: pts, color: c }], { width: 400, height: 300, xMin: 0, xMax: 19999, yMin: 0, yMax: 10 });
  const d = { width: img.width, height: img.height, channels: 3, pixels: img.data };
  let columns = 0;
  for (let x = 0; x < d.width; x++) {
    const ys: number[] = [];
    for (let y = 0; y < d.height; y++) {
      const i = (y * d.width + x) * 3;
      if (d.pixels[i] === c[0] && d.pixels[i + 1] === c[1] && d.pixels[i + 2] === c[2]) ys.push(y);
    }
    if (ys.length === 0) continue;
    columns++;
    // Outside the legend, each column spans (nearly) the whole plot height.
    if (x < 250) assert.ok(Math.max(...ys) - Math.min(...ys) > 200, `column ${x}`);
  }
  assert.ok(columns > 300, `${columns} columns drawn`);
});
