/**
 * Loader worker thread: makes the batches it is sent and posts them back with their buffers
 * transferred (no copy). Errors are posted back per batch with their code and file.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { MisfmError } from '../util/errors.js';
import { SampleMaker, type SampleCase, type SamplerConfig } from './sampler.js';

/** A batch request from the loader. */
export interface BatchTask {
  batch: number;
  indices: number[];
  cases: SampleCase[];
}

const maker = new SampleMaker(workerData as SamplerConfig);
const ready = maker.init();

parentPort?.on('message', (task: BatchTask) => {
  void ready.then(() => {
    const t0 = performance.now();
    const b = maker.makeBatch(task.indices, task.cases);
    const transfer: ArrayBuffer[] = [b.image.buffer as ArrayBuffer];
    if (b.label !== undefined) transfer.push(b.label.buffer as ArrayBuffer);
    parentPort?.postMessage({ batch: task.batch, ...b, workMs: performance.now() - t0 }, transfer);
  }).catch((err: unknown) => {
    const e = err instanceof MisfmError ? { code: err.code, message: err.message, file: err.file }
      : { code: 'DATA', message: err instanceof Error ? err.message : String(err), file: undefined };
    parentPort?.postMessage({ batch: task.batch, error: e });
  });
});
