import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadedDataset } from '../data/load-dataset.js';
import type { TrainHooks } from '../train/hooks.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { plotImageGrid, targetBoxes } from './image-grid.js';
import { plotLabels } from './labels.js';

// ultralytics draws the first three training batches (global steps 0, 1, 2).
const TRAIN_BATCHES = 3;

/**
 * The training-side plots of ultralytics' loggers, as a {@link TrainHooks} client: labels.jpg of the
 * training labels at the start (not again when resuming), and train_batch0..2.jpg, the first three
 * augmented batches of epoch 0 with their labels. A plot that fails is reported and the run goes on.
 * @example train(cfg, hyp, { hooks: [trainPlots(saveDir, dataset)] })
 */
export function trainPlots(saveDir: string, data: LoadedDataset): TrainHooks {
  let log: Logger = silentLogger;
  let pending: Promise<void>[] = [];
  const track = (file: string, p: Promise<void>) => {
    pending.push(p.catch((e: Error) => log.warn(`${file} not written: ${e.message}`)));
  };
  const settle = async () => {
    const now = pending;
    pending = [];
    await Promise.all(now);
  };
  return {
    async onTrainStart(start) {
      log = start.log;
      const file = join(saveDir, 'labels.jpg');
      if (existsSync(file)) return;
      log.info(`Plotting labels to ${file}...`);
      await plotLabels(data.train.map((it) => it.labels), data.config.names, file).catch((e: Error) => log.warn(`${file} not written: ${e.message}`));
    },
    onBatchStart(batch, at) {
      if (at.epoch !== 0 || at.index >= TRAIN_BATCHES) return;
      const file = join(saveDir, `train_batch${at.index}.jpg`);
      // The grid copies the batch before its first await, so the step may go on with (or transfer) it.
      track(file, plotImageGrid(batch, targetBoxes(batch), batch.files, data.config.names, file));
    },
    onEpochEnd: settle,
    onFitEnd: settle,
  };
}
