import { readdir, readFile } from 'node:fs/promises';
import { extname, join, parse } from 'node:path';
import { evaluateCoco, type Annotation, type BenchMessage, type EvalImage } from '@kd-edge/core';
import type { LoadedModel } from './loaded-model.js';

const IMAGE_EXTS = new Set(['.jpg', '.jpeg', '.png', '.bmp', '.webp']);

/** mAP of a model on its package's `val/` set, measured on the device. */
export type OnDeviceAccuracy = NonNullable<BenchMessage['accuracy']>;

/**
 * Runs the loaded model over the package's `val/images` with validation thresholds (conf 0.001,
 * IoU 0.6, as `kd-trainer val` and ultralytics val.py) and scores it against `val/labels` (YOLO txt)
 * with core's COCO mAP. Undefined when the package has no val set.
 */
export async function onDeviceAccuracy(loaded: LoadedModel): Promise<OnDeviceAccuracy | undefined> {
  const val = loaded.manifest.val;
  if (val === undefined) return undefined;
  const imagesDir = join(loaded.stored.dir, val.images);
  const labelsDir = join(loaded.stored.dir, val.labels);
  const names = (await readdir(imagesDir)).filter((n) => IMAGE_EXTS.has(extname(n).toLowerCase())).sort();
  const nc = loaded.manifest.names.length;
  const images: EvalImage[] = [];
  for (const name of names) {
    const r = await loaded.detector.detect(await readFile(join(imagesDir, name)), { conf: 0.001, iou: 0.6, maxDet: 300 });
    const labelText = await readFile(join(labelsDir, `${parse(name).name}.txt`), 'utf8').catch(() => '');
    images.push({
      detections: r.detections.map((d) => ({ box: d.box, score: d.score, cls: d.cls })),
      annotations: yoloLabels(labelText, r.width, r.height, nc),
    });
  }
  if (images.length === 0) return undefined;
  const e = evaluateCoco(images, nc);
  return { map50: e.map50, map: e.map, images: images.length };
}

/** YOLO label lines (class cx cy w h, normalised) as pixel boxes; lines that do not parse are skipped. */
export function yoloLabels(text: string, width: number, height: number, nc: number): Annotation[] {
  const out: Annotation[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length < 5 || f.some((v) => !Number.isFinite(v))) continue;
    const [cls, cx, cy, w, h] = f as [number, number, number, number, number];
    if (!Number.isInteger(cls) || cls < 0 || cls >= nc) continue;
    out.push({ cls, box: [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height] });
  }
  return out;
}
