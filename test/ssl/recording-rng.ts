/** An Rng that records its draws, so that a Python port of the reference can replay them exactly. */
import { Rng } from '../../src/util/rng.js';

export type Draw = ['i', number] | ['f', number];

export class RecordingRng extends Rng {
  readonly draws: Draw[] = [];
  override randint(lo: number, hi: number): number {
    const v = super.randint(lo, hi);
    this.draws.push(['i', v]);
    return v;
  }
  override uniform(lo = 0, hi = 1): number {
    const u = super.uniform();
    this.draws.push(['f', u]);
    return lo + (hi - lo) * u;
  }
}

/**
 * Python prelude: `random.randint` and `random.random` replay the recorded draws (checking the
 * kind and the bounds), so code written against Python's `random` makes the same choices.
 */
export const REPLAY_PY = `
import json, random, sys
import numpy as np
_draws = []
def _next(kind):
    k, v = _draws.pop(0)
    assert k == kind, f"draw kind {k}, expected {kind}"
    return v
def _randint(lo, hi):
    v = _next('i')
    assert lo <= v <= hi, f"replayed {v} outside [{lo}, {hi}]"
    return v
random.randint = _randint
random.random = lambda: _next('f')
def replay(draws):
    _draws[:] = [tuple(d) for d in draws]
def done():
    assert not _draws, f"{len(_draws)} draws left unused"
`;
