import type { Logger } from '../util/logger.js';
import { DataLoader } from './loader.js';
import type { DatasetItem } from './types.js';

/** Options of {@link evalLoader}. */
export interface EvalLoaderOptions {
  imgsz: number;
  batchSize: number;
  workers: number;
  logger?: Logger;
  /** Rectangular batches (ultralytics' rect validation) at this stride; a model with a fixed input size cannot take them. */
  rectStride?: number;
}

/**
 * The loader of every evaluation pass (validation, a teacher's mAP, export checks, calibration):
 * letterboxed images in scanned order, no augmentation, so neither a seed nor augmentation
 * hyperparameters play a part.
 * @example
 * const loader = evalLoader(items, { imgsz: 640, batchSize: 32, workers: 1 });
 */
export function evalLoader(items: readonly DatasetItem[], opts: EvalLoaderOptions): DataLoader {
  return new DataLoader(items, {
    imgsz: opts.imgsz, batchSize: opts.batchSize, augment: false, shuffle: false, workers: opts.workers,
    prefetch: Math.max(3, 2 * opts.workers), ...(opts.logger ? { logger: opts.logger } : {}),
    ...(opts.rectStride ? { rect: { stride: opts.rectStride } } : {}),
  });
}
