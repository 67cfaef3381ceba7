import { decodeYoloOutputs, nonMaxSuppression, type Detection } from '@kd-edge/core';
import type { HeadGeometry, TeacherOutput } from './types.js';

/** Options of {@link pseudoLabels}. */
export interface PseudoLabelOptions {
  /** Keep the teacher's detections scoring (objectness × class) at least this; default 0.5. */
  conf?: number;
  /** NMS IoU threshold; default 0.45 (ultralytics' predict). */
  iou?: number;
}

/**
 * The teacher's confident detections on some images of a batch, in the batch's pixels (one list per entry
 * of `images`): decoded and suppressed as ultralytics' predict does (one class per box), clipped to the
 * image, boxes under 2 px on a side dropped. `kd-trainer adapt` writes them as labels.
 * @example
 * const [dets] = pseudoDetections(teacherOut, geometry, batch.n, batch.height, batch.width, [0], { conf: 0.5 });
 */
export function pseudoDetections(
  out: TeacherOutput, geometry: HeadGeometry, n: number, height: number, width: number, images: readonly number[],
  opts: PseudoLabelOptions = {},
): Detection[][] {
  const conf = opts.conf ?? 0.5;
  const iou = opts.iou ?? 0.45;
  if (!(conf >= 0 && conf <= 1)) throw new RangeError(`opts.conf: expected a number in [0, 1], got ${String(conf)}`);
  if (!out.levels) throw new RangeError('teacher outputs have no detection levels to label images with');
  if (images.length === 0) return [];
  const { nc } = geometry;
  const levels = out.levels.map((l, i) => ({ ...l, stride: geometry.strides[i]!, anchors: geometry.anchors[i]! }));
  const decoded = decodeYoloOutputs(levels, n, nc);
  const per = decoded.length / n;
  return images.map((b) => {
    if (!(Number.isInteger(b) && b >= 0 && b < n)) throw new RangeError(`images: ${b} is not an image of a batch of ${n}`);
    const kept: Detection[] = [];
    for (const d of nonMaxSuppression(decoded.subarray(b * per, (b + 1) * per), nc, { confThres: conf, iouThres: iou })) {
      // Clipped to the image, as ultralytics clips predicted boxes.
      const x1 = Math.max(d.box[0], 0), y1 = Math.max(d.box[1], 0);
      const x2 = Math.min(d.box[2], width), y2 = Math.min(d.box[3], height);
      if (x2 - x1 < 2 || y2 - y1 < 2) continue;
      kept.push({ ...d, box: [x1, y1, x2, y2] });
    }
    return kept;
  });
}

/**
 * The teacher's confident detections on some images of a batch, as training targets: rows
 * [imageInBatch, cls, cx, cy, w, h] normalised to the batch image size, for the positions `images`
 * ({@link pseudoDetections}).
 * @example
 * const rows = pseudoLabels(teacherOut, geometry, batch.n, batch.height, batch.width, batch.unlabeled, { conf: 0.5 });
 */
export function pseudoLabels(
  out: TeacherOutput, geometry: HeadGeometry, n: number, height: number, width: number, images: readonly number[],
  opts: PseudoLabelOptions = {},
): Float32Array {
  const dets = pseudoDetections(out, geometry, n, height, width, images, opts);
  const rows: number[] = [];
  images.forEach((b, k) => {
    for (const { box: [x1, y1, x2, y2], cls } of dets[k]!) {
      rows.push(b, cls, (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height);
    }
  });
  return Float32Array.from(rows);
}

/** The batch's targets with `extra` rows added (kept sorted by image, as the loader makes them). */
export function withTargets(targets: Float32Array, nTargets: number, extra: Float32Array): { targets: Float32Array; nTargets: number } {
  if (extra.length === 0) return { targets, nTargets };
  const rows: number[][] = [];
  for (let k = 0; k < nTargets; k++) rows.push(Array.from(targets.subarray(k * 6, k * 6 + 6)));
  for (let k = 0; k < extra.length; k += 6) rows.push(Array.from(extra.subarray(k, k + 6)));
  rows.sort((a, b) => a[0]! - b[0]!);
  return { targets: Float32Array.from(rows.flat()), nTargets: rows.length };
}
