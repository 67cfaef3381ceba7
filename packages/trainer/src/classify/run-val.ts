import sharp from 'sharp';
import { DatasetError } from '../errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import type { ClassifyValConfig } from './classify-schema.js';
import { loadClassifyDataset } from './dataset.js';
import { ClassifyLoader } from './loader.js';
import { openClassifier } from './predictor.js';
import { formatClassifyTable, validateClassifier, type ClassifyValResult } from './validate.js';

/** What `kd-trainer classify val` returns: the metrics with the class names and the split. */
export interface ClassifyValRun extends ClassifyValResult {
  names: string[];
  split: string;
}

/**
 * `kd-trainer classify val`: validates a classifier (.kdw on TensorFlow.js, or an ONNX export as it is
 * in ONNX Runtime) on the val split (test/ when there is no val/, or `--task`) and prints ultralytics'
 * table: top-1 and top-5 accuracy overall and per class, and the speed per image.
 * @example
 * await runClassifyVal(resolveOptions(CLASSIFY_VAL_SCHEMA, [{ weights: 'export/model.onnx', data: 'datasets/shapes-cls', imgsz: 64 }]).config);
 */
export async function runClassifyVal(cfg: ClassifyValConfig, opts: { logger?: Logger } = {}): Promise<ClassifyValRun> {
  const log = opts.logger ?? silentLogger;
  if (cfg.threads > 0) sharp.concurrency(cfg.threads);
  const data = await loadClassifyDataset(cfg.data, log, { ...(cfg.task === 'val' ? {} : { split: cfg.task }), train: cfg.task === 'train' });
  const clf = await openClassifier(cfg.weights, { backend: cfg.backend, device: cfg.device, threads: cfg.threads, logger: log });
  try {
    if (clf.nc !== data.names.length) {
      throw new DatasetError(`${cfg.weights} predicts ${clf.nc} classes (${clf.names.slice(0, 5).join(', ')}${clf.nc > 5 ? ', …' : ''}) but ${data.root} has ${data.names.length}: validate on the dataset the model was trained for`);
    }
    const named = !clf.names.every((n, i) => n === `class${i}`);
    if (named && clf.names.join('\u0000') !== data.names.join('\u0000')) {
      log.warn(`${cfg.weights} names its classes ${clf.names.join(', ')}; ${data.root} has ${data.names.join(', ')}: accuracy is counted by index`);
    }
    let imgsz = cfg.imgsz;
    if (clf.imgsz !== undefined) {
      if (clf.imgsz[0] !== clf.imgsz[1]) throw new DatasetError(`${cfg.weights} takes ${clf.imgsz[0]}x${clf.imgsz[1]} inputs; classify val uses square crops: export it square or with --dynamic`);
      if (clf.imgsz[0] !== imgsz) log.info(`${cfg.weights} takes ${clf.imgsz[0]}x${clf.imgsz[0]} inputs: validating at ${clf.imgsz[0]} (not --imgsz ${imgsz})`);
      imgsz = clf.imgsz[0];
    }
    const loader = new ClassifyLoader(data.val, { imgsz, batchSize: cfg.batch_size, normalisation: clf.normalisation, logger: log });
    const r = await validateClassifier((b) => clf.predict(b.images, b.n, b.size, b.size), loader.epoch(0), clf.nc);
    if (cfg.json) process.stdout.write(`${JSON.stringify({ ...r, names: data.names, split: data.valSplit })}\n`);
    else for (const line of formatClassifyTable(r, data.names)) log.info(line);
    return { ...r, names: data.names, split: data.valSplit };
  } finally {
    await clf.close();
  }
}
