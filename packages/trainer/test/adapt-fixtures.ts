import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeModel, exportOnnx, yoloDescription } from '@kd-edge/core';
import sharp from 'sharp';
import * as tf from '../src/tf.js';
import { synthesizeDataset } from '../src/data/synth.js';
import { modelWeights } from '../src/export/model-weights.js';
import { saveWeights } from '../src/model/weights-io.js';
import { createYoloModel } from '../src/model/yolo.js';
import { perturbBatchNorm } from './model-fixtures.js';

/** The two classes of the synthetic sets with `classes: 2`. */
export const NAMES = ['circle', 'square'];

/** kd-agent's capture file names: a 16-digit id. */
export const captureName = (id: number, ext: string): string => `${String(id).padStart(16, '0')}.${ext}`;

/**
 * Writes `frames` as a kd-agent capture folder: `<16-digit id>.<ext>` images, each with a `<id>.json`
 * sidecar (which adapt must not read as an image).
 */
export function writeCapture(dir: string, frames: { data: Buffer; ext: string }[], firstId = 1_700_000_000_000): string[] {
  mkdirSync(dir, { recursive: true });
  return frames.map((f, i) => {
    const id = firstId + i;
    const file = join(dir, captureName(id, f.ext));
    writeFileSync(file, f.data);
    writeFileSync(join(dir, captureName(id, 'json')), JSON.stringify({ v: 1, id, image: { file: captureName(id, f.ext) } }));
    return file;
  });
}

/**
 * Frames a device of domain `b` would capture: `n` synthetic easy images at 64 px, the first `wide`
 * of them widened to 80×64 (so labelling letterboxes them), as JPEG bytes.
 */
export async function synthFrames(root: string, n: number, seed: number, wide = 2): Promise<{ data: Buffer; ext: string }[]> {
  const out = join(root, `synth-b-${seed}-${n}`);
  await synthesizeDataset({ out, train: n, val: 1, imgsz: 64, classes: 2, seed, domain: 'b', difficulty: 'easy' });
  const dir = join(out, 'images', 'train');
  const files = readdirSync(dir).sort();
  return Promise.all(files.map(async (f, i) => {
    let img = sharp(join(dir, f));
    if (i < wide) img = img.extend({ right: 16, background: { r: 90, g: 80, b: 60 } });
    return { data: await img.jpeg({ quality: 90 }).toBuffer(), ext: 'jpg' };
  }));
}

/**
 * A teacher whose detections depend on the picture: a random small YOLOv5 (width 0.25) with perturbed
 * BatchNorm, convolutions scaled ×3 so the image's signal reaches the head, and objectness biases of the
 * P4/P5 levels at 0. It knows nothing, but gives two or three boxes per frame, some certain and some
 * scoring around 0.5, which is all the structure of a job needs. Exported to ONNX at 64 px with a dynamic batch.
 */
export function writeTeacher(file: string, opts: { nc?: number; names?: string[]; seed?: number } = {}): string {
  const nc = opts.nc ?? 2;
  const names = opts.names ?? (nc === 2 ? NAMES : Array.from({ length: nc }, (_, i) => `shape${i}`));
  const t = createYoloModel({ ...yoloDescription({ depth_multiple: 0.33, width_multiple: 0.25 }, nc), names }, { seed: opts.seed ?? 5 });
  perturbBatchNorm(t, (opts.seed ?? 5) * 10 + 1);
  for (const [name, v] of t.params) if (/conv\.weight$/.test(name)) v.assign(v.mul(3));
  // Head weights ×0.03: some boxes still saturate, others score between 0.2 and 0.95, so the threshold matters.
  for (const [name, v] of t.params) if (/^model\.24\.m\.\d\.weight$/.test(name)) v.assign(v.mul(0.03));
  for (const [name, v] of t.params) {
    if (!/^model\.24\.m\.[12]\.bias$/.test(name)) continue;
    const b = v.dataSync().slice() as Float32Array;
    for (let a = 0; a < 3; a++) b[a * (5 + nc) + 4] = 0;
    v.assign(tf.tensor1d(b));
  }
  writeFileSync(file, encodeModel(exportOnnx(t.description, modelWeights(t), { imgsz: 64, dynamic: 'batch', names })));
  t.dispose();
  return file;
}

/** The serving student: a random narrow YOLOv5 (width 0.125) with the synthetic classes' names, as .kdw. */
export async function writeStudent(file: string, opts: { names?: string[]; seed?: number } = {}): Promise<string> {
  const names = opts.names ?? NAMES;
  const m = createYoloModel({ ...yoloDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, names.length), names }, { seed: opts.seed ?? 7 });
  await saveWeights(file, m);
  m.dispose();
  return file;
}

/** Labelled images of the student's classes (domain `a`, 64 px): a dataset YAML whose val split has `n` images. */
export async function labelledVal(root: string, n = 8): Promise<string> {
  return (await synthesizeDataset({ out: join(root, 'val-a'), train: 1, val: n, imgsz: 64, classes: 2, seed: 21, difficulty: 'easy' })).yaml;
}
