import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkNiftiGeometry } from '../../src/io/image/nifti-geometry.js';

/** A NIfTI-1 header with the given geometry fields, in either byte order. */
function header(o: { sform: number; qform: number; pixdim: number[]; srow?: number[]; le?: boolean; magic?: string }): Buffer {
  const h = Buffer.alloc(348);
  const le = o.le ?? true;
  const f = (v: number, at: number): number => (le ? h.writeFloatLE(v, at) : h.writeFloatBE(v, at));
  const s = (v: number, at: number): number => (le ? h.writeInt16LE(v, at) : h.writeInt16BE(v, at));
  if (le) h.writeInt32LE(348, 0); else h.writeInt32BE(348, 0);
  o.pixdim.forEach((p, i) => f(p, 80 + 4 * i));
  s(o.qform, 252); s(o.sform, 254);
  (o.srow ?? []).forEach((v, i) => f(v, 280 + 4 * i));
  h.write(o.magic ?? 'n+1\0', 344, 'latin1');
  return h;
}

test('usable geometries pass untouched; each degenerate one names its problem and the fallback, and the patch is what ITK then reads', () => {
  const good = [2, 0, 0, 1, 0, 3, 0, 2, 0, 0, 4, 3];
  assert.equal(checkNiftiGeometry(header({ sform: 1, qform: 0, pixdim: [2, 3, 4], srow: good })), undefined);
  assert.equal(checkNiftiGeometry(header({ sform: 0, qform: 1, pixdim: [1, 1, 1] })), undefined);
  // Analyze 7.5 headers (no magic) keep other fields at these offsets: not judged.
  assert.equal(checkNiftiGeometry(header({ sform: 1, qform: 0, pixdim: [0, 0, 0], magic: '\0\0\0\0' })), undefined);

  for (const le of [true, false]) {
    const z = checkNiftiGeometry(header({ sform: 1, qform: 2, pixdim: [0, 1.5, 0], le }))!;
    assert.equal(z.problem, 'sform (code 1) has an all-zero matrix');
    assert.match(z.used, /^the qform \(code 2\) instead; pixdim \(0, 1\.5, 0\) has zero\/invalid entries, 1 mm used for them/);
    const rd = (at: number): number => (le ? z.header.readFloatLE(at) : z.header.readFloatBE(at));
    const ri = (at: number): number => (le ? z.header.readInt16LE(at) : z.header.readInt16BE(at));
    assert.deepEqual([ri(254), ri(252), rd(80), rd(84), rd(88)], [0, 2, 1, 1.5, 1], `patched header (${le ? 'LE' : 'BE'})`);
  }
  const singular = checkNiftiGeometry(header({ sform: 1, qform: 0, pixdim: [2, 2, 2], srow: [1, 2, 0, 0, 1, 2, 0, 0, 1, 2, 0, 0] }))!;
  assert.equal(singular.problem, 'sform (code 1) has a zero column for axis 2 (zero spacing)');
  const parallel = checkNiftiGeometry(header({ sform: 1, qform: 0, pixdim: [2, 2, 2], srow: [1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0] }))!;
  assert.match(parallel.problem, /singular matrix/);
  assert.match(parallel.used, /^pixdim spacing \(2, 2, 2\) mm with axes as stored and origin 0 instead/);
  const nan = checkNiftiGeometry(header({ sform: 1, qform: 0, pixdim: [1, 1, 1], srow: [NaN, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0] }))!;
  assert.equal(nan.problem, 'sform (code 1) holds non-finite values');
  const pixOnly = checkNiftiGeometry(header({ sform: 1, qform: 0, pixdim: [0, 3, 4], srow: good }))!;
  assert.equal(pixOnly.used, 'the spacing of the sform (code 1), (2, 3, 4) mm');
  assert.deepEqual([pixOnly.header.readFloatLE(80), pixOnly.header.readInt16LE(254)], [2, 1], 'the sform is kept, pixdim filled from it');
});
