/**
 * The image transforms of classification, as ultralytics YOLOv5 v7.0 applies them: for training
 * `classify_albumentations` (RandomResizedCrop, HorizontalFlip, ColorJitter, Normalize), for validation
 * `classify_transforms` (CenterCrop: the central square, resized; Normalize). Random draws come from a
 * seeded {@link Rng}, so a seed, epoch and image give the same pixels every time.
 */
import sharp from 'sharp';
import type { RgbImage } from '../data/image.js';
import type { Rng } from '../data/rng.js';
import type { Normalisation } from './normalisation.js';

/** Training augmentation settings (ultralytics classify_albumentations' arguments). */
export interface ClassifyAugment {
  /** Area fraction range of the random crop (default [0.08, 1]). */
  scale: [number, number];
  /** Aspect-ratio range of the random crop (default [3/4, 4/3]). */
  ratio: [number, number];
  /** Probability of a horizontal flip (default 0.5). */
  fliplr: number;
  /** ColorJitter strength for brightness, contrast and saturation (default 0.4; hue untouched). */
  jitter: number;
}

/** ultralytics' defaults: `scale=(0.08, 1.0), ratio=(0.75, 1/0.75), hflip=0.5, jitter=0.4`. */
export const CLASSIFY_AUGMENT_DEFAULTS: Readonly<ClassifyAugment> = Object.freeze({ scale: [0.08, 1] as [number, number], ratio: [3 / 4, 4 / 3] as [number, number], fliplr: 0.5, jitter: 0.4 });

/** A crop of an image in pixels. */
export interface CropBox {
  left: number;
  top: number;
  width: number;
  height: number;
}

/**
 * torchvision's RandomResizedCrop.get_params: up to ten tries at an area fraction in `scale` and a
 * log-uniform aspect ratio in `ratio` that fit the image, else the central crop with the ratio clamped.
 */
export function randomResizedCropBox(width: number, height: number, rng: Rng, scale: readonly [number, number], ratio: readonly [number, number]): CropBox {
  const area = width * height;
  const [lr0, lr1] = [Math.log(ratio[0]), Math.log(ratio[1])];
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(lr0, lr1));
    const w = Math.round(Math.sqrt(target * aspect));
    const h = Math.round(Math.sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      return { left: rng.int(0, width - w), top: rng.int(0, height - h), width: w, height: h };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < Math.min(ratio[0], ratio[1])) h = Math.round(w / Math.min(ratio[0], ratio[1]));
  else if (inRatio > Math.max(ratio[0], ratio[1])) w = Math.round(h * Math.max(ratio[0], ratio[1]));
  return { left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2), width: w, height: h };
}

/** ultralytics' CenterCrop: the largest central square (offsets `(side − m) // 2`). */
export function centerCropBox(width: number, height: number): CropBox {
  const m = Math.min(width, height);
  return { left: Math.floor((width - m) / 2), top: Math.floor((height - m) / 2), width: m, height: m };
}

/** Crops `box` out of an RGB image and resizes it to size×size (bilinear), through sharp. */
export async function cropResize(img: RgbImage, box: CropBox, size: number): Promise<Uint8Array> {
  const whole = box.left === 0 && box.top === 0 && box.width === img.width && box.height === img.height;
  if (whole && img.width === size && img.height === size) return img.data;
  let p = sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });
  if (!whole) p = p.extract(box);
  if (box.width !== size || box.height !== size) p = p.resize(size, size, { fit: 'fill', kernel: 'linear' });
  const { data, info } = await p.raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || info.width !== size || info.height !== size) throw new Error(`cropResize: got ${info.width}×${info.height}×${info.channels}`);
  return data;
}

/** Mirrors an RGB square image left to right, in place. */
export function flipHorizontal(px: Float32Array, size: number): void {
  for (let y = 0; y < size; y++) {
    const row = y * size * 3;
    for (let x = 0; x < size >> 1; x++) {
      const a = row + x * 3;
      const b = row + (size - 1 - x) * 3;
      for (let c = 0; c < 3; c++) {
        const t = px[a + c]!;
        px[a + c] = px[b + c]!;
        px[b + c] = t;
      }
    }
  }
}

const clip = (v: number): number => (v < 0 ? 0 : v > 255 ? 255 : v);
const grey = (px: Float32Array, i: number): number => 0.299 * px[i]! + 0.587 * px[i + 1]! + 0.114 * px[i + 2]!;

/**
 * torchvision's ColorJitter(b, c, s, 0) on RGB values in 0..255, in place: brightness (scale),
 * contrast (blend with the image's mean grey) and saturation (blend with each pixel's grey), each
 * factor uniform in [max(0, 1 − strength), 1 + strength], in a random order, clipped after each.
 */
export function colorJitter(px: Float32Array, rng: Rng, strength: number): void {
  if (!(strength > 0)) return;
  const f = () => rng.uniform(Math.max(0, 1 - strength), 1 + strength);
  const factors = [f(), f(), f()];
  for (const op of rng.shuffle([0, 1, 2])) {
    const k = factors[op]!;
    if (op === 0) {
      for (let i = 0; i < px.length; i++) px[i] = clip(px[i]! * k);
    } else if (op === 1) {
      let sum = 0;
      for (let i = 0; i < px.length; i += 3) sum += grey(px, i);
      const mean = sum / (px.length / 3);
      for (let i = 0; i < px.length; i++) px[i] = clip(k * px[i]! + (1 - k) * mean);
    } else {
      for (let i = 0; i < px.length; i += 3) {
        const g = grey(px, i);
        for (let c = 0; c < 3; c++) px[i + c] = clip(k * px[i + c]! + (1 - k) * g);
      }
    }
  }
}

/** Writes `(px · scale − mean[c]) / std[c]` of an RGB image into `dst` from `offset`. */
export function normaliseInto(dst: Float32Array, offset: number, px: ArrayLike<number>, n: Readonly<Normalisation>): void {
  const { scale, mean, std } = n;
  const [m0, m1, m2] = mean as [number, number, number];
  const [r0, r1, r2] = std.map((s) => 1 / s) as [number, number, number];
  for (let i = 0; i < px.length; i += 3) {
    dst[offset + i] = (px[i]! * scale - m0) * r0;
    dst[offset + i + 1] = (px[i + 1]! * scale - m1) * r1;
    dst[offset + i + 2] = (px[i + 2]! * scale - m2) * r2;
  }
}

/**
 * The training transform of one image into `dst` at `offset` (size×size×3, NHWC, normalised):
 * random resized crop, horizontal flip, colour jitter, normalisation.
 */
export async function trainTransform(
  img: RgbImage, size: number, rng: Rng, aug: Readonly<ClassifyAugment>, norm: Readonly<Normalisation>, dst: Float32Array, offset: number,
): Promise<void> {
  const box = randomResizedCropBox(img.width, img.height, rng, aug.scale, aug.ratio);
  const flip = rng.chance(aug.fliplr);
  const px = Float32Array.from(await cropResize(img, box, size));
  if (flip) flipHorizontal(px, size);
  colorJitter(px, rng, aug.jitter);
  normaliseInto(dst, offset, px, norm);
}

/** The validation transform (and inference): central square crop resized to size×size, normalised. */
export async function valTransform(img: RgbImage, size: number, norm: Readonly<Normalisation>, dst: Float32Array, offset: number): Promise<void> {
  normaliseInto(dst, offset, await cropResize(img, centerCropBox(img.width, img.height), size), norm);
}
