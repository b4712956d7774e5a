/** Worker thread of `prepare`: prepares the cases it is sent, one at a time. */
import { parentPort } from 'node:worker_threads';
import { prepareCase, type CaseTask } from './case.js';

parentPort?.on('message', (msg: { id: number; task: CaseTask }) => {
  void prepareCase(msg.task).then((result) => parentPort?.postMessage({ id: msg.id, result }));
});
