/**
 * Line charts as PNG without any graphics dependency: training loss, validation Dice, learning
 * rate over iterations. A small RGB raster with lines, axes, numbered ticks, grid, title, axis
 * labels and a legend, drawn with a built-in 5x7 bitmap font.
 */
import { MisfmError } from './errors.js';
import { encodePng, type RasterImage } from './png.js';

/** An RGB colour, 0..255 per channel. */
export type Rgb = readonly [number, number, number];

/** One line on the chart. Points with a non-finite coordinate break the line. */
export interface PlotSeries {
  name: string;
  points: ReadonlyArray<readonly [number, number]>;
  /** Default: the next palette colour. */
  color?: Rgb;
}

/** Chart options. Axis limits default to the data range rounded out to tick positions. */
export interface PlotOptions {
  width?: number;
  height?: number;
  title?: string;
  xLabel?: string;
  yLabel?: string;
  xMin?: number;
  xMax?: number;
  yMin?: number;
  yMax?: number;
  /** Logarithmic y axis (decade ticks); points with y <= 0 are dropped. */
  logY?: boolean;
}

/** Distinct, colour-blind-friendly-ish defaults (the usual 10-colour categorical set). */
export const PALETTE: readonly Rgb[] = [
  [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
  [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
];

// 5x7 glyphs for ASCII 32..126, 7 rows each, a row is a 5-bit mask (bit 4 = left pixel) written
// as one base-32 digit. Drawn for this project.
const FONT =
  '00000004444404aaa0000aavavaa4fke5u4op248j3cik8lid4440000' +
  '2488842842224804lel40044v4400000c48000v00000000cc01248g0' +
  'ehjlphe4c4444eeh1248vv2421he26aiv22vgu11he68guhhev124888' +
  'ehhehheehhf12c0cc0cc00cc0c48248g84200v0v008421248eh12404' +
  'eh1dlleehhvhhhuhhuhhuehggghesihhhisvgguggvvggugggehgnhhf' +
  'hhhvhhhe44444e72222ichikokihggggggvhrllhhhhhpljhhehhhhhe' +
  'uhhugggehhhliduhhukihfgge11uv444444hhhhhhehhhhha4hhhllla' +
  'hha4ahhhha4444v1248gve88888e0g84210e22222e4ah0000000000v' +
  '842000000e1fhfggmphhu00egghe11djhhf00ehvge698s88800fhf1e' +
  'ggmphhh40c444e20622icggikokic44444e00qllhh00mphhh00ehhhe' +
  '00uhugg00djf1100mpggg00ege1u88s889600hhhjd00hhha400hhlla' +
  '00ha4ah00hhf1e00v248v244844244444448442448008l200';

const GLYPH_W = 5;
const GLYPH_H = 7;
const ADVANCE = 6;

/** Row mask of `ch` (unknown characters draw as a box). */
function glyphRow(ch: string, row: number): number {
  const code = ch.charCodeAt(0);
  if (code < 32 || code > 126) return row === 0 || row === GLYPH_H - 1 ? 31 : 17;
  return parseInt(FONT[(code - 32) * GLYPH_H + row] ?? '0', 32);
}

/** Width in pixels of `text` drawn at `scale`. */
function textWidth(text: string, scale: number): number {
  return text.length === 0 ? 0 : (text.length * ADVANCE - 1) * scale;
}

interface Rect { x0: number; y0: number; x1: number; y1: number }

/** An RGB raster with the few drawing primitives a chart needs. */
class Canvas {
  readonly data: Uint8Array;
  constructor(readonly width: number, readonly height: number) {
    this.data = new Uint8Array(width * height * 3).fill(255);
  }

  set(x: number, y: number, c: Rgb, clip?: Rect): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    if (clip !== undefined && (x < clip.x0 || x > clip.x1 || y < clip.y0 || y > clip.y1)) return;
    const i = (y * this.width + x) * 3;
    this.data[i] = c[0];
    this.data[i + 1] = c[1];
    this.data[i + 2] = c[2];
  }

  fillRect(x: number, y: number, w: number, h: number, c: Rgb, clip?: Rect): void {
    for (let yy = y; yy < y + h; yy++) for (let xx = x; xx < x + w; xx++) this.set(xx, yy, c, clip);
  }

  /** Bresenham line stamped with a `thick` x `thick` square; endpoints in pixels. */
  line(xa: number, ya: number, xb: number, yb: number, c: Rgb, thick: number, clip?: Rect): void {
    let x = Math.round(xa);
    let y = Math.round(ya);
    const x1 = Math.round(xb);
    const y1 = Math.round(yb);
    const dx = Math.abs(x1 - x);
    const dy = -Math.abs(y1 - y);
    const sx = x < x1 ? 1 : -1;
    const sy = y < y1 ? 1 : -1;
    const off = Math.floor((thick - 1) / 2);
    let err = dx + dy;
    for (;;) {
      this.fillRect(x - off, y - off, thick, thick, c, clip);
      if (x === x1 && y === y1) break;
      const e2 = 2 * err;
      if (e2 >= dy) { err += dy; x += sx; }
      if (e2 <= dx) { err += dx; y += sy; }
    }
  }

  /** Horizontal text with its top-left corner at (x, y). */
  text(x: number, y: number, s: string, c: Rgb, scale = 1): void {
    for (let k = 0; k < s.length; k++) {
      const ox = x + k * ADVANCE * scale;
      for (let r = 0; r < GLYPH_H; r++) {
        const bits = glyphRow(s[k] as string, r);
        for (let col = 0; col < GLYPH_W; col++) {
          if (bits & (1 << (GLYPH_W - 1 - col))) this.fillRect(ox + col * scale, y + r * scale, scale, scale, c);
        }
      }
    }
  }

  /** Text rotated 90 degrees counter-clockwise (reads bottom to top), starting at (x, y) going up. */
  textUp(x: number, y: number, s: string, c: Rgb): void {
    for (let k = 0; k < s.length; k++) {
      const oy = y - k * ADVANCE;
      for (let r = 0; r < GLYPH_H; r++) {
        const bits = glyphRow(s[k] as string, r);
        for (let col = 0; col < GLYPH_W; col++) {
          if (bits & (1 << (GLYPH_W - 1 - col))) this.set(x + r, oy - col, c);
        }
      }
    }
  }
}

/** Clip segment a-b to `r` (Liang-Barsky); undefined when it lies outside. */
function clipSegment(ax: number, ay: number, bx: number, by: number, r: Rect): [number, number, number, number] | undefined {
  let t0 = 0;
  let t1 = 1;
  const dx = bx - ax;
  const dy = by - ay;
  const edges: Array<[number, number]> = [[-dx, ax - r.x0], [dx, r.x1 - ax], [-dy, ay - r.y0], [dy, r.y1 - ay]];
  for (const [p, q] of edges) {
    if (p === 0) {
      if (q < 0) return undefined;
    } else {
      const t = q / p;
      if (p < 0) { if (t > t1) return undefined; if (t > t0) t0 = t; } else { if (t < t0) return undefined; if (t < t1) t1 = t; }
    }
  }
  return [ax + t0 * dx, ay + t0 * dy, ax + t1 * dx, ay + t1 * dy];
}

/** Tick positions at 1/2/5 x 10^k steps covering [lo, hi], about `target` of them. */
function niceTicks(lo: number, hi: number, target: number, outward = false): { ticks: number[]; step: number } {
  const raw = (hi - lo) / Math.max(1, target - 1);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  const step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
  const ticks: number[] = [];
  // Rounding to the step's decimals keeps labels free of 0.30000000000000004.
  // outward: extend to the tick at or beyond each end, so auto-scaled data never touch the frame.
  const first = outward ? Math.floor(lo / step + 1e-9) : Math.ceil(lo / step - 1e-9);
  const last = outward ? Math.ceil(hi / step - 1e-9) : Math.floor(hi / step + 1e-9);
  for (let i = first; i <= last; i++) ticks.push(Number((i * step).toPrecision(12)));
  return { ticks, step };
}

function tickLabel(v: number, step: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || step < 1e-4) return v.toExponential(Math.max(0, Math.min(3, Math.round(-Math.log10(step / a))))).replace('e+', 'e');
  const decimals = Math.max(0, Math.min(8, -Math.floor(Math.log10(step) + 1e-9)));
  let s = v.toFixed(decimals);
  // 2.5-style steps need one more digit than log10 suggests.
  if (Math.abs(Number(s) - v) > step * 1e-6) s = v.toFixed(decimals + 1);
  return s;
}

/** Label for log10 value t: plain numbers near 1, 1eN for whole decades far from it. */
function logLabel(t: number): string {
  const v = 10 ** t;
  if (Number.isInteger(t) && (t < -3 || t > 4)) return `1e${t}`;
  return String(Number(v.toPrecision(3)));
}

/** Data extent of finite values, or undefined when there are none. */
function extent(values: number[]): [number, number] | undefined {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return lo <= hi ? [lo, hi] : undefined;
}

/** Axis range from data and optional fixed limits; widened when empty or flat. */
function axisRange(values: number[], fixedLo: number | undefined, fixedHi: number | undefined): [number, number, boolean] {
  const e = extent(values) ?? [0, 1];
  let lo = fixedLo ?? e[0];
  let hi = fixedHi ?? e[1];
  if (hi <= lo) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    if (fixedLo === undefined) lo -= pad;
    if (fixedHi === undefined || hi <= lo) hi = lo + 2 * pad;
  }
  return [lo, hi, fixedLo === undefined && fixedHi === undefined];
}

/**
 * Pixel-space polyline as flat [x0, y0, x1, y1, ...] with NaN pairs for breaks (non-finite
 * points). Runs of points in the same pixel column are reduced to first, min, max, last: the
 * drawing is the same, but a 100k-iteration loss curve costs a few thousand segments. Works on
 * plain loops without per-point allocation, which dominated the time for long series.
 */
function decimate(points: PlotSeries['points'], mapX: (x: number) => number, mapY: (y: number) => number): Float64Array {
  const out: number[] = [];
  // Current run: first, lowest, highest and last point (pixel coordinates) and run length.
  let n = 0;
  let col = 0;
  let fx = 0, fy = 0, lox = 0, loy = 0, hix = 0, hiy = 0, lx = 0, ly = 0, loFirst = true;
  const flush = (): void => {
    if (n === 0) return;
    out.push(fx, fy);
    if (n >= 3) {
      // Keep min and max in their original order so the vertical stroke is drawn the same way.
      if (loFirst) out.push(lox, loy, hix, hiy); else out.push(hix, hiy, lox, loy);
    }
    if (n >= 2) out.push(lx, ly);
    n = 0;
  };
  for (let i = 0; i < points.length; i++) {
    const p = points[i] as readonly [number, number];
    const x = mapX(p[0]);
    const y = mapY(p[1]);
    if (!Number.isFinite(x) || !Number.isFinite(y)) { flush(); out.push(NaN, NaN); continue; }
    const c = Math.round(x);
    if (n > 0 && c !== col) flush();
    if (n === 0) {
      col = c; fx = lox = hix = x; fy = loy = hiy = y; loFirst = true;
    } else {
      if (y < loy) { lox = x; loy = y; loFirst = false; }
      if (y > hiy) { hix = x; hiy = y; loFirst = true; }
    }
    lx = x; ly = y;
    n++;
  }
  flush();
  return Float64Array.from(out);
}

/** [smallest, largest] finite value of coordinate `k` over all series after `map`; [] if none. */
function seriesValues(series: readonly PlotSeries[], k: 0 | 1, map: (v: number) => number): number[] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of series) {
    for (let i = 0; i < s.points.length; i++) {
      const v = map((s.points[i] as readonly [number, number])[k]);
      if (!Number.isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  return lo <= hi ? [lo, hi] : [];
}

/** Render a line chart to an RGB raster (see `plotLines`). */
export function renderLines(series: readonly PlotSeries[], options: PlotOptions = {}): RasterImage {
  const width = options.width ?? 800;
  const height = options.height ?? 500;
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 160 || height < 120 || width > 8192 || height > 8192) {
    throw new MisfmError('ARGUMENT', `plotLines: width and height must be integers in 160..8192 x 120..8192, got ${width}x${height}`);
  }
  const logY = options.logY === true;
  const ty = (y: number): number => (logY ? (y > 0 ? Math.log10(y) : NaN) : y);
  const xs = seriesValues(series, 0, (v) => v);
  const ys = seriesValues(series, 1, ty);

  let [xLo, xHi, xAuto] = axisRange(xs, options.xMin, options.xMax);
  let [yLo, yHi, yAuto] = axisRange(ys, options.yMin === undefined ? undefined : ty(options.yMin), options.yMax === undefined ? undefined : ty(options.yMax));
  const xt = niceTicks(xLo, xHi, Math.max(3, Math.floor(width / 110)), xAuto);
  // Log axes: ticks on whole decades when the range allows, else fall back to linear ticks of the exponent.
  const yt = logY && yHi - yLo >= 1 ? niceTicks(Math.floor(yLo), Math.ceil(yHi), Math.max(3, Math.min(Math.ceil(yHi) - Math.floor(yLo) + 1, Math.floor(height / 50))))
    : niceTicks(yLo, yHi, Math.max(3, Math.floor(height / 60)), yAuto);
  if (logY) yt.step = Math.max(1, Math.round(yt.step));
  if (xAuto) { xLo = Math.min(xLo, xt.ticks[0] ?? xLo); xHi = Math.max(xHi, xt.ticks[xt.ticks.length - 1] ?? xHi); }
  if (yAuto) { yLo = Math.min(yLo, yt.ticks[0] ?? yLo); yHi = Math.max(yHi, yt.ticks[yt.ticks.length - 1] ?? yHi); }
  const yTickText = yt.ticks.filter((t) => t >= yLo - 1e-12 && t <= yHi + 1e-12)
    .map((t) => ({ t, s: logY ? logLabel(t) : tickLabel(t, yt.step) }));
  const xTickText = xt.ticks.filter((t) => t >= xLo - 1e-12 && t <= xHi + 1e-12).map((t) => ({ t, s: tickLabel(t, xt.step) }));

  const ink: Rgb = [30, 30, 30];
  const grid: Rgb = [228, 228, 228];
  const maxYLabel = Math.max(0, ...yTickText.map((l) => textWidth(l.s, 1)));
  const left = 12 + (options.yLabel ? GLYPH_H + 10 : 0) + maxYLabel + 8;
  const top = options.title ? 14 + 2 * GLYPH_H + 10 : 16;
  const bottom = height - (12 + GLYPH_H + 8 + (options.xLabel ? GLYPH_H + 10 : 0));
  const right = width - 20;
  const plot: Rect = { x0: left, y0: top, x1: right, y1: bottom };
  const px = (x: number): number => left + ((x - xLo) / (xHi - xLo)) * (right - left);
  const py = (y: number): number => bottom - ((y - yLo) / (yHi - yLo)) * (bottom - top);

  const cv = new Canvas(width, height);
  for (const { t } of xTickText) cv.line(px(t), top, px(t), bottom, grid, 1);
  for (const { t } of yTickText) cv.line(left, py(t), right, py(t), grid, 1);
  cv.line(left, top, right, top, ink, 1);
  cv.line(left, bottom, right, bottom, ink, 1);
  cv.line(left, top, left, bottom, ink, 1);
  cv.line(right, top, right, bottom, ink, 1);
  for (const { t, s } of xTickText) {
    cv.line(px(t), bottom, px(t), bottom + 4, ink, 1);
    cv.text(Math.round(px(t) - textWidth(s, 1) / 2), bottom + 8, s, ink);
  }
  for (const { t, s } of yTickText) {
    cv.line(left - 4, py(t), left, py(t), ink, 1);
    cv.text(left - 7 - textWidth(s, 1), Math.round(py(t) - GLYPH_H / 2), s, ink);
  }
  if (options.title) cv.text(Math.round((left + right - textWidth(options.title, 2)) / 2), 12, options.title, ink, 2);
  if (options.xLabel) cv.text(Math.round((left + right - textWidth(options.xLabel, 1)) / 2), height - 12 - GLYPH_H, options.xLabel, ink);
  if (options.yLabel) cv.textUp(12, Math.round((top + bottom + textWidth(options.yLabel, 1)) / 2), options.yLabel, ink);

  series.forEach((s, si) => {
    const color = s.color ?? (PALETTE[si % PALETTE.length] as Rgb);
    const marks = s.points.length <= 50;
    const xy = decimate(s.points, px, (y) => py(ty(y)));
    let prevX = NaN;
    let prevY = NaN;
    for (let i = 0; i < xy.length; i += 2) {
      const x = xy[i] as number;
      const y = xy[i + 1] as number;
      if (!Number.isNaN(x) && !Number.isNaN(prevX)) {
        const seg = clipSegment(prevX, prevY, x, y, plot);
        if (seg !== undefined) cv.line(seg[0], seg[1], seg[2], seg[3], color, 2, plot);
      }
      if (marks && !Number.isNaN(x)) cv.fillRect(Math.round(x) - 2, Math.round(y) - 2, 5, 5, color, plot);
      prevX = x;
      prevY = y;
    }
  });

  if (series.length > 0) {
    const lw = Math.max(...series.map((s) => textWidth(s.name, 1))) + 36;
    const lh = series.length * 14 + 8;
    const lx = right - lw - 8;
    const ly = top + 8;
    cv.fillRect(lx, ly, lw, lh, [255, 255, 255]);
    cv.line(lx, ly, lx + lw, ly, [160, 160, 160], 1);
    cv.line(lx, ly + lh, lx + lw, ly + lh, [160, 160, 160], 1);
    cv.line(lx, ly, lx, ly + lh, [160, 160, 160], 1);
    cv.line(lx + lw, ly, lx + lw, ly + lh, [160, 160, 160], 1);
    series.forEach((s, si) => {
      const color = s.color ?? (PALETTE[si % PALETTE.length] as Rgb);
      const yy = ly + 8 + si * 14;
      cv.line(lx + 6, yy + 3, lx + 24, yy + 3, color, 3);
      cv.text(lx + 30, yy, s.name, ink);
    });
  }
  return { width, height, channels: 3, data: cv.data };
}

/**
 * Draw a line chart and return PNG bytes: one line per series (palette colours unless given),
 * numbered ticks, grid, optional title and axis labels, and a legend in the top-right corner.
 */
export function plotLines(series: readonly PlotSeries[], options: PlotOptions = {}): Uint8Array {
  return encodePng(renderLines(series, options));
}
