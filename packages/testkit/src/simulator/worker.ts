/**
 * A worker thread of `pnpm sim --jobs N`: runs its share of the seeds and posts each
 * result to the main thread. Not exported: the CLI starts it by URL.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { runSeeds, type RunSeedsOptions } from './runner.js';

const port = parentPort;
if (port !== null) {
  const options = (workerData as { options: RunSeedsOptions }).options;
  await runSeeds({
    ...options,
    onResult: (result) => port.postMessage(result),
    yieldBetweenRuns: () => new Promise<void>((resolve) => setImmediate(resolve)),
  });
}
