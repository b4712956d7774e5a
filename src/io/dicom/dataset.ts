/**
 * A small, complete DICOM dataset codec for the objects misfm writes itself (DICOM-SEG, test
 * series): explicit VR little endian with nested sequences, Part-10 files with a file meta header.
 *
 * The image reader keeps its own fast header scan (../image/dicom-header.ts), which skips
 * sequences; this module is for reading and writing whole datasets, sequences included. Reading
 * supports explicit and implicit VR little endian (implicit VR values come back with VR 'UN' and
 * raw bytes, except sequences of undefined length, which are parsed).
 */

/** A data element value: text (strings, DS/IS as text too), numbers (binary VRs), raw bytes, or items. */
export type DicomValue = string | readonly number[] | Uint8Array | readonly DicomItem[];

export interface DicomElement { tag: number; vr: string; value: DicomValue }

/** A dataset (or a sequence item): elements by tag. */
export type DicomItem = Map<number, DicomElement>;

/** Group/element as one number: tag(0x0020, 0x0032). */
export const tag = (group: number, element: number): number => ((group << 16) | element) >>> 0;

const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const TEXT_VRS = new Set(['AE', 'AS', 'CS', 'DA', 'DS', 'DT', 'IS', 'LO', 'LT', 'PN', 'SH', 'ST', 'TM', 'UC', 'UI', 'UR', 'UT']);
const UNDEFINED = 0xffffffff;

/** Explicit VR Little Endian. */
export const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const IMPLICIT_LE = '1.2.840.10008.1.2';

/** Build a dataset from [tag, vr, value] triples. */
export function dataset(elements: ReadonlyArray<readonly [number, string, DicomValue]>): DicomItem {
  const m: DicomItem = new Map();
  for (const [t, vr, value] of elements) m.set(t, { tag: t, vr, value });
  return m;
}

function encodeValue(e: DicomElement): Buffer {
  const { vr, value } = e;
  if (vr === 'SQ') {
    const items = value as readonly DicomItem[];
    return Buffer.concat(items.map((it) => {
      const body = encodeItems(it);
      const h = Buffer.alloc(8);
      h.writeUInt16LE(0xfffe, 0); h.writeUInt16LE(0xe000, 2); h.writeUInt32LE(body.length, 4);
      return Buffer.concat([h, body]);
    }));
  }
  if (TEXT_VRS.has(vr)) {
    if (typeof value !== 'string') throw new Error(`DICOM element ${e.tag.toString(16)} (${vr}) needs a string value`);
    const b = Buffer.from(value, 'latin1');
    if (b.length % 2 === 0) return b;
    return Buffer.concat([b, Buffer.from(vr === 'UI' ? [0] : [0x20])]);
  }
  if (value instanceof Uint8Array) {
    const b = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    return b.length % 2 === 0 ? b : Buffer.concat([b, Buffer.alloc(1)]);
  }
  const nums = value as readonly number[];
  const width: Record<string, number> = { US: 2, SS: 2, UL: 4, SL: 4, AT: 4, FL: 4, FD: 8 };
  const w = width[vr];
  if (w === undefined) throw new Error(`DICOM element ${e.tag.toString(16)}: cannot encode numbers as ${vr}`);
  const b = Buffer.alloc(w * nums.length);
  nums.forEach((x, i) => {
    const o = i * w;
    switch (vr) {
      case 'US': b.writeUInt16LE(x, o); break;
      case 'SS': b.writeInt16LE(x, o); break;
      case 'UL': b.writeUInt32LE(x, o); break;
      case 'SL': b.writeInt32LE(x, o); break;
      case 'AT': b.writeUInt16LE(x >>> 16, o); b.writeUInt16LE(x & 0xffff, o + 2); break;
      case 'FL': b.writeFloatLE(x, o); break;
      default: b.writeDoubleLE(x, o);
    }
  });
  return b;
}

function encodeElement(e: DicomElement): Buffer {
  const v = encodeValue(e);
  const long = LONG_VRS.has(e.vr);
  const h = Buffer.alloc(long ? 12 : 8);
  h.writeUInt16LE(e.tag >>> 16, 0); h.writeUInt16LE(e.tag & 0xffff, 2); h.write(e.vr, 4, 'latin1');
  if (long) h.writeUInt32LE(v.length, 8);
  else {
    if (v.length > 0xffff) throw new Error(`DICOM element ${e.tag.toString(16)} (${e.vr}) is too long for its VR`);
    h.writeUInt16LE(v.length, 6);
  }
  return Buffer.concat([h, v]);
}

/** Elements of a dataset in ascending tag order, explicit VR little endian (defined lengths). */
export function encodeItems(ds: DicomItem): Buffer {
  return Buffer.concat([...ds.values()].sort((a, b) => a.tag - b.tag).map(encodeElement));
}

/** A Part-10 file: preamble, 'DICM', file meta (group 2) and the dataset in explicit VR LE. */
export function encodePart10(ds: DicomItem, implementationUid: string, implementationVersion: string): Buffer {
  const sopClass = ds.get(tag(0x0008, 0x0016))?.value, sopInstance = ds.get(tag(0x0008, 0x0018))?.value;
  if (typeof sopClass !== 'string' || typeof sopInstance !== 'string') throw new Error('a DICOM file needs SOPClassUID and SOPInstanceUID');
  const metaBody = encodeItems(dataset([
    [tag(0x0002, 0x0001), 'OB', new Uint8Array([0, 1])],
    [tag(0x0002, 0x0002), 'UI', sopClass],
    [tag(0x0002, 0x0003), 'UI', sopInstance],
    [tag(0x0002, 0x0010), 'UI', EXPLICIT_LE],
    [tag(0x0002, 0x0012), 'UI', implementationUid],
    [tag(0x0002, 0x0013), 'SH', implementationVersion.slice(0, 16)],
  ]));
  const groupLength = encodeElement({ tag: tag(0x0002, 0x0000), vr: 'UL', value: [metaBody.length] });
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'latin1'), groupLength, metaBody, encodeItems(ds)]);
}

interface Cursor { buf: Uint8Array; dv: DataView; pos: number }

function readHeader(c: Cursor, explicit: boolean): { tag: number; vr: string; len: number } {
  if (c.pos + 8 > c.buf.length) throw new Error('file ends inside a DICOM element header');
  const g = c.dv.getUint16(c.pos, true), el = c.dv.getUint16(c.pos + 2, true);
  const t = tag(g, el);
  if (explicit && g !== 0xfffe) {
    const vr = String.fromCharCode(c.buf[c.pos + 4]!, c.buf[c.pos + 5]!);
    if (LONG_VRS.has(vr)) {
      if (c.pos + 12 > c.buf.length) throw new Error('file ends inside a DICOM element header');
      const len = c.dv.getUint32(c.pos + 8, true);
      c.pos += 12;
      return { tag: t, vr, len };
    }
    const len = c.dv.getUint16(c.pos + 6, true);
    c.pos += 8;
    return { tag: t, vr, len };
  }
  const len = c.dv.getUint32(c.pos + 4, true);
  c.pos += 8;
  return { tag: t, vr: 'UN', len };
}

function decodeValue(vr: string, bytes: Uint8Array): DicomValue {
  if (TEXT_VRS.has(vr)) {
    let s = '';
    for (const b of bytes) s += String.fromCharCode(b);
    return s.replace(/[\0 ]+$/, '');
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const width: Record<string, number> = { US: 2, SS: 2, UL: 4, SL: 4, AT: 4, FL: 4, FD: 8 };
  const w = width[vr];
  if (w === undefined) return bytes;
  const out: number[] = [];
  for (let o = 0; o + w <= bytes.length; o += w) {
    switch (vr) {
      case 'US': out.push(dv.getUint16(o, true)); break;
      case 'SS': out.push(dv.getInt16(o, true)); break;
      case 'UL': out.push(dv.getUint32(o, true)); break;
      case 'SL': out.push(dv.getInt32(o, true)); break;
      case 'AT': out.push(tag(dv.getUint16(o, true), dv.getUint16(o + 2, true))); break;
      case 'FL': out.push(dv.getFloat32(o, true)); break;
      default: out.push(dv.getFloat64(o, true));
    }
  }
  return out;
}

/** Items of a sequence value, from `c.pos` up to `end` (or its delimiter when undefined). */
function readSequence(c: Cursor, len: number, explicit: boolean): DicomItem[] {
  const items: DicomItem[] = [];
  const end = len === UNDEFINED ? Infinity : c.pos + len;
  while (c.pos < end) {
    const h = readHeader(c, false);
    if (h.tag === tag(0xfffe, 0xe0dd)) break;
    if (h.tag !== tag(0xfffe, 0xe000)) throw new Error(`unexpected tag ${h.tag.toString(16)} inside a sequence`);
    items.push(readItems(c, h.len === UNDEFINED ? Infinity : c.pos + h.len, explicit));
  }
  return items;
}

function readItems(c: Cursor, end: number, explicit: boolean): DicomItem {
  const ds: DicomItem = new Map();
  while (c.pos < Math.min(end, c.buf.length)) {
    if (end === Infinity && c.pos + 8 > c.buf.length) break;
    const h = readHeader(c, explicit);
    if (h.tag === tag(0xfffe, 0xe00d)) break;
    if (h.vr === 'SQ' || (h.len === UNDEFINED && h.tag !== tag(0x7fe0, 0x0010))) {
      ds.set(h.tag, { tag: h.tag, vr: 'SQ', value: readSequence(c, h.len, explicit) });
      continue;
    }
    if (h.len === UNDEFINED) throw new Error('encapsulated (compressed) pixel data is not supported here');
    if (c.pos + h.len > c.buf.length) throw new Error(`file ends inside element ${h.tag.toString(16)}`);
    const bytes = c.buf.subarray(c.pos, c.pos + h.len);
    c.pos += h.len;
    ds.set(h.tag, { tag: h.tag, vr: h.vr, value: decodeValue(h.vr, bytes) });
  }
  return ds;
}

/** Parse a whole Part-10 file (or a bare explicit-VR dataset). Throws an Error on damaged data. */
export function parseDataset(buf: Uint8Array): { meta: DicomItem; dataset: DicomItem; transferSyntax: string } {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const c: Cursor = { buf, dv, pos: 0 };
  const hasMagic = buf.length >= 132 && String.fromCharCode(...buf.subarray(128, 132)) === 'DICM';
  if (hasMagic) c.pos = 132;
  const meta: DicomItem = new Map();
  while (c.pos + 8 <= buf.length && dv.getUint16(c.pos, true) === 0x0002) {
    const h = readHeader(c, true);
    const bytes = buf.subarray(c.pos, c.pos + h.len);
    c.pos += h.len;
    meta.set(h.tag, { tag: h.tag, vr: h.vr, value: decodeValue(h.vr, bytes) });
  }
  const ts = typeof meta.get(tag(0x0002, 0x0010))?.value === 'string' ? meta.get(tag(0x0002, 0x0010))!.value as string : EXPLICIT_LE;
  if (ts !== EXPLICIT_LE && ts !== IMPLICIT_LE) throw new Error(`transfer syntax ${ts} is not supported by this reader (explicit or implicit VR little endian only)`);
  return { meta, dataset: readItems(c, Infinity, ts === EXPLICIT_LE), transferSyntax: ts };
}

/** A text value ('' when absent). */
export function getString(ds: DicomItem, t: number): string {
  const v = ds.get(t)?.value;
  return typeof v === 'string' ? v.trim() : '';
}

/** Numbers of a binary element, or of a DS/IS text element ([] when absent). */
export function getNumbers(ds: DicomItem, t: number): number[] {
  const v = ds.get(t)?.value;
  if (typeof v === 'string') return v.split('\\').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  if (Array.isArray(v) && (v.length === 0 || typeof v[0] === 'number')) return [...(v as number[])];
  return [];
}

/** Items of a sequence ([] when absent). */
export function getItems(ds: DicomItem, t: number): DicomItem[] {
  const v = ds.get(t)?.value;
  return Array.isArray(v) && (v.length === 0 || v[0] instanceof Map) ? [...(v as DicomItem[])] : [];
}

/** Raw bytes of an element (undefined when absent or not binary). */
export function getBytes(ds: DicomItem, t: number): Uint8Array | undefined {
  const v = ds.get(t)?.value;
  return v instanceof Uint8Array ? v : undefined;
}

/** A DS value: decimal string of at most 16 characters, as DICOM requires. */
export function ds(x: number): string {
  if (!Number.isFinite(x)) throw new Error(`DS value ${x} is not finite`);
  for (let p = 16; p >= 1; p--) {
    let s = Number(x.toPrecision(p)).toString();
    if (s.includes('e')) s = x.toExponential(Math.max(0, p - 6)).replace('e+', 'e');
    if (s.length <= 16) return s;
  }
  return x.toExponential(6);
}

/** Several DS values, backslash-separated. */
export const dsList = (xs: readonly number[]): string => xs.map(ds).join('\\');
