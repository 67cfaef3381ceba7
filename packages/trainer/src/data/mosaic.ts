/**
 * Canvas layouts before the random affine: the 4-image mosaic of ultralytics load_mosaic (a 2S
 * canvas split at a random centre) and the single letterboxed image used when mosaic is off.
 */
import { PAD_VALUE, type RgbImage } from './image.js';
import type { Rng } from './rng.js';

/** One image drawn on a canvas with its top-left corner at (x, y) in canvas pixels (may be negative). */
export interface Piece {
  image: RgbImage;
  x: number;
  y: number;
}

/** A virtual canvas: grey 114 with pieces on it, and the boxes on it as rows [cls, x1, y1, x2, y2] in pixels. */
export interface CanvasPlan {
  width: number;
  height: number;
  pieces: Piece[];
  boxes: Float32Array;
}

/** An image with its labels as rows [cls, cx, cy, w, h] normalised to the image. */
export interface LabelledImage {
  image: RgbImage;
  labels: Float32Array;
}

/** Normalised xywh rows shifted to pixel xyxy on a canvas, optionally clipped to [0, clipW]×[0, clipH]. */
function placeBoxes(labels: Float32Array, w: number, h: number, x: number, y: number, out: number[], clipW = Infinity, clipH = Infinity): void {
  for (let i = 0; i + 4 < labels.length; i += 5) {
    const cx = labels[i + 1]! * w + x, cy = labels[i + 2]! * h + y;
    const bw = labels[i + 3]! * w, bh = labels[i + 4]! * h;
    const clip = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
    out.push(labels[i]!, clip(cx - bw / 2, clipW), clip(cy - bh / 2, clipH), clip(cx + bw / 2, clipW), clip(cy + bh / 2, clipH));
  }
}

/** Draws the random mosaic centre (xc, yc), both uniform in [S/2, 3S/2) and truncated to integers. */
export function mosaicCentre(rng: Rng, size: number): [number, number] {
  const yc = Math.floor(rng.uniform(size / 2, 1.5 * size));
  const xc = Math.floor(rng.uniform(size / 2, 1.5 * size));
  return [xc, yc];
}

/**
 * Lays four images around (xc, yc) on a 2S×2S canvas: top-left, top-right, bottom-left,
 * bottom-right, each touching the centre; boxes are clipped to the canvas as in load_mosaic.
 */
export function mosaicPlan(quad: readonly LabelledImage[], size: number, xc: number, yc: number): CanvasPlan {
  if (quad.length !== 4) throw new RangeError(`mosaicPlan: quad must hold 4 images, got ${quad.length}`);
  const s2 = 2 * size;
  const pieces: Piece[] = [];
  const boxes: number[] = [];
  quad.forEach(({ image, labels }, i) => {
    const { width: w, height: h } = image;
    const x = i === 0 || i === 2 ? xc - w : xc;
    const y = i === 0 || i === 1 ? yc - h : yc;
    pieces.push({ image, x, y });
    placeBoxes(labels, w, h, x, y, boxes, s2, s2);
  });
  return { width: s2, height: s2, pieces, boxes: Float32Array.from(boxes) };
}

/** Centres one image (long side already S) on an S×S canvas (ultralytics letterbox, auto=False). */
export function letterboxPlan(item: LabelledImage, size: number): CanvasPlan {
  const { width: w, height: h } = item.image;
  const x = Math.max(0, Math.round((size - w) / 2 - 0.1));
  const y = Math.max(0, Math.round((size - h) / 2 - 0.1));
  const boxes: number[] = [];
  placeBoxes(item.labels, w, h, x, y, boxes);
  return { width: size, height: size, pieces: [{ image: item.image, x, y }], boxes: Float32Array.from(boxes) };
}

/**
 * Renders the part [x0, x0+w)×[y0, y0+h) of a canvas to packed RGB (row copies only). Pieces are
 * clipped to the canvas, so what lies outside it stays grey, as on ultralytics' fixed-size canvas.
 */
export function renderRegion(plan: CanvasPlan, x0: number, y0: number, w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h * 3).fill(PAD_VALUE);
  for (const { image, x, y } of plan.pieces) {
    const left = Math.max(x, 0, x0), right = Math.min(x + image.width, plan.width, x0 + w);
    const top = Math.max(y, 0, y0), bottom = Math.min(y + image.height, plan.height, y0 + h);
    if (right <= left || bottom <= top) continue;
    const len = (right - left) * 3;
    for (let row = top; row < bottom; row++) {
      const src = ((row - y) * image.width + (left - x)) * 3;
      out.set(image.data.subarray(src, src + len), ((row - y0) * w + (left - x0)) * 3);
    }
  }
  return out;
}

/** Copies [x0, x0+w)×[y0, y0+h) out of a packed RGB image, grey 114 where it falls outside. */
export function cropPad(src: Uint8Array, sw: number, sh: number, x0: number, y0: number, w: number, h: number): Uint8Array {
  return renderRegion(
    { width: sw, height: sh, pieces: [{ image: { data: src, width: sw, height: sh }, x: 0, y: 0 }], boxes: new Float32Array(0) },
    x0, y0, w, h,
  );
}
