/** The class table a session shows: label value -> name and display colour. */

export interface ClassEntry { value: number; name: string; color: [number, number, number] }

const BASE: [number, number, number][] = [
  [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240],
  [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128], [220, 190, 255], [170, 110, 40], [255, 250, 200],
  [128, 0, 0], [170, 255, 195], [128, 128, 0], [255, 215, 180], [0, 0, 128], [128, 128, 128],
];

/** A stable colour per label value: 20 distinct colours, then golden-angle hues. */
export function colorFor(value: number): [number, number, number] {
  if (value >= 1 && value <= BASE.length) return BASE[value - 1]!;
  const h = (value * 137.508) % 360, s = 0.7, l = 0.55;
  const f = (n: number): number => {
    const k = (n + h / 30) % 12;
    return Math.round(255 * (l - s * Math.min(l, 1 - l) * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

/** Merge name sources (later ones fill gaps only) into a sorted table; value 0 is background and left out. */
export function classTable(...sources: (ReadonlyMap<number, string> | null | undefined)[]): ClassEntry[] {
  const names = new Map<number, string>();
  for (const s of sources) if (s) for (const [v, n] of s) if (v > 0 && !names.has(v)) names.set(v, n);
  return [...names.entries()].sort((a, b) => a[0] - b[0]).map(([value, name]) => ({ value, name, color: colorFor(value) }));
}
