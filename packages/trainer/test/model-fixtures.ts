import { encodeModel, exportOnnx, yoloDescription, type ModelProto, type OnnxExportOptions } from '@kd-edge/core';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '../src/tf.js';
import { modelWeights } from '../src/export/model-weights.js';
import { saveWeights } from '../src/model/weights-io.js';
import { createYoloModel } from '../src/model/yolo.js';
import type { DetectionModel, TrainableModel } from '../src/model/types.js';

/** Seeded uniform values in [lo, hi) (xorshift). */
export function uniform(n: number, seed: number, lo = 0, hi = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out[i] = lo + (s / 4294967296) * (hi - lo);
  }
  return out;
}

/** Gives BatchNorm non-trivial statistics, so that the export's folding is part of what is compared. */
export function perturbBatchNorm(model: TrainableModel, seed: number): void {
  let k = seed;
  for (const [name, v] of [...model.params, ...model.buffers]) {
    const n = v.size;
    if (name.endsWith('.bn.weight')) v.assign(tf.tensor(uniform(n, k++, 0.5, 1.5), v.shape));
    else if (name.endsWith('.bn.bias')) v.assign(tf.tensor(uniform(n, k++, -0.3, 0.3), v.shape));
    else if (name.endsWith('.running_mean')) v.assign(tf.tensor(uniform(n, k++, -0.5, 0.5), v.shape));
    else if (name.endsWith('.running_var')) v.assign(tf.tensor(uniform(n, k++, 0.3, 2.0), v.shape));
  }
}

/** Logit bias pushed onto saturating channels (σ(25) is exactly 1 in float32, σ(−25) ≈ 1.4e-11). */
export const SATURATE = 25;

/**
 * Saturates level 0, anchor 0: x and class 0 at −25, w and objectness at +25 (k = 0, 5 and 2, 4),
 * so the logit-recovery clamp is exercised on every channel kind.
 */
export function saturateLevel0Anchor0(model: DetectionModel): void {
  const bias = model.params.get('model.24.m.0.bias')!;
  const b = bias.dataSync().slice() as Float32Array;
  b[0] = -SATURATE;
  b[5] = -SATURATE;
  b[2] = SATURATE;
  b[4] = SATURATE;
  bias.assign(tf.tensor1d(b));
}

/** A tiny 2-class detector (depth 0.33, width 0.125) with perturbed BatchNorm. */
export function tinyDetector(seed: number, anchors?: number[][]): DetectionModel {
  const model = createYoloModel(yoloDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, 2, anchors), { seed });
  perturbBatchNorm(model, seed * 10 + 1);
  return model;
}

/** Exports `model` to `dir/name` and returns the path. `edit` may change the proto first. */
export function writeExport(model: TrainableModel, dir: string, name: string, opts: OnnxExportOptions, edit?: (m: ModelProto) => void): string {
  const proto = exportOnnx(model.description, modelWeights(model), opts);
  edit?.(proto);
  const file = join(dir, name);
  writeFileSync(file, encodeModel(proto));
  return file;
}

/** "Real" pictures: gradients and a few solid shapes, NHWC in 0..1. */
export function pictures(n: number, h: number, w: number): Float32Array {
  const out = new Float32Array(n * h * w * 3);
  for (let b = 0; b < n; b++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const inRect = x > w / 4 + b && x < w / 2 && y > h / 3 && y < (2 * h) / 3;
    const inDisc = (x - 0.7 * w) ** 2 + (y - 0.3 * h) ** 2 < (0.15 * w) ** 2;
    const i = ((b * h + y) * w + x) * 3;
    out[i] = inRect ? 0.9 : (x / w) * 0.5;
    out[i + 1] = inDisc ? 0.8 : (y / h) * 0.4 + b * 0.1;
    out[i + 2] = inRect || inDisc ? 0.1 : 0.45;
  }
  return out;
}

/** The model's eval-mode logits per level (NHWC), as plain arrays. */
export function tfjsLevels(model: DetectionModel, nhwc: Float32Array, n: number, h: number, w: number): Float32Array[] {
  const x = tf.tensor4d(nhwc, [n, h, w, 3]);
  const outs = model.forward(x, false);
  const data = outs.map((t) => t.dataSync() as Float32Array);
  tf.dispose([x, ...outs]);
  return data;
}

/** Largest |v|. */
export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** Index, value pair of the worst violation of |got − want| ≤ tol(i), or undefined when none. */
export function worstViolation(
  got: ArrayLike<number>, want: ArrayLike<number>, tol: (i: number) => number,
): { i: number; got: number; want: number; tol: number } | undefined {
  if (got.length !== want.length) return { i: -1, got: got.length, want: want.length, tol: 0 };
  let worst: { i: number; got: number; want: number; tol: number; excess: number } | undefined;
  for (let i = 0; i < want.length; i++) {
    const t = tol(i);
    const excess = Math.abs(got[i]! - want[i]!) - t;
    if (!(excess <= 0) && (worst === undefined || excess > worst.excess)) worst = { i, got: got[i]!, want: want[i]!, tol: t, excess };
  }
  return worst === undefined ? undefined : { i: worst.i, got: worst.got, want: worst.want, tol: worst.tol };
}

/**
 * The distillation tests' teacher: an untrained small YOLOv5 (width 0.25, seed 9) with `nc` classes, exported
 * to ONNX at 64 px with a dynamic batch, and also saved as `.kdw` when `kdw` names a file. Its val mAP is about
 * 0, so any student reaches it. Needs a selected backend.
 */
export async function writeUntrainedTeacher(file: string, opts: { nc?: number; kdw?: string } = {}): Promise<string> {
  const t = createYoloModel(yoloDescription({ depth_multiple: 0.33, width_multiple: 0.25 }, opts.nc ?? 2), { seed: 9 });
  try {
    writeFileSync(file, encodeModel(exportOnnx(t.description, modelWeights(t), { imgsz: 64, dynamic: 'batch' })));
    if (opts.kdw) await saveWeights(opts.kdw, t);
  } finally {
    t.dispose();
  }
  return file;
}
