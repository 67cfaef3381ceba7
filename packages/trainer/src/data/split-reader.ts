import type { Logger } from '../util/logger.js';
import { loadDatasetConfig } from './dataset-yaml.js';
import { scanSplit } from './scan.js';
import type { DatasetConfig, DatasetItem } from './types.js';

/**
 * Reads each dataset YAML, and scans each of its splits, at most once per command however many
 * steps ask for them (export validates every artifact on the same val split and may calibrate on it).
 */
export class SplitReader {
  private readonly configs = new Map<string, Promise<DatasetConfig>>();
  private readonly splits = new Map<string, Promise<DatasetItem[]>>();

  constructor(private readonly log: Logger) {}

  /** The parsed dataset YAML. */
  config(file: string): Promise<DatasetConfig> {
    let c = this.configs.get(file);
    if (!c) this.configs.set(file, (c = loadDatasetConfig(file)));
    return c;
  }

  /** The verified items of one split (empty when the YAML lists no sources for it). */
  async items(file: string, split: 'train' | 'val'): Promise<DatasetItem[]> {
    const data = await this.config(file);
    const key = `${split}\u0000${file}`;
    let s = this.splits.get(key);
    if (!s) this.splits.set(key, (s = data[split].length === 0 ? Promise.resolve([]) : scanSplit(data[split], data.nc, this.log, { split })));
    return s;
  }
}
