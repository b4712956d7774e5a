/**
 * One rank of the collective tests: joins the group from the environment and runs the scenario
 * named in argv[2], printing one JSON line with what it saw.
 */
import * as E from '../../src/engine/index.js';
import { joinFromEnvironment } from '../../src/distributed/context.js';

const scenario = process.argv[2];
const ctx = (await joinFromEnvironment())!;
const { group, rank } = ctx;
if (scenario === 'collectives') {
  const t = E.fromTypedArray(new Float32Array([rank + 1, 10 * (rank + 1)]), [2]);
  await group.allReduce(t, 'sum');
  const m = E.fromTypedArray(new Float32Array([rank]), [1]);
  await group.allReduce(m, 'max');
  const b = E.fromTypedArray(new Float32Array([rank === 0 ? 7 : -1, rank === 0 ? 8 : -1]), [2]);
  await group.broadcast(b, 0);
  const g = await group.allGather(E.fromTypedArray(new Int32Array([100 + rank]), [1]));
  const gathered = g.map((x) => Array.from(x.data() as Int32Array));
  await group.barrier();
  // Several collectives in flight at once complete in order of issue on every rank.
  const many = Array.from({ length: 8 }, (_, i) => E.fromTypedArray(new Float32Array(1000).fill(i + rank), [1000]));
  await Promise.all(many.map((x) => group.allReduce(x)));
  process.stdout.write(`${JSON.stringify({
    rank, sum: Array.from(t.data() as Float32Array), max: Array.from(m.data() as Float32Array), bcast: Array.from(b.data() as Float32Array), gather: gathered,
    many: many.map((x) => (x.data() as Float32Array)[999]),
  })}\n`);
} else if (scenario === 'interop') {
  // The same sequence as the Python rank of the interoperability test.
  const t = E.fromTypedArray(new Float32Array([1, 10]), [2]);
  await group.allReduce(t, 'sum');
  const b = E.fromTypedArray(new Float32Array([7, 8]), [2]);
  await group.broadcast(b, 0);
  const g = await group.allGather(E.fromTypedArray(new Int32Array([100]), [1]));
  await group.barrier();
  process.stdout.write(`${JSON.stringify({ rank, sum: Array.from(t.data() as Float32Array), gather: g.map((x) => Array.from(x.data() as Int32Array)) })}\n`);
} else if (scenario === 'peer-dies') {
  // Rank 1 leaves without a word; rank 0's next collective must fail, not hang.
  if (rank === 1) process.exit(3);
  const t0 = performance.now();
  try {
    await group.allReduce(E.fromTypedArray(new Float32Array([1]), [1]));
    process.stdout.write(`${JSON.stringify({ rank, error: null })}\n`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ rank, error: (err as Error).message, code: (err as { code?: string }).code, ms: performance.now() - t0 })}\n`);
  }
  process.exit(0);
}
group.destroy();
