import { mkdir, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { nonMaxSuppression, type Detection } from '@kd-edge/core';
import { backendForDevice } from '../backend/device.js';
import { decodeImage, type RgbImage } from '../data/image.js';
import { checkImgSize } from '../model/img-size.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { annotateImage, encodeImage, type AnnotateOptions } from './annotate.js';
import { openDetector, type OpenedDetector } from './detector.js';
import { yoloLabelLines } from './labels.js';
import { parseClasses, type PredictConfig } from './predict-schema.js';
import { prepareImage, scaleDetections } from './preprocess.js';
import { incrementPath } from './save-dir.js';
import { SourceError } from './source-error.js';
import { listSources, type SourceEntry } from './sources.js';
import { probeVideo, readVideoFrames, requireFfmpeg, VideoWriter, type Ffmpeg } from './video.js';

/** One predicted image or video frame. */
export interface PredictedImage {
  /** The source file. */
  path: string;
  /** 1-based frame number within a video; absent for images. */
  frame?: number;
  /** Original [height, width]. */
  shape: [number, number];
  /** Letterboxed model input [height, width]. */
  inputShape: [number, number];
  /** Detections in original pixels, by descending score. */
  detections: Detection[];
  /** The labels file written (with --save-txt and at least one detection). */
  labelFile?: string;
}

/** What {@link runPredict} did. */
export interface PredictReport {
  saveDir: string;
  images: PredictedImage[];
  /** Annotated images and videos written. */
  saved: string[];
  /** Label files written. */
  labels: number;
  /** Milliseconds per image. */
  speed: { preprocess: number; inference: number; nms: number };
  /** The model input of the last image, (1, 3, H, W). */
  inputShape: [number, number, number, number];
}

/** Options of {@link runPredict}. */
export interface RunPredictOptions {
  logger?: Logger;
}

/** The class names as detect.py counts them: `2 circles, 1 square, ` (class order). */
export function countSummary(dets: readonly Detection[], names: readonly string[]): string {
  const counts = new Map<number, number>();
  for (const d of dets) counts.set(d.cls, (counts.get(d.cls) ?? 0) + 1);
  return [...counts].sort((a, b) => a[0] - b[0]).map(([c, n]) => `${n} ${names[c] ?? `class${c}`}${n > 1 ? 's' : ''}, `).join('');
}

/**
 * NMS on one image's decoded rows as detect.py runs it (best class per box), `--classes` applied
 * first as ultralytics applies it: a row whose best class is not wanted is dropped, so it neither
 * shows nor suppresses (with --agnostic-nms) a wanted box.
 */
export function postprocess(rows: Float32Array, nc: number, o: { confThres: number; iouThres: number; maxDet: number; classes?: readonly number[]; agnostic?: boolean }): Detection[] {
  const pred = o.classes === undefined ? rows : dropClasses(rows, nc, o.classes);
  return nonMaxSuppression(pred, nc, { confThres: o.confThres, iouThres: o.iouThres, maxDet: o.maxDet, classAgnostic: o.agnostic === true });
}

/** A copy of decoded rows with objectness 0 where the best class is not in `classes`. */
function dropClasses(rows: Float32Array, nc: number, classes: readonly number[]): Float32Array {
  const no = 5 + nc;
  const keep = new Set(classes);
  const out = rows.slice();
  for (let r = 0; r < out.length; r += no) {
    // First maximal class wins, as in nonMaxSuppression (torch.max).
    let best = 0;
    for (let k = 1; k < nc; k++) if (out[r + 5 + k]! > out[r + 5 + best]!) best = k;
    if (!keep.has(best)) out[r + 4] = 0;
  }
  return out;
}

/** The square input size for `imgsz` and the model: its fixed ONNX size, else `imgsz` rounded up to a stride multiple. */
export function inputShapeFor(imgsz: number, det: Pick<OpenedDetector, 'stride' | 'inputSize'>, weights: string, log: Logger): [number, number] {
  if (det.inputSize) {
    if (det.inputSize[0] !== imgsz || det.inputSize[1] !== imgsz) log.warn(`${weights} takes ${det.inputSize[0]}x${det.inputSize[1]} inputs (exported without --dynamic): --imgsz ${imgsz} ignored`);
    return det.inputSize;
  }
  const s = checkImgSize(imgsz, det.stride, log);
  return [s, s];
}

/**
 * `kd-trainer predict`, as ultralytics detect.py: runs a detector (.kdw, .pt or ONNX) on images, a
 * folder, a glob or videos, prints one line per image, and saves annotated images (videos as mp4)
 * and optionally YOLO label files to project/name (exp, exp2, …).
 * @example
 * const r = await runPredict(resolveOptions(PREDICT_SCHEMA, [{ weights: 'best.kdw', source: 'images/' }]).config);
 */
export async function runPredict(cfg: PredictConfig, opts: RunPredictOptions = {}): Promise<PredictReport> {
  const log = opts.logger ?? silentLogger;
  const classes = parseClasses(cfg.classes);
  const entries = await listSources(cfg.source);
  // Check for ffmpeg before loading a model, so a video without it fails at once.
  const firstVideo = entries.find((e) => e.kind === 'video');
  const tools = firstVideo ? requireFfmpeg(firstVideo.path) : undefined;

  const det = await openDetector(cfg.weights, { backend: backendForDevice(cfg.device, cfg.backend), logger: log });
  try {
    for (const n of det.notes) log.info(`note: ${n}`);
    if (classes?.some((c) => c >= det.nc)) log.warn(`--classes ${classes.join(' ')}: the model has ${det.nc} classes (0…${det.nc - 1})`);
    const shape = inputShapeFor(cfg.imgsz, det, cfg.weights, log);
    const saveDir = incrementPath(cfg.project, cfg.name, cfg.exist_ok);
    await mkdir(cfg.save_txt ? join(saveDir, 'labels') : saveDir, { recursive: true });

    const draw: AnnotateOptions = { lineWidth: cfg.line_thickness, hideLabels: cfg.hide_labels, hideConf: cfg.hide_conf };
    const nms = { confThres: cfg.conf_thres, iouThres: cfg.iou_thres, maxDet: cfg.max_det, ...(classes ? { classes } : {}), agnostic: cfg.agnostic_nms };
    const t = { pre: 0, inf: 0, nms: 0 };
    const images: PredictedImage[] = [];
    const saved: string[] = [];
    let labels = 0;
    let lastShape: [number, number] = shape;

    /** One image through the model: letterbox, forward, NMS, back to original pixels. */
    const detect = async (img: RgbImage): Promise<{ dets: Detection[]; input: [number, number]; inferMs: number }> => {
      const t0 = performance.now();
      const p = await prepareImage(img, shape);
      const t1 = performance.now();
      const out = await det.predictor.predict({ images: p.input, n: 1, height: p.height, width: p.width, targets: new Float32Array(0), nTargets: 0 });
      const t2 = performance.now();
      const dets = scaleDetections(postprocess(out.decoded, det.nc, nms), p, [img.height, img.width]);
      const t3 = performance.now();
      t.pre += t1 - t0 + out.preMs;
      t.inf += out.inferMs;
      t.nms += t3 - t2;
      lastShape = [p.height, p.width];
      return { dets, input: [p.height, p.width], inferMs: out.inferMs };
    };

    const record = async (path: string, img: RgbImage, r: { dets: Detection[]; input: [number, number] }, frame?: number): Promise<PredictedImage> => {
      const item: PredictedImage = { path, shape: [img.height, img.width], inputShape: r.input, detections: r.dets, ...(frame !== undefined ? { frame } : {}) };
      if (cfg.save_txt && r.dets.length > 0) {
        const stem = basename(path, extname(path));
        item.labelFile = join(saveDir, 'labels', `${stem}${frame !== undefined ? `_${frame}` : ''}.txt`);
        await writeFile(item.labelFile, `${yoloLabelLines(r.dets, item.shape, cfg.save_conf).join('\n')}\n`);
        labels++;
      }
      images.push(item);
      return item;
    };

    const line = (prefix: string, r: { dets: Detection[]; input: [number, number]; inferMs: number }) =>
      log.info(`${prefix}: ${r.input[0]}x${r.input[1]} ${r.dets.length ? countSummary(r.dets, det.names) : '(no detections), '}${r.inferMs.toFixed(1)}ms`);

    for (const [i, entry] of entries.entries()) {
      const counter = `${i + 1}/${entries.length}`;
      if (entry.kind === 'image') {
        const img = await readImage(entry);
        const r = await detect(img);
        line(`image ${counter} ${entry.path}`, r);
        await record(entry.path, img, r);
        if (!cfg.nosave) {
          const file = join(saveDir, basename(entry.path));
          await writeFile(file, await encodeImage(await annotateImage(img, r.dets, det.names, draw), file));
          saved.push(file);
        }
      } else {
        const file = await predictVideo(entry, tools!, saveDir, cfg.nosave, async (img, frame, frames) => {
          const r = await detect(img);
          line(`video ${counter} (${frame}/${frames || '?'}) ${entry.path}`, r);
          await record(entry.path, img, r, frame);
          return cfg.nosave ? img : annotateImage(img, r.dets, det.names, draw);
        });
        if (file) saved.push(file);
      }
    }

    const n = images.length || 1;
    const speed = { preprocess: t.pre / n, inference: t.inf / n, nms: t.nms / n };
    const inputShape: [number, number, number, number] = [1, 3, lastShape[0], lastShape[1]];
    log.info(`Speed: ${speed.preprocess.toFixed(1)}ms pre-process, ${speed.inference.toFixed(1)}ms inference, ${speed.nms.toFixed(1)}ms NMS per image at shape (${inputShape.join(', ')})`);
    if (cfg.save_txt || !cfg.nosave) {
      log.info(`Results saved to ${saveDir}`);
      if (cfg.save_txt) log.info(`${labels} labels saved to ${join(saveDir, 'labels')}`);
    }
    return { saveDir, images, saved, labels, speed, inputShape };
  } finally {
    await det.close();
  }
}

async function readImage(entry: SourceEntry): Promise<RgbImage> {
  try {
    return await decodeImage(entry.path);
  } catch (e) {
    throw new SourceError('PREDICT_IMAGE_UNREADABLE', `${entry.path}: cannot read the image (${(e as Error).message.split('\n')[0]})`, { cause: e });
  }
}

/** Runs `onFrame` on every frame of a video, writing what it returns to saveDir/<stem>.mp4 unless `nosave`. */
async function predictVideo(
  entry: SourceEntry, tools: Ffmpeg, saveDir: string, nosave: boolean,
  onFrame: (img: RgbImage, frame: number, frames: number) => Promise<RgbImage>,
): Promise<string | undefined> {
  const info = await probeVideo(entry.path, tools);
  const out = join(saveDir, `${basename(entry.path, extname(entry.path))}.mp4`);
  const writer = nosave ? undefined : await VideoWriter.open(out, info.width, info.height, info.fps, tools);
  let frame = 0;
  try {
    for await (const data of readVideoFrames(entry.path, info, tools)) {
      frame++;
      const annotated = await onFrame({ data, width: info.width, height: info.height }, frame, info.frames);
      await writer?.write(annotated.data);
    }
    if (frame === 0) throw new SourceError('PREDICT_VIDEO_FAILED', `${entry.path}: no frames decoded`);
    await writer?.close();
  } catch (e) {
    await writer?.abort();
    throw e;
  }
  return writer ? out : undefined;
}
