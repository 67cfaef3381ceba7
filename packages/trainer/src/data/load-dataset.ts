import type { Logger } from '../util/logger.js';
import { loadDatasetConfig } from './dataset-yaml.js';
import { scanSplit } from './scan.js';
import type { DatasetConfig, DatasetItem } from './types.js';

/** A dataset YAML with its train and val splits scanned: what a training command reads once. */
export interface LoadedDataset {
  config: DatasetConfig;
  train: DatasetItem[];
  val: DatasetItem[];
}

/**
 * Reads a dataset YAML and scans its train and val splits (bad images and labels are warned about
 * and skipped). Commands read it once and pass it down, so the warnings come once too.
 */
export async function loadDataset(file: string, log: Logger): Promise<LoadedDataset> {
  const config = await loadDatasetConfig(file);
  const train = await scanSplit(config.train, config.nc, log, { split: 'train' });
  const val = await scanSplit(config.val, config.nc, log, { split: 'val' });
  log.info(`data: ${train.length} train images, ${val.length} val images, ${config.nc} classes`);
  return { config, train, val };
}
