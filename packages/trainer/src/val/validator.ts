import * as tf from '../tf.js';
import {
  decodeYoloOutputs,
  evaluateCoco,
  nonMaxSuppression,
  precisionRecall,
  type Annotation,
  type Detection,
} from '@kd-edge/core';
import type { Batch, Shard } from '../data/types.js';
import type { DetectionModel } from '../model/types.js';
import { ValPlots, type ValPlotsOptions, type ValPlotsResult } from '../plots/val-plots.js';
import { scaleLossHyp, yoloLoss, type LossHyp } from '../loss/yolo-loss.js';
import { splitShard } from '../train/step.js';

/** Options of a validation pass (ultralytics val.py defaults). */
export interface ValidateOptions {
  confThres?: number;
  iouThres?: number;
  maxDet?: number;
  /** When set, the YOLO loss terms are computed on the validation set too (val/box_loss…). */
  lossHyp?: LossHyp;
  imgsz?: number;
  /** Input pixels per forward pass (default {@link EVAL_CHUNK_PIXELS}); larger batches run in parts. */
  maxPixels?: number;
  /** Called with the first batch's detections (for drawing). */
  onFirstBatch?: (batch: Batch, detections: Detection[][]) => void | Promise<void>;
  /**
   * Write ultralytics' validation plots into `plots.saveDir`: val_batch{0,1,2}_labels/_pred.jpg,
   * confusion_matrix.png, PR_curve.png, F1_curve.png, P_curve.png, R_curve.png.
   */
  plots?: ValPlotsOptions;
}

/**
 * Evaluation keeps about 440 bytes per input pixel on the wasm backend (180 MiB per 640×640 image
 * for yolov5n), so 4.5 M pixels ≈ 2 GiB of the 4 GiB WebAssembly heap: 10 images at 640 px.
 */
export const EVAL_CHUNK_PIXELS = 4_500_000;

/** One row of the per-class table. */
export interface ClassMetrics extends DetectionMetrics {
  cls: number;
}

/** One row of the metrics table: images and instances counted, P and R at best F1, COCO mAP. */
export interface DetectionMetrics {
  images: number;
  instances: number;
  precision: number;
  recall: number;
  map50: number;
  map: number;
}

/** The result of a validation pass: the headline metrics (all classes), the per-class table and speed. */
export interface ValResult extends DetectionMetrics {
  /** 0.1·mAP50 + 0.9·mAP50-95 (ultralytics fitness). */
  fitness: number;
  perClass: ClassMetrics[];
  /** Milliseconds per image: pre-process (waiting for and uploading the batch), inference, NMS. */
  speed: { preprocess: number; inference: number; nms: number };
  /** Validation losses (zero when not computed). */
  loss: { box: number; obj: number; cls: number };
  /** With {@link ValidateOptions.plots}: the files written and the confusion matrix. */
  plots?: ValPlotsResult;
}

/**
 * Gives decoded YOLOv5 rows [n, rows, 5+nc] (the `output0` layout) for a shard of images, and how
 * long its pre-processing and inference took: a TensorFlow.js model, or an ONNX Runtime session.
 */
export interface DetectionPredictor {
  readonly nc: number;
  predict(part: Shard): Promise<{ decoded: Float32Array; preMs: number; inferMs: number }>;
}

/**
 * Runs the model over batches and measures COCO mAP50 and mAP50-95, precision and recall at the
 * best-F1 confidence, and a per-class table.
 */
export async function validate(
  model: DetectionModel,
  batches: AsyncIterable<Batch>,
  opts: ValidateOptions = {},
): Promise<ValResult> {
  const loss = { box: 0, obj: 0, cls: 0 };
  let batchN = 0;
  let nBatches = 0;
  const predictor: DetectionPredictor = {
    nc: model.nc,
    async predict(part) {
      const t1 = performance.now();
      const x = tf.tensor4d(part.images, [part.n, part.height, part.width, 3]);
      const t2 = performance.now();
      const outs = model.forward(x, false);
      const raw = await Promise.all(outs.map((o) => o.data() as Promise<Float32Array>));
      const t3 = performance.now();
      if (opts.lossHyp) {
        const hyp = scaleLossHyp(opts.lossHyp, model.nl, model.nc, opts.imgsz ?? part.width);
        const terms = yoloLoss(outs, part.targets, part.nTargets, model, hyp);
        const [b, o, c] = await Promise.all([terms.box.data(), terms.obj.data(), terms.cls.data()]);
        const w = part.n / batchN;
        loss.box += b[0] * w; loss.obj += o[0] * w; loss.cls += c[0] * w;
        tf.dispose([terms.total, terms.box, terms.obj, terms.cls]);
      }
      const shapes = outs.map((o) => [o.shape[1], o.shape[2]]);
      tf.dispose([x, ...outs]);
      const decoded = decodeYoloOutputs(
        raw.map((data, i) => ({ data, ny: shapes[i][0], nx: shapes[i][1], stride: model.strides[i], anchors: model.anchors[i] })),
        part.n,
        model.nc,
      );
      return { decoded, preMs: t2 - t1, inferMs: t3 - t2 };
    },
  };
  async function* counted(): AsyncIterable<Batch> {
    for await (const b of batches) {
      batchN = b.n;
      nBatches++;
      yield b;
    }
  }
  const r = await validateWith(predictor, counted(), opts);
  if (nBatches) r.loss = { box: loss.box / nBatches, obj: loss.obj / nBatches, cls: loss.cls / nBatches };
  return r;
}

/** {@link validate} for any predictor (an ONNX model, for example); no losses. */
export async function validateWith(
  predictor: DetectionPredictor,
  batches: AsyncIterable<Batch>,
  opts: ValidateOptions = {},
): Promise<ValResult> {
  const confThres = opts.confThres ?? 0.001;
  const iouThres = opts.iouThres ?? 0.6;
  const maxDet = opts.maxDet ?? 300;
  const nc = predictor.nc;
  const images: { detections: Detection[]; annotations: Annotation[] }[] = [];
  const t = { pre: 0, inf: 0, nms: 0 };
  let first = true;
  const plots = opts.plots ? new ValPlots(opts.plots, nc) : undefined;

  let t0 = performance.now();
  for await (const batch of batches) {
    const waited = performance.now() - t0;
    const perImage: Detection[][] = [];
    // Evaluation keeps every layer's output until the end of the forward pass: cap the pixels per pass.
    const per = Math.max(1, Math.floor((opts.maxPixels ?? EVAL_CHUNK_PIXELS) / (batch.height * batch.width)));
    for (const part of splitShard(batch, per)) {
      const { decoded, preMs, inferMs } = await predictor.predict(part);
      t.pre += preMs;
      t.inf += inferMs;
      const t4 = performance.now();
      const rowsPerImage = decoded.length / part.n;
      for (let i = 0; i < part.n; i++) {
        const rows = decoded.subarray(i * rowsPerImage, (i + 1) * rowsPerImage);
        perImage.push(nonMaxSuppression(rows, nc, { confThres, iouThres, maxDet, multiLabel: nc > 1 }));
      }
      t.nms += performance.now() - t4;
    }
    t.pre += waited;
    const annotations = perImage.map((_, i) => annotationsOf(batch, i));
    perImage.forEach((dets, i) => images.push({ detections: dets, annotations: annotations[i]! }));
    plots?.addBatch(batch, perImage, annotations);
    if (first && opts.onFirstBatch) await opts.onFirstBatch(batch, perImage);
    first = false;
    t0 = performance.now();
  }

  const coco = evaluateCoco(images, nc, { maxDets: maxDet, prCurves: !!plots });
  const pr = precisionRecall(images, nc, 0.5, { curves: !!plots });
  const n = images.length || 1;
  const perClass: ClassMetrics[] = [];
  for (let c = 0; c < nc; c++) {
    const instances = images.reduce((s, im) => s + im.annotations.filter((a) => a.cls === c).length, 0);
    const withClass = images.filter((im) => im.annotations.some((a) => a.cls === c)).length;
    const cc = coco.perClass[c];
    const pc = pr.perClass[c];
    perClass.push({
      cls: c,
      images: withClass,
      instances,
      precision: pc?.precision ?? 0,
      recall: pc?.recall ?? 0,
      map50: Math.max(0, cc?.ap50 ?? 0),
      map: Math.max(0, cc?.ap ?? 0),
    });
  }
  const map50 = Math.max(0, coco.map50);
  const map = Math.max(0, coco.map);
  return {
    images: images.length,
    instances: images.reduce((s, im) => s + im.annotations.length, 0),
    precision: pr.precision,
    recall: pr.recall,
    map50,
    map,
    fitness: 0.1 * map50 + 0.9 * map,
    perClass,
    speed: { preprocess: t.pre / n, inference: t.inf / n, nms: t.nms / n },
    loss: { box: 0, obj: 0, cls: 0 },
    ...(plots ? { plots: await plots.finish(coco, pr) } : {}),
  };
}

/** Ground-truth boxes of image i of a batch, in the batch's pixel space. */
export function annotationsOf(batch: Batch, i: number): Annotation[] {
  const out: Annotation[] = [];
  for (let k = 0; k < batch.nTargets; k++) {
    const r = k * 6;
    if (batch.targets[r] !== i) continue;
    const cx = batch.targets[r + 2] * batch.width;
    const cy = batch.targets[r + 3] * batch.height;
    const w = batch.targets[r + 4] * batch.width;
    const h = batch.targets[r + 5] * batch.height;
    out.push({ cls: batch.targets[r + 1], box: [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2] });
  }
  return out;
}

/** The ultralytics-style metrics table as text lines. */
export function formatValTable(r: ValResult, names: string[]): string[] {
  const row = (c: string, im: number, inst: number, p: number, rc: number, m50: number, m: number) =>
    `${c.padStart(22)}${String(im).padStart(11)}${String(inst).padStart(11)}${[p, rc, m50, m].map((v) => v.toFixed(3).padStart(11)).join('')}`;
  const lines = [
    `${'Class'.padStart(22)}${'Images'.padStart(11)}${'Instances'.padStart(11)}${'P'.padStart(11)}${'R'.padStart(11)}${'mAP50'.padStart(11)}${'mAP50-95'.padStart(11)}`,
    row('all', r.images, r.instances, r.precision, r.recall, r.map50, r.map),
  ];
  if (names.length > 1) {
    for (const c of r.perClass) {
      if (c.instances === 0) continue;
      lines.push(row(names[c.cls] ?? String(c.cls), c.images, c.instances, c.precision, c.recall, c.map50, c.map));
    }
  }
  lines.push(`Speed: ${r.speed.preprocess.toFixed(1)}ms pre-process, ${r.speed.inference.toFixed(1)}ms inference, ${r.speed.nms.toFixed(1)}ms NMS per image`);
  return lines;
}
