/**
 * Worker-thread entry of the DataLoader: builds batches one at a time, in the order asked, and
 * sends them back with their pixel buffers transferred (no copy).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BatchBuilder, type BatchJob, type BuilderItem, type BuilderOptions } from './batch-builder.js';
import type { SharedImageCacheInit } from './shared-image-cache.js';

/** Messages from the loader to a worker. */
export type ToWorker = { type: 'job'; id: number; job: BatchJob };

/** Messages from a worker to the loader. */
export type FromWorker =
  | { type: 'started'; id: number }
  | { type: 'batch'; id: number; batch: import('./types.js').Batch }
  | { type: 'error'; id: number; message: string }
  | { type: 'warn'; message: string };

/** Data given to the worker at start. */
export interface WorkerInit {
  items: BuilderItem[];
  options: BuilderOptions;
  /** With --cache ram: the loader's cache, shared by all its workers. */
  shared?: SharedImageCacheInit;
}

const port = parentPort;
if (port) {
  const init = workerData as WorkerInit;
  const post = (m: FromWorker, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer);
  const builder = new BatchBuilder(init.items, init.options, (message) => post({ type: 'warn', message }), init.shared);
  let chain = Promise.resolve();
  port.on('message', (m: ToWorker) => {
    // One batch at a time, in arrival order: the consumer needs batch k before k+1.
    chain = chain.then(async () => {
      post({ type: 'started', id: m.id });
      try {
        const batch = await builder.build(m.job);
        post({ type: 'batch', id: m.id, batch }, [batch.images.buffer as ArrayBuffer, batch.targets.buffer as ArrayBuffer]);
      } catch (err) {
        post({ type: 'error', id: m.id, message: err instanceof Error ? err.message : String(err) });
      }
    });
  });
}
