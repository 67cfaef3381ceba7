/**
 * Image decoding and resizing through sharp (libvips runs the pixel work on its own threads),
 * with BMP decoded by bmp.ts because libvips has no BMP loader.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { decodeBmp } from './bmp.js';

/** File extensions a dataset image may have (lower case, with the dot). */
export const IMAGE_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png', '.webp', '.bmp'];

/** Grey used for padding and empty canvas, as in ultralytics (114, 114, 114). */
export const PAD_VALUE = 114;

/** A packed RGB uint8 image, top row first. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** True when `file` has one of {@link IMAGE_EXTENSIONS}. */
export function isImageFile(file: string): boolean {
  return IMAGE_EXTENSIONS.includes(extname(file).toLowerCase());
}

function isBmpPath(file: string): boolean {
  return extname(file).toLowerCase() === '.bmp';
}

/**
 * A sharp pipeline reading `file` as 3-channel sRGB, EXIF orientation applied (cv2.imread does
 * the same, and labels are drawn on the oriented image).
 */
async function openRgb(file: string): Promise<Sharp> {
  if (isBmpPath(file)) {
    const img = decodeBmp(await readFile(file));
    return sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });
  }
  return sharp(file, { autoOrient: true }).removeAlpha().toColourspace('srgb');
}

async function toRgb(pipeline: Sharp): Promise<RgbImage> {
  const { data, info } = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`expected 3 channels, got ${info.channels}`);
  return { data, width: info.width, height: info.height };
}

/** Decodes any supported image file to RGB uint8 at its own size. */
export async function decodeImage(file: string): Promise<RgbImage> {
  return toRgb(await openRgb(file));
}

/**
 * Decodes `file` resized so that its long side is `size`, aspect kept (ultralytics load_image);
 * JPEGs use shrink-on-load, so large files decode quickly.
 */
export async function loadResized(file: string, size: number): Promise<RgbImage> {
  const pipeline = await openRgb(file);
  return toRgb(pipeline.resize({ width: size, height: size, fit: 'inside', kernel: 'linear' }));
}

/** A letterboxed image: `data` is size×size RGB, content resized by `ratio` [h, w] and offset by `pad` [left, top]. */
export interface Letterboxed {
  data: Uint8Array;
  ratio: [number, number];
  pad: [number, number];
}

/**
 * Resizes an RGB image to fit a size×size square (or `[height, width]`, a rectangular batch's shape) with
 * its aspect kept and pads the rest with grey 114, split evenly between the sides (ultralytics letterbox,
 * auto=False, scaleup=True).
 */
export async function letterboxImage(rgb: Uint8Array, width: number, height: number, size: number | readonly [number, number]): Promise<Letterboxed> {
  if (rgb.length !== width * height * 3) throw new RangeError(`letterboxImage: rgb must hold ${width}x${height}x3 bytes, got ${rgb.length}`);
  const [th, tw] = typeof size === 'number' ? [size, size] : size;
  const r = Math.min(th / height, tw / width);
  const nw = Math.min(tw, Math.max(1, Math.round(width * r)));
  const nh = Math.min(th, Math.max(1, Math.round(height * r)));
  // ultralytics rounds dw-0.1 / dh-0.1 so that an odd padding puts the extra pixel right/bottom.
  const left = Math.max(0, Math.round((tw - nw) / 2 - 0.1));
  const top = Math.max(0, Math.round((th - nh) / 2 - 0.1));
  let pipeline = sharp(rgb, { raw: { width, height, channels: 3 } });
  if (nw !== width || nh !== height) pipeline = pipeline.resize(nw, nh, { fit: 'fill', kernel: 'linear' });
  if (nw !== tw || nh !== th) {
    pipeline = pipeline.extend({
      left, top, right: tw - nw - left, bottom: th - nh - top,
      background: { r: PAD_VALUE, g: PAD_VALUE, b: PAD_VALUE },
    });
  }
  const out = await toRgb(pipeline);
  return { data: out.data, ratio: [nh / height, nw / width], pad: [left, top] };
}
