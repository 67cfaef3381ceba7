/**
 * Training augmentation following ultralytics YOLOv5 (utils/dataloaders.py, utils/augmentations.py):
 * mosaic or letterbox, random_perspective (affine part), augment_hsv, flips. Every random number
 * comes from the Rng passed in, so one (seed, epoch, index) gives the same bytes every time.
 *
 * Pixel work: the affine resampling runs in a sharp pipeline (libvips threads); canvases are
 * assembled with row copies, and the HSV lookup runs in JS (see hsv.ts), which the loader keeps
 * off the training thread by running in a worker.
 */
import sharp from 'sharp';
import type { AugmentHyp } from './types.js';
import { PAD_VALUE } from './image.js';
import { applyHsv, hsvGains } from './hsv.js';
import { cropPad, letterboxPlan, mosaicCentre, mosaicPlan, renderRegion, type CanvasPlan, type LabelledImage } from './mosaic.js';
import type { Rng } from './rng.js';

/** ultralytics data/hyps/hyp.scratch-low.yaml augmentation values. */
export const DEFAULT_HYP: Readonly<AugmentHyp> = Object.freeze({
  hsv_h: 0.015, hsv_s: 0.7, hsv_v: 0.4, degrees: 0, translate: 0.1, scale: 0.5, shear: 0,
  fliplr: 0.5, flipud: 0, mosaic: 1.0,
});

/** Affine map q = L·p + t in continuous pixel coordinates: [a, b, c, d, tx, ty] with L = [[a, b], [c, d]]. */
export type Affine = [number, number, number, number, number, number];

/** The random affine ultralytics random_perspective draws, plus the scale factor its box filter needs. */
export interface RandomAffine {
  m: Affine;
  scale: number;
}

/**
 * Draws M = T·S·R·C (random_perspective without perspective): C centres the canvas, R rotates by
 * U(-degrees, degrees) and scales by U(1-scale, 1+scale), S shears, T translates to the output
 * centre ± translate·size. Flips are folded in afterwards as mirror maps of the output.
 */
export function randomAffine(rng: Rng, hyp: AugmentHyp, canvasW: number, canvasH: number, size: number): RandomAffine {
  const angle = rng.uniform(-hyp.degrees, hyp.degrees) * Math.PI / 180;
  const s = rng.uniform(1 - hyp.scale, 1 + hyp.scale);
  const shx = Math.tan(rng.uniform(-hyp.shear, hyp.shear) * Math.PI / 180);
  const shy = Math.tan(rng.uniform(-hyp.shear, hyp.shear) * Math.PI / 180);
  const tx = rng.uniform(0.5 - hyp.translate, 0.5 + hyp.translate) * size;
  const ty = rng.uniform(0.5 - hyp.translate, 0.5 + hyp.translate) * size;
  // cv2.getRotationMatrix2D(center=(0,0), angle, scale): [[α, β], [-β, α]].
  const al = s * Math.cos(angle), be = s * Math.sin(angle);
  const a = al + shx * -be, b = be + shx * al;
  const c = shy * al - be, d = shy * be + al;
  const cx = -canvasW / 2, cy = -canvasH / 2;
  return { m: [a, b, c, d, a * cx + b * cy + tx, c * cx + d * cy + ty], scale: s };
}

/** Composes a mirror of the size×size output onto `m` (x → size−x and/or y → size−y). */
export function flipAffine(m: Affine, size: number, lr: boolean, ud: boolean): Affine {
  let [a, b, c, d, tx, ty] = m;
  if (lr) { a = -a; b = -b; tx = size - tx; }
  if (ud) { c = -c; d = -d; ty = size - ty; }
  return [a, b, c, d, tx, ty];
}

/**
 * Maps canvas boxes [cls, x1, y1, x2, y2] through `m` into the size×size output, clips them and
 * keeps ultralytics box_candidates (w, h > 2 px, area kept > 10 %, aspect < 100). Returns rows
 * [cls, cx, cy, w, h] normalised to the output.
 */
export function transformBoxes(boxes: Float32Array, m: Affine, size: number, scale: number): Float32Array {
  const [a, b, c, d, tx, ty] = m;
  const out: number[] = [];
  const clip = (v: number) => Math.min(Math.max(v, 0), size);
  for (let i = 0; i + 4 < boxes.length; i += 5) {
    const x1 = boxes[i + 1]!, y1 = boxes[i + 2]!, x2 = boxes[i + 3]!, y2 = boxes[i + 4]!;
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (const [px, py] of [[x1, y1], [x2, y2], [x1, y2], [x2, y1]] as const) {
      const qx = a * px + b * py + tx, qy = c * px + d * py + ty;
      minX = Math.min(minX, qx); maxX = Math.max(maxX, qx);
      minY = Math.min(minY, qy); maxY = Math.max(maxY, qy);
    }
    minX = clip(minX); maxX = clip(maxX); minY = clip(minY); maxY = clip(maxY);
    if (!boxCandidate((x2 - x1) * scale, (y2 - y1) * scale, maxX - minX, maxY - minY)) continue;
    out.push(boxes[i]!, (minX + maxX) / 2 / size, (minY + maxY) / 2 / size, (maxX - minX) / size, (maxY - minY) / size);
  }
  return Float32Array.from(out);
}

/** ultralytics box_candidates for one box: before (w1, h1, scaled) and after (w2, h2) augmentation. */
export function boxCandidate(w1: number, h1: number, w2: number, h2: number, whThr = 2, arThr = 100, areaThr = 0.1): boolean {
  const eps = 1e-16;
  const ar = Math.max(w2 / (h2 + eps), h2 / (w2 + eps));
  return w2 > whThr && h2 > whThr && (w2 * h2) / (w1 * h1 + eps) > areaThr && ar < arThr;
}

/**
 * Resamples the canvas through `m` into a size×size RGB image, grey 114 outside the canvas
 * (cv2.warpAffine with borderValue 114, bilinear). Only the canvas region that lands in the
 * output is assembled; the resampling runs in sharp.
 */
export async function warpCanvas(plan: CanvasPlan, m: Affine, size: number): Promise<Uint8Array> {
  const [a, b, c, d, tx, ty] = m;
  const det = a * d - b * c;
  if (Math.abs(det) < 1e-12) throw new RangeError('warpCanvas: the affine map is singular');
  const ia = d / det, ib = -b / det, ic = -c / det, id = a / det;
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  for (const [qx, qy] of [[0, 0], [size, 0], [0, size], [size, size]] as const) {
    const px = ia * (qx - tx) + ib * (qy - ty), py = ic * (qx - tx) + id * (qy - ty);
    minX = Math.min(minX, px); maxX = Math.max(maxX, px);
    minY = Math.min(minY, py); maxY = Math.max(maxY, py);
  }
  // A grey margin around the region keeps the bilinear taps at its edges inside it, and lets the
  // canvas border blend into grey as it would on an unbounded canvas.
  const mg = 2;
  const rx = Math.max(-mg, Math.floor(minX) - mg), ry = Math.max(-mg, Math.floor(minY) - mg);
  const rw = Math.min(plan.width + mg, Math.ceil(maxX) + mg) - rx, rh = Math.min(plan.height + mg, Math.ceil(maxY) + mg) - ry;
  if (rw <= 0 || rh <= 0) return new Uint8Array(size * size * 3).fill(PAD_VALUE);
  const region = renderRegion(plan, rx, ry, rw, rh);
  // Output of p_local: q = L·p_local + t_l.
  const tlx = tx + a * rx + b * ry, tly = ty + c * rx + d * ry;
  if (a === 1 && b === 0 && c === 0 && d === 1 && Number.isInteger(tlx) && Number.isInteger(tly)) {
    return cropPad(region, rw, rh, -tlx, -tly, size, size);
  }
  // libvips maps pixel indices (centres at integers) and always outputs the bounding box of the
  // transformed input rectangle, its corner rounded half away from zero (VIPS_ROUND_INT in
  // vips__transform_set_area), whatever odx/ody: content they move out of that box is lost. So
  // only the sub-pixel part of the translation goes to libvips and the whole pixels to the crop.
  const tix = tlx + (a + b) / 2 - 0.5, tiy = tly + (c + d) / 2 - 0.5;
  let bx = Infinity, by = Infinity;
  for (const [px, py] of [[0, 0], [rw, 0], [0, rh], [rw, rh]] as const) {
    bx = Math.min(bx, a * px + b * py);
    by = Math.min(by, c * px + d * py);
  }
  const kx = Math.floor(bx + tix), ky = Math.floor(by + tiy);
  const { data, info } = await sharp(region, { raw: { width: rw, height: rh, channels: 3 } })
    .affine([[a, b], [c, d]], {
      odx: tix + vipsRound(bx) - kx, ody: tiy + vipsRound(by) - ky,
      interpolator: 'bilinear', background: { r: PAD_VALUE, g: PAD_VALUE, b: PAD_VALUE },
    })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return cropPad(data, info.width, info.height, -kx, -ky, size, size);
}

/** C's (int)(v ± 0.5): round half away from zero, as libvips' VIPS_ROUND_INT. */
function vipsRound(v: number): number {
  return v > 0 ? Math.floor(v + 0.5) : Math.ceil(v - 0.5);
}

/** Where training samples come from: `load` returns an image resized to long side `size`, with its labels. */
export interface SampleSource {
  readonly count: number;
  readonly size: number;
  load(index: number): Promise<LabelledImage>;
  /**
   * The [start, count) range a mosaic around `index` draws its other tiles from (default: all):
   * labelled and unlabelled images are never mixed in one sample.
   */
  pool?(index: number): [number, number];
}

/** One augmented training sample: size×size RGB and rows [cls, cx, cy, w, h] normalised. */
export interface AugmentedSample {
  data: Uint8Array;
  labels: Float32Array;
}

/**
 * Builds the training sample for `index` the way ultralytics LoadImagesAndLabels.__getitem__ does
 * with augment=True: mosaic (probability hyp.mosaic) or letterbox, random affine, HSV, flips.
 * @example
 * const s = await augmentSample(source, 7, DEFAULT_HYP, Rng.derive(seed, epoch, 7));
 */
export async function augmentSample(source: SampleSource, index: number, hyp: AugmentHyp, rng: Rng): Promise<AugmentedSample> {
  const size = source.size;
  // Every random draw happens before any await, so the stream never depends on timing.
  const useMosaic = rng.chance(hyp.mosaic);
  let quad: number[] = [index];
  let centre: [number, number] = [0, 0];
  if (useMosaic) {
    const [start, count] = source.pool?.(index) ?? [0, source.count];
    for (let k = 0; k < 3; k++) quad.push(start + rng.int(0, count - 1));
    quad = rng.shuffle(quad);
    centre = mosaicCentre(rng, size);
  }
  const canvas = useMosaic ? 2 * size : size;
  const affine = randomAffine(rng, hyp, canvas, canvas, size);
  const gains = hsvGains(() => rng.next(), hyp.hsv_h, hyp.hsv_s, hyp.hsv_v);
  const ud = rng.chance(hyp.flipud);
  const lr = rng.chance(hyp.fliplr);

  const loaded = await Promise.all(quad.map((i) => source.load(i)));
  const plan = useMosaic ? mosaicPlan(loaded, size, centre[0], centre[1]) : letterboxPlan(loaded[0]!, size);
  const m = flipAffine(affine.m, size, lr, ud);
  const data = await warpCanvas(plan, m, size);
  if (gains) applyHsv(data, gains);
  return { data, labels: transformBoxes(plan.boxes, m, size, affine.scale) };
}
