/**
 * NIfTI-1 headers whose geometry ITK cannot use. ITK's reader fails without a message on an
 * sform with a degenerate matrix (e.g. sform_code 1 with an all-zero matrix, as some converters
 * write) and silently takes 1 mm for a zero pixdim even where the sform states the spacing.
 * Here the header is checked first; a usable geometry is chosen the way nibabel orders the
 * sources (sform, then qform, then pixdim, then identity) and the header is patched so ITK reads
 * exactly that, with a warning naming the problem and what was used.
 */

/** A header rewrite and why. */
export interface NiftiGeometryFix {
  /** What is wrong with the stored geometry. */
  problem: string;
  /** The geometry read instead, for the warning. */
  used: string;
  /** The patched 348-byte header that makes ITK read what `used` says. */
  header: Buffer;
}

const fmt = (v: readonly number[]): string => `(${v.map((x) => Number(x.toPrecision(6))).join(', ')})`;

/**
 * Check the geometry fields of a NIfTI-1 header (either byte order; other headers: undefined).
 * Returns undefined when the geometry is usable as stored.
 */
export function checkNiftiGeometry(head: Buffer): NiftiGeometryFix | undefined {
  if (head.length < 348) return undefined;
  const le = head.readInt32LE(0) === 348;
  if (!le && head.readInt32BE(0) !== 348) return undefined;
  // Analyze 7.5 headers (no magic) have other fields at these offsets.
  const magic = head.subarray(344, 347).toString('latin1');
  if (magic !== 'n+1' && magic !== 'ni1') return undefined;
  const f32 = (o: number): number => (le ? head.readFloatLE(o) : head.readFloatBE(o));
  const i16 = (o: number): number => (le ? head.readInt16LE(o) : head.readInt16BE(o));
  const pix = [f32(80), f32(84), f32(88)];
  const badPix = pix.map((p) => !Number.isFinite(p) || p === 0);
  const qcode = i16(252), scode = i16(254);
  const srow = Array.from({ length: 12 }, (_, k) => f32(280 + 4 * k));
  const col = (c: number): number[] => [srow[c]!, srow[4 + c]!, srow[8 + c]!];
  const norms = [0, 1, 2].map((c) => Math.hypot(...col(c)));
  const out = Buffer.from(head.subarray(0, 348));
  const setF32 = (o: number, v: number): void => { if (le) out.writeFloatLE(v, o); else out.writeFloatBE(v, o); };
  const setI16 = (o: number, v: number): void => { if (le) out.writeInt16LE(v, o); else out.writeInt16BE(v, o); };
  const pixNote = (): string => (badPix.some((b) => b) ? `; pixdim ${fmt(pix)} has zero/invalid entries, 1 mm used for them` : '');
  const patchPix = (values: number[]): void => values.forEach((v, i) => setF32(80 + 4 * i, v));

  if (scode > 0) {
    const problem = sformProblem(srow, norms);
    if (problem === undefined) {
      if (!badPix.some((b) => b)) return undefined;
      // ITK would take 1 mm from the zero pixdim and only warn; the sform states the spacing.
      patchPix(pix.map((p, i) => (badPix[i] ? norms[i]! : p)));
      return { problem: `pixdim ${fmt(pix)} has zero/invalid entries`, used: `the spacing of the sform (code ${scode}), ${fmt(norms)} mm`, header: out };
    }
    setI16(254, 0);
    patchPix(pix.map((p, i) => (badPix[i] ? 1 : p)));
    const what = `sform (code ${scode}) ${problem}`;
    if (qcode > 0) return { problem: what, used: `the qform (code ${qcode}) instead${pixNote()}`, header: out };
    return {
      problem: what,
      used: badPix.every((b) => b)
        ? 'an identity geometry instead (qform_code 0, pixdim zero): 1 mm spacing, axes as stored, origin 0: check the result'
        : `pixdim spacing ${fmt(pix.map((p, i) => (badPix[i] ? 1 : p)))} mm with axes as stored and origin 0 instead (qform_code 0)${pixNote()}`,
      header: out,
    };
  }
  if (!badPix.some((b) => b)) return undefined;
  patchPix(pix.map((p, i) => (badPix[i] ? 1 : p)));
  return {
    problem: `pixdim ${fmt(pix)} has zero/invalid entries`,
    used: `1 mm for those axes (${qcode > 0 ? `qform code ${qcode}` : 'no sform or qform'}): check the result`,
    header: out,
  };
}

/** Why an sform matrix cannot serve as a geometry, or undefined when it can. */
function sformProblem(srow: number[], norms: number[]): string | undefined {
  if (srow.some((x) => !Number.isFinite(x))) return 'holds non-finite values';
  const m = [0, 1, 2, 4, 5, 6, 8, 9, 10].map((k) => srow[k]!);
  if (m.every((x) => x === 0)) return 'has an all-zero matrix';
  const zero = norms.flatMap((n, i) => (n === 0 ? [i] : []));
  if (zero.length > 0) return `has a zero column for axis ${zero.join(', ')} (zero spacing)`;
  const det = m[0]! * (m[4]! * m[8]! - m[5]! * m[7]!) - m[1]! * (m[3]! * m[8]! - m[5]! * m[6]!) + m[2]! * (m[3]! * m[7]! - m[4]! * m[6]!);
  if (Math.abs(det) <= 1e-6 * norms[0]! * norms[1]! * norms[2]!) return 'has a singular matrix (two axes parallel)';
  return undefined;
}
