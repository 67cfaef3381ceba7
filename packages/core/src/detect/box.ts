import type { BoxXYXY } from './types.js';

/** Converts a centre box [cx, cy, w, h] to corners [x1, y1, x2, y2]. */
export function xywhToXyxy(box: readonly [number, number, number, number]): BoxXYXY {
  const [cx, cy, w, h] = box;
  return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2];
}

/** Converts corners [x1, y1, x2, y2] to a centre box [cx, cy, w, h]. */
export function xyxyToXywh(box: readonly [number, number, number, number]): [number, number, number, number] {
  const [x1, y1, x2, y2] = box;
  return [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1];
}

/** Area of an xyxy box; zero when the box is empty or inverted. */
export function boxArea(box: readonly [number, number, number, number]): number {
  return Math.max(0, box[2] - box[0]) * Math.max(0, box[3] - box[1]);
}

/**
 * Intersection over union of two xyxy boxes, as ultralytics `box_iou` computes it
 * (`inter / (areaA + areaB − inter)`); 0 when the union is empty.
 */
export function boxIou(a: readonly [number, number, number, number], b: readonly [number, number, number, number]): number {
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  if (w <= 0) return 0;
  const h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  if (h <= 0) return 0;
  const inter = w * h;
  const union = boxArea(a) + boxArea(b) - inter;
  return union > 0 ? inter / union : 0;
}
