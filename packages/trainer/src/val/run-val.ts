import { selectBackend } from '../backend/select.js';
import type { ValConfig } from '../config.js';
import { loadDatasetConfig } from '../data/dataset-yaml.js';
import { evalLoader } from '../data/eval-loader.js';
import { scanSplit } from '../data/scan.js';
import { DatasetError } from '../errors.js';
import { loadModel } from '../model/weights-io.js';
import type { DetectionModel } from '../model/types.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { formatValTable, validate, type ValResult } from './validator.js';

/** `kd-trainer val`: loads weights, validates a split, prints the table (or JSON). */
export async function runVal(cfg: ValConfig, opts: { logger?: Logger } = {}): Promise<ValResult> {
  const log = opts.logger ?? silentLogger;
  await selectBackend(cfg.backend, log);
  const data = await loadDatasetConfig(cfg.data);
  const sources = cfg.task === 'test' ? data.test : cfg.task === 'train' ? data.train : data.val;
  if (!sources) throw new DatasetError(`${data.file} has no '${cfg.task}' split`);
  const items = await scanSplit(sources, data.nc, log, { split: cfg.task });
  const { model } = await loadModel(cfg.weights);
  const det = model as DetectionModel;
  if (det.nc !== data.nc) throw new DatasetError(`${cfg.weights} has nc=${det.nc} but ${data.file} has nc=${data.nc}`);
  const loader = evalLoader(items, { imgsz: cfg.imgsz, batchSize: cfg.batch_size, workers: cfg.workers, logger: log });
  try {
    const r = await validate(det, loader.epoch(0), { confThres: cfg.conf_thres, iouThres: cfg.iou_thres, maxDet: cfg.max_det, imgsz: cfg.imgsz });
    if (cfg.json) process.stdout.write(`${JSON.stringify({ ...r, names: data.names })}\n`);
    else for (const line of formatValTable(r, data.names)) log.info(line);
    return r;
  } finally {
    await loader.close();
    det.dispose();
  }
}
