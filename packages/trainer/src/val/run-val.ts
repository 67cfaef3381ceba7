import { mkdir, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { nonMaxSuppression, type Detection } from '@kd-edge/core';
import { backendForDevice } from '../backend/device.js';
import type { ValConfig } from '../config.js';
import { loadDatasetConfig } from '../data/dataset-yaml.js';
import { evalLoader } from '../data/eval-loader.js';
import { scanSplit } from '../data/scan.js';
import type { Batch, ImageShape, Shard } from '../data/types.js';
import { DatasetError } from '../errors.js';
import { openDetector } from '../predict/detector.js';
import { cocoImageId, cocoResults, yoloLabelLines, type CocoResult } from '../predict/labels.js';
import { scaleDetections } from '../predict/preprocess.js';
import { inputShapeFor } from '../predict/run-predict.js';
import { incrementPath } from '../predict/save-dir.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { formatValTable, validateWith, type DetectionPredictor, type ValResult } from './validator.js';

/** What `kd-trainer val` returns: the metrics, and where --save-txt / --save-json wrote. */
export interface RunValResult extends ValResult {
  /** The run folder, when --save-txt or --save-json wrote one. */
  saveDir?: string;
}

/**
 * Runs NMS on each image a predictor returns exactly as validateWith does and keeps the result, so
 * that what is saved is what was scored.
 */
class RecordingPredictor implements DetectionPredictor {
  readonly nc: number;
  readonly detections: Detection[][] = [];

  constructor(private readonly inner: DetectionPredictor, private readonly nms: { confThres: number; iouThres: number; maxDet: number }) {
    this.nc = inner.nc;
  }

  async predict(part: Shard): Promise<{ decoded: Float32Array; preMs: number; inferMs: number }> {
    const r = await this.inner.predict(part);
    const rows = r.decoded.length / part.n;
    for (let i = 0; i < part.n; i++) {
      this.detections.push(nonMaxSuppression(r.decoded.subarray(i * rows, (i + 1) * rows), this.nc, { ...this.nms, multiLabel: this.nc > 1 }));
    }
    return r;
  }
}

/** Passes batches through, noting each image's file and letterbox geometry in order. */
async function* noting(batches: AsyncIterable<Batch>, into: { file: string; shape: ImageShape }[]): AsyncIterable<Batch> {
  for await (const b of batches) {
    b.files.forEach((file, i) => into.push({ file, shape: b.shapes[i]! }));
    yield b;
  }
}

/**
 * `kd-trainer val`: validates `.kdw` / `.pt` weights (TensorFlow.js) or an ONNX export as it is
 * (ONNX Runtime) on a dataset split, prints the table (or JSON), and with --save-txt / --save-json
 * writes labels/*.txt and predictions.json (COCO results, original pixels) to runs/val/exp*.
 * @example
 * await runVal(resolveOptions(VAL_SCHEMA, [{ weights: 'export/model.int8.onnx', data: 'data.yaml', imgsz: 320 }]).config);
 */
export async function runVal(cfg: ValConfig, opts: { logger?: Logger } = {}): Promise<RunValResult> {
  const log = opts.logger ?? silentLogger;
  const data = await loadDatasetConfig(cfg.data);
  const sources = cfg.task === 'test' ? data.test : cfg.task === 'train' ? data.train : data.val;
  if (!sources) throw new DatasetError(`${data.file} has no '${cfg.task}' split`);
  const det = await openDetector(cfg.weights, { backend: backendForDevice(cfg.device, cfg.backend), logger: log });
  try {
    for (const n of det.notes) log.info(`note: ${n}`);
    if (det.nc !== data.nc) {
      throw new DatasetError(`${cfg.weights} predicts ${det.nc} classes (${det.names.slice(0, 5).join(', ')}${det.nc > 5 ? ', …' : ''}) but ${data.file} has nc=${data.nc}: validate on the dataset the model was trained for`);
    }
    const [h, w] = inputShapeFor(cfg.imgsz, det, cfg.weights, log);
    if (h !== w) throw new DatasetError(`${cfg.weights} takes ${h}x${w} inputs; val letterboxes to squares: export it square or with --dynamic`);
    const items = await scanSplit(sources, data.nc, log, { split: cfg.task });
    if (cfg.rect && det.inputSize) log.warn(`--rect: ${cfg.weights} takes fixed ${h}x${w} inputs; validating in square batches`);
    const rect = cfg.rect && !det.inputSize ? { rectStride: det.stride } : {};
    const loader = evalLoader(items, { imgsz: h, batchSize: cfg.batch_size, workers: cfg.workers, logger: log, ...rect });
    const nms = { confThres: cfg.conf_thres, iouThres: cfg.iou_thres, maxDet: cfg.max_det };
    const saving = cfg.save_txt || cfg.save_json;
    const saveDir = saving || cfg.plots ? incrementPath(cfg.project, cfg.name, cfg.exist_ok) : undefined;
    if (saveDir !== undefined) await mkdir(cfg.save_txt ? join(saveDir, 'labels') : saveDir, { recursive: true });
    const recorder = saving ? new RecordingPredictor(det.predictor, nms) : undefined;
    const images: { file: string; shape: ImageShape }[] = [];
    const plots = cfg.plots && saveDir !== undefined ? { plots: { saveDir, names: data.names, logger: log } } : {};
    let r: RunValResult;
    try {
      r = await validateWith(recorder ?? det.predictor, saving ? noting(loader.epoch(0), images) : loader.epoch(0), { ...nms, imgsz: h, ...plots });
    } finally {
      await loader.close();
    }
    if (!cfg.json) for (const line of formatValTable(r, data.names)) log.info(line);
    if (recorder) await saveResults(cfg, saveDir!, images, recorder.detections, log);
    if (saveDir !== undefined) r = { ...r, saveDir };
    if (cfg.json) process.stdout.write(`${JSON.stringify({ ...r, names: data.names })}\n`);
    if (r.saveDir !== undefined) {
      log.info(`Results saved to ${r.saveDir}`);
      if (cfg.save_txt) log.info(`${recorder!.detections.filter((d) => d.length > 0).length} labels saved to ${join(r.saveDir, 'labels')}`);
    }
    return r;
  } finally {
    await det.close();
  }
}

/** Writes labels/*.txt and predictions.json for the validated images into the run folder. */
async function saveResults(cfg: ValConfig, saveDir: string, images: { file: string; shape: ImageShape }[], detections: Detection[][], log: Logger): Promise<void> {
  if (images.length !== detections.length) throw new Error(`internal: ${images.length} images but ${detections.length} detection lists`);
  const json: CocoResult[] = [];
  for (const [i, { file, shape }] of images.entries()) {
    const dets = scaleDetections(detections[i]!, { gain: shape.ratio, pad: shape.pad }, shape.orig);
    const stem = basename(file, extname(file));
    if (cfg.save_json) json.push(...cocoResults(cocoImageId(stem), dets));
    if (cfg.save_txt && dets.length > 0) await writeFile(join(saveDir, 'labels', `${stem}.txt`), `${yoloLabelLines(dets, shape.orig, cfg.save_conf).join('\n')}\n`);
  }
  if (cfg.save_json) {
    const out = join(saveDir, 'predictions.json');
    log.info(`Saving ${out}... (${json.length} detections)`);
    await writeFile(out, JSON.stringify(json));
  }
}
