/**
 * Progress reporting for long work (training iterations, volumes predicted): done/total, a
 * smoothed rate, ETA and free-form fields (loss, data-wait %). On a TTY it redraws one line at
 * most ~10 times a second; elsewhere (CI logs, files) it prints a plain line every few seconds
 * or nothing, so logs stay small.
 */

/** The bit of a writable stream the reporter needs (process.stderr fits). */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  /** Terminal width; lines are cut to fit when known. */
  columns?: number;
}

/** Extra values shown after the counters, e.g. { loss: 0.4321, 'wait%': 12 }. */
export type ProgressFields = Record<string, number | string>;

/** Options for `Progress`. */
export interface ProgressOptions {
  /** Items to do; 0 or undefined for an open-ended count (no ETA, no percentage). */
  total?: number;
  /** Prefix, e.g. 'train' or 'predict'. */
  label?: string;
  /** Unit name after the rate, e.g. 'it' (default) or 'vol'. */
  unit?: string;
  /** Output stream. Default process.stderr. */
  stream?: ProgressStream;
  /** Milliseconds clock; injectable for tests. Default performance.now. */
  clock?: () => number;
  /** Minimum ms between TTY redraws. Default 100 (10 Hz). */
  ttyIntervalMs?: number;
  /** Ms between plain lines when not a TTY; 0 prints nothing until finish(). Default 30000. */
  plainIntervalMs?: number;
  /** Time constant in seconds of the exponential rate smoothing. Default 10. */
  smoothingSeconds?: number;
}

/** Format seconds as H:MM:SS or M:SS. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const mm = h > 0 ? String(m).padStart(2, '0') : String(m);
  return `${h > 0 ? `${h}:` : ''}${mm}:${String(sec).padStart(2, '0')}`;
}

/** Numbers with 4 significant digits (exponent form for very small or large magnitudes). */
function formatValue(v: number | string): string {
  if (typeof v === 'string') return v;
  if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
  return Number(v.toPrecision(4)).toString();
}

function formatRate(r: number): string {
  if (!Number.isFinite(r) || r <= 0) return '?';
  return r >= 100 ? r.toFixed(0) : r >= 1 ? r.toFixed(2) : r.toPrecision(2);
}

/**
 * A progress reporter. Call `update(done, fields)` or `tick(n, fields)` as work completes and
 * `finish()` at the end (prints the final line with a newline).
 */
export class Progress {
  private readonly total: number;
  private readonly label: string;
  private readonly unit: string;
  private readonly stream: ProgressStream;
  private readonly clock: () => number;
  private readonly tty: boolean;
  private readonly ttyInterval: number;
  private readonly plainInterval: number;
  private readonly tauMs: number;
  private readonly start: number;
  private done = 0;
  private fields: ProgressFields = {};
  private rate: number | undefined;
  private rateDone = 0;
  private rateTime: number;
  private lastDraw = Number.NEGATIVE_INFINITY;
  private lastLen = 0;
  private finished = false;

  constructor(options: ProgressOptions = {}) {
    this.total = options.total ?? 0;
    this.label = options.label ?? '';
    this.unit = options.unit ?? 'it';
    this.stream = options.stream ?? process.stderr;
    this.clock = options.clock ?? (() => performance.now());
    this.tty = this.stream.isTTY === true;
    this.ttyInterval = options.ttyIntervalMs ?? 100;
    this.plainInterval = options.plainIntervalMs ?? 30000;
    this.tauMs = (options.smoothingSeconds ?? 10) * 1000;
    this.start = this.clock();
    this.rateTime = this.start;
    // Plain mode: the first line comes after one interval, not immediately.
    if (!this.tty) this.lastDraw = this.start;
  }

  /** Add `n` finished items (default 1) and optionally merge new field values. */
  tick(n = 1, fields?: ProgressFields): void {
    this.update(this.done + n, fields);
  }

  /** Set the finished count and optionally merge new field values; redraws when due. */
  update(done: number, fields?: ProgressFields): void {
    this.done = done;
    if (fields !== undefined) this.fields = { ...this.fields, ...fields };
    const now = this.clock();
    this.sampleRate(now);
    const interval = this.tty ? this.ttyInterval : this.plainInterval;
    if (interval > 0 && now - this.lastDraw >= interval) this.draw(now, false);
  }

  /** Items per second, exponentially smoothed; falls back to the overall average early on. */
  itemsPerSecond(): number {
    if (this.rate !== undefined) return this.rate;
    const el = (this.clock() - this.start) / 1000;
    return el > 0 ? this.done / el : 0;
  }

  /** The status line as it would be drawn now (without control characters). */
  format(now = this.clock()): string {
    const parts: string[] = [];
    if (this.label !== '') parts.push(this.label);
    const elapsed = (now - this.start) / 1000;
    // The final line gives the run's average; while running, the smoothed recent rate.
    const average = elapsed > 0 ? this.done / elapsed : 0;
    const rate = this.finished ? average : (this.rate ?? average);
    if (this.total > 0) {
      const pct = Math.min(100, (100 * this.done) / this.total);
      parts.push(`${this.done}/${this.total} (${pct.toFixed(1)}%)`);
    } else {
      parts.push(String(this.done));
    }
    parts.push(`${formatRate(rate)} ${this.unit}/s`);
    parts.push(`elapsed ${formatDuration(elapsed)}`);
    if (this.total > 0 && !this.finished) {
      parts.push(`eta ${rate > 0 ? formatDuration(Math.max(0, this.total - this.done) / rate) : '?'}`);
    }
    for (const [k, v] of Object.entries(this.fields)) parts.push(`${k} ${formatValue(v)}`);
    return parts.join('  ');
  }

  /** Print the final line (always, TTY or not) and end it with a newline. Idempotent. */
  finish(fields?: ProgressFields): void {
    if (this.finished) return;
    if (fields !== undefined) this.fields = { ...this.fields, ...fields };
    this.finished = true;
    this.draw(this.clock(), true);
  }

  private sampleRate(now: number): void {
    const dt = now - this.rateTime;
    // Sample at most every 50 ms so bursts of ticks do not give noisy instantaneous rates.
    // Field-only updates (e.g. a validation score) are not samples: a rate of 0 over a long
    // validation would drag the average to ~0; the next tick's interval covers that time instead.
    if (dt < 50 || this.done === this.rateDone) return;
    const inst = ((this.done - this.rateDone) * 1000) / dt;
    // Time-based EMA: the weight of the new sample grows with the time it covers.
    const w = 1 - Math.exp(-dt / this.tauMs);
    this.rate = this.rate === undefined ? inst : this.rate + w * (inst - this.rate);
    this.rateDone = this.done;
    this.rateTime = now;
  }

  private draw(now: number, final: boolean): void {
    this.lastDraw = now;
    let line = this.format(now);
    if (this.tty) {
      const cols = this.stream.columns;
      if (cols !== undefined && cols > 1 && line.length >= cols) line = line.slice(0, cols - 1);
      // \r returns to column 0; ESC[K clears what a longer previous line left behind.
      this.stream.write(`\r${line}${line.length < this.lastLen ? '\x1b[K' : ''}${final ? '\n' : ''}`);
      this.lastLen = line.length;
    } else {
      this.stream.write(`${line}\n`);
    }
  }
}
