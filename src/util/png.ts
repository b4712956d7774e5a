/**
 * Minimal PNG encoder (8-bit RGB or RGBA, non-interlaced), enough for charts and preview slices.
 * Rows use the 'Up' filter, which suits plots (large flat areas) and costs nothing to compute;
 * compression is zlib from node.
 */
import { deflateSync } from 'node:zlib';
import { MisfmError } from './errors.js';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO 3309, as used by PNG and zip) of `bytes`. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = (CRC_TABLE[(c ^ (bytes[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return ~c >>> 0;
}

/** An 8-bit image: `data` holds height rows of width * channels bytes, top row first. */
export interface RasterImage {
  width: number;
  height: number;
  /** 3 = RGB, 4 = RGBA. */
  channels: 3 | 4;
  data: Uint8Array;
}

function chunk(type: string, payload: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.write(type, 4, 'latin1');
  out.set(payload, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + payload.length)), 8 + payload.length);
  return out;
}

/** Encode an image as PNG bytes. Throws a MisfmError when the size and data length disagree. */
export function encodePng(img: RasterImage): Uint8Array {
  const { width, height, channels, data } = img;
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1 || width > 0x7fffffff || height > 0x7fffffff) {
    throw new MisfmError('ARGUMENT', `encodePng: width and height must be positive integers, got ${width}x${height}`);
  }
  if (channels !== 3 && channels !== 4) throw new MisfmError('ARGUMENT', `encodePng: channels must be 3 or 4, got ${String(channels)}`);
  const stride = width * channels;
  if (data.length !== stride * height) {
    throw new MisfmError('ARGUMENT', `encodePng: ${width}x${height}x${channels} needs ${stride * height} bytes, got ${data.length}`);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = channels === 4 ? 6 : 2; // colour type: RGBA or RGB
  ihdr[10] = 0; // deflate
  ihdr[11] = 0; // adaptive filtering
  ihdr[12] = 0; // no interlace
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    const o = y * (stride + 1);
    const row = y * stride;
    if (y === 0) {
      raw[o] = 0; // None
      raw.set(data.subarray(row, row + stride), o + 1);
    } else {
      raw[o] = 2; // Up: difference to the pixel above, mod 256
      for (let i = 0; i < stride; i++) raw[o + 1 + i] = ((data[row + i] as number) - (data[row - stride + i] as number)) & 0xff;
    }
  }
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', new Uint8Array(0))]);
}
