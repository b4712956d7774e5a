/**
 * A least-recently-used, memory-bounded cache of a window's image features (everything VISTA3D
 * computes before the prompts matter, see VISTA3D.encode). A later click in a window already
 * computed then costs the point head alone. Keys name the window (start/stop on the working grid);
 * a cache belongs to one image.
 */
import { disposeFeatures, featureBytes, type ImageFeatures } from '../../models/vista3d/model.js';
import { parseWindowKey, type Window } from './windows.js';

export class FeatureCache {
  readonly #entries = new Map<string, ImageFeatures>();
  #bytes = 0;
  hits = 0;
  misses = 0;
  constructor(readonly maxBytes: number) {}

  get bytes(): number { return this.#bytes; }
  get size(): number { return this.#entries.size; }

  /** The features of `key` holding the needed branches (and marks it recently used), or undefined. */
  get(key: string, needPoint: boolean, needAuto: boolean): ImageFeatures | undefined {
    const f = this.#entries.get(key);
    if (f === undefined || (needPoint && f.pointLow === null) || (needAuto && f.autoMapped === null)) { this.misses++; return undefined; }
    this.#entries.delete(key);
    this.#entries.set(key, f);
    this.hits++;
    return f;
  }

  /**
   * Store `f` under `key` (replacing an older entry), evicting least recently used entries to stay
   * within the budget. Returns false (and leaves `f` to the caller) when it alone exceeds the budget.
   */
  put(key: string, f: ImageFeatures): boolean {
    const size = featureBytes(f);
    if (size > this.maxBytes) return false;
    this.delete(key);
    while (this.#bytes + size > this.maxBytes) {
      const oldest = this.#entries.keys().next().value as string;
      this.delete(oldest);
    }
    this.#entries.set(key, f);
    this.#bytes += size;
    return true;
  }

  has(key: string): boolean { return this.#entries.has(key); }

  /** The windows held, least recently used first; with `needPoint`, those with point-branch features. */
  windows(needPoint: boolean): Window[] {
    const out: Window[] = [];
    for (const [k, f] of this.#entries) if (!needPoint || f.pointLow !== null) out.push(parseWindowKey(k));
    return out;
  }

  delete(key: string): void {
    const f = this.#entries.get(key);
    if (f === undefined) return;
    this.#entries.delete(key);
    this.#bytes -= featureBytes(f);
    disposeFeatures(f);
  }

  clear(): void { for (const k of [...this.#entries.keys()]) this.delete(k); }
}
