import { Rng } from '../data/rng.js';
import { DatasetError } from '../errors.js';
import type { Logger } from '../util/logger.js';
import { nhwcToNchw } from '../val/onnx-predictor.js';
import { loadClassifyDataset } from './dataset.js';
import { ClassifyLoader } from './loader.js';
import type { Normalisation } from './normalisation.js';

/** Options of {@link classifyCalibrationImages}. */
export interface ClassifyCalibrationOptions {
  /** The dataset folder. */
  root: string;
  split: 'train' | 'val';
  images: number;
  imgsz: number;
  /** Images per batch: the model's static batch. */
  batch: number;
  normalisation: Normalisation;
  logger: Logger;
}

/**
 * Calibration batches for an INT8 classifier, NCHW float32, centre-cropped and normalised exactly as
 * validation and inference pre-process: `images` images of the split drawn evenly from every class (a
 * seeded shuffle, since the split lists its classes one after another). Each call of `batches` reads
 * them again, so nothing larger than one batch is held.
 */
export async function classifyCalibrationImages(opts: ClassifyCalibrationOptions): Promise<{ count: number; batches: () => AsyncIterable<Float32Array> }> {
  const data = await loadClassifyDataset(opts.root, opts.logger, { split: opts.split, train: opts.split === 'train' });
  const items = new Rng(0).shuffle([...(opts.split === 'train' ? data.train : data.val)]).slice(0, opts.images);
  const usable = Math.floor(items.length / opts.batch) * opts.batch;
  if (usable === 0) throw new DatasetError(`${data.root} '${opts.split}': ${items.length} images, fewer than one batch of ${opts.batch}`);
  const picked = items.slice(0, usable);
  return {
    count: usable,
    batches: () => ({
      async *[Symbol.asyncIterator]() {
        const loader = new ClassifyLoader(picked, { imgsz: opts.imgsz, batchSize: opts.batch, normalisation: opts.normalisation, logger: opts.logger });
        for await (const b of loader.epoch(0)) yield nhwcToNchw(b.images, b.n, b.size, b.size);
      },
    }),
  };
}
