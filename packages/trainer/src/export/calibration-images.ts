import type { SplitReader } from '../data/split-reader.js';
import { evalLoader } from '../data/eval-loader.js';
import { DatasetError } from '../errors.js';
import type { Logger } from '../util/logger.js';
import { nhwcToNchw } from '../val/onnx-predictor.js';

/** Options of {@link calibrationImages}. */
export interface CalibrationImagesOptions {
  data: string;
  split: 'train' | 'val';
  images: number;
  imgsz: number;
  /** Images per batch: the model's static batch. */
  batch: number;
  workers: number;
  logger: Logger;
  /** The command's dataset reader (the YAML and the split are read once). */
  reader: SplitReader;
}

/**
 * A re-readable source of calibration batches, NCHW float32 in 0..1, letterboxed exactly as
 * validation and inference pre-process (no augmentation): the first `images` images of the split.
 * Each call of the returned function reads them again (calibration, then the sensitivity report),
 * so nothing larger than one batch is held in memory.
 */
export async function calibrationImages(opts: CalibrationImagesOptions): Promise<{ count: number; batches: () => AsyncIterable<Float32Array> }> {
  const data = await opts.reader.config(opts.data);
  if (data[opts.split].length === 0) throw new DatasetError(`${data.file} has no '${opts.split}' split for calibration`);
  const items = (await opts.reader.items(opts.data, opts.split)).slice(0, opts.images);
  const usable = Math.floor(items.length / opts.batch) * opts.batch;
  if (usable === 0) throw new DatasetError(`${data.file} '${opts.split}': ${items.length} images, fewer than one batch of ${opts.batch}`);
  const picked = items.slice(0, usable);
  return {
    count: usable,
    batches: () => ({
      async *[Symbol.asyncIterator]() {
        const loader = evalLoader(picked, { imgsz: opts.imgsz, batchSize: opts.batch, workers: opts.workers, logger: opts.logger });
        try {
          for await (const b of loader.epoch(0)) yield nhwcToNchw(b.images, b.n, b.height, b.width);
        } finally {
          await loader.close();
        }
      },
    }),
  };
}
