// Shared fixtures of the predict-*.test.ts and val-*.test.ts files: a tiny detector that finds
// boxes, non-square images, and an ONNX "detector" whose output0 is fixed (boxes known exactly).
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DataType, decodeYoloOutputs, encodeModel, makeModel, makeNode, makeTensor, makeValueInfo, nonMaxSuppression, type Detection } from '@kd-edge/core';
import sharp from 'sharp';
import * as tf from '../src/tf.js';
import { decodeImage, letterboxImage } from '../src/data/image.js';
import type { DetectionModel } from '../src/model/types.js';
import { tinyDetector } from './model-fixtures.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../src/bin/kd-trainer.ts', import.meta.url));

/** Runs the kd-trainer CLI from sources; `env` replaces the environment when given. */
export async function cli(args: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, ['--conditions=source', '--import', 'tsx', BIN, ...args], { timeout: 120_000, ...(env ? { env } : {}) });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

/** Bias offsets {@link boxyDetector} adds to the Detect convolutions. */
export interface BoxyOptions {
  /** Added to every objectness logit (default 6: a few dozen boxes per image pass 0.25). */
  objBias?: number;
  /** Added to the logits of the classes an anchor does not favour (default 0; −8 gives one class per box). */
  otherClassBias?: number;
  /** Added to the w and h logits (default 0; negative for smaller boxes than the image). */
  whBias?: number;
}

/**
 * The tiny 2-class detector of model-fixtures with its Detect biases moved so that a random model
 * still passes detect.py's 0.25 confidence with a few dozen boxes per image. The favoured class
 * alternates over anchors and levels, so both classes show.
 */
export function boxyDetector(seed: number, opts: BoxyOptions = {}): DetectionModel {
  const { objBias = 6, otherClassBias = 0, whBias = 0 } = opts;
  const model = tinyDetector(seed);
  const no = 5 + model.nc;
  for (let l = 0; l < model.nl; l++) {
    const bias = model.params.get(`model.24.m.${l}.bias`)!;
    const b = bias.dataSync().slice() as Float32Array;
    for (let a = 0; a < b.length / no; a++) {
      b[a * no + 2]! += whBias;
      b[a * no + 3]! += whBias;
      b[a * no + 4]! += objBias;
      for (let k = 0; k < model.nc; k++) b[a * no + 5 + k]! += k === (a + l) % model.nc ? 0.6 : otherClassBias;
    }
    bias.assign(tf.tensor1d(b));
  }
  return model;
}

/** What detect.py would find, computed without the predict code: letterbox, forward, decode, NMS, scale back. */
export async function directDetections(
  model: DetectionModel, file: string, imgsz: number, nms: { confThres: number; iouThres: number; maxDet: number },
): Promise<{ dets: Detection[]; shape: [number, number] }> {
  const img = await decodeImage(file);
  const lb = await letterboxImage(img.data, img.width, img.height, imgsz);
  const x = tf.tensor4d(Float32Array.from(lb.data, (v) => v / 255), [1, imgsz, imgsz, 3]);
  const outs = model.forward(x, false);
  const raw = await Promise.all(outs.map((o) => o.data() as Promise<Float32Array>));
  const levels = outs.map((o, i) => ({ data: raw[i]!, ny: o.shape[1], nx: o.shape[2], stride: model.strides[i]!, anchors: model.anchors[i]! }));
  tf.dispose([x, ...outs]);
  const dets = nonMaxSuppression(decodeYoloOutputs(levels, 1, model.nc), model.nc, nms);
  const [rh, rw] = lb.ratio;
  const [px, py] = lb.pad;
  const sx = (v: number) => Math.min(Math.max((v - px) / rw, 0), img.width);
  const sy = (v: number) => Math.min(Math.max((v - py) / rh, 0), img.height);
  return { dets: dets.map((d) => ({ ...d, box: [sx(d.box[0]), sy(d.box[1]), sx(d.box[2]), sy(d.box[3])] })), shape: [img.height, img.width] };
}

/** Writes `src` resized to width×height (no aspect kept) in the format of `out`'s extension. */
export async function resizedCopy(src: string, out: string, width: number, height: number): Promise<void> {
  await sharp(src).resize(width, height, { fit: 'fill' }).toFile(out);
}

/**
 * An ONNX model with a static [1, 3, S, S] input whose `output0` [1, A, 5+nc] is always `rows`
 * (decoded [cx, cy, w, h, obj, cls…] in input pixels): detections known in advance, so mapping them
 * back to the original image can be checked exactly. The input still feeds the output (× 0).
 */
export function writeFixedOutputOnnx(file: string, rows: readonly number[][], opts: { imgsz: number; nc: number; metadata: Record<string, string> }): void {
  const no = 5 + opts.nc;
  for (const r of rows) if (r.length !== no) throw new RangeError(`each row needs ${no} values`);
  const graph = {
    name: 'fixed',
    node: [
      makeNode('ReduceMean', ['images'], ['mean'], { axes: [1, 2, 3], keepdims: 0 }, 'mean'),
      makeNode('Mul', ['mean', 'zero'], ['nothing'], {}, 'times_zero'),
      makeNode('Add', ['rows', 'nothing'], ['output0'], {}, 'add'),
    ],
    initializer: [
      makeTensor('rows', DataType.FLOAT, [1, rows.length, no], rows.flat()),
      makeTensor('zero', DataType.FLOAT, [1], [0]),
    ],
    input: [makeValueInfo('images', DataType.FLOAT, [1, 3, opts.imgsz, opts.imgsz])],
    output: [makeValueInfo('output0', DataType.FLOAT, [1, rows.length, no])],
    valueInfo: [],
  };
  writeFileSync(file, encodeModel(makeModel({ graph, opset: 13, metadata: opts.metadata })));
}
