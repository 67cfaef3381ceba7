/** An axis-aligned box as [x1, y1, x2, y2] in pixels. */
export type BoxXYXY = [number, number, number, number];

/** One predicted box after NMS. */
export interface Detection {
  box: BoxXYXY;
  score: number;
  cls: number;
}

/** One ground-truth box. `crowd` follows COCO's iscrowd (default false). */
export interface Annotation {
  box: BoxXYXY;
  cls: number;
  crowd?: boolean;
}
