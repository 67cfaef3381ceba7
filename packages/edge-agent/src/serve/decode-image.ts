import sharp, { type Sharp } from 'sharp';
import { ServeError } from './serve-error.js';

/** Decoded pixels: `channels` interleaved uint8 values per pixel, top row first. */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

/** A packed RGB uint8 image, top row first. */
export interface RgbImage {
  data: Buffer;
  width: number;
  height: number;
}

/** Whether `buf` starts with the BMP signature `BM` (libvips has no BMP loader, so those are decoded here). */
function isBmp(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0] === 0x42 && buf[1] === 0x4d;
}

const BI_RGB = 0;
const BI_BITFIELDS = 3;

function bmpFail(problem: string): never {
  throw new ServeError('SERVE_IMAGE_DECODE', `cannot decode BMP image: ${problem}`);
}

/** Lowest set bit of a channel mask, so a 32-bit pixel's channel is `(px & mask) >>> shift`. */
function maskShift(mask: number): number {
  let s = 0;
  while (s < 32 && ((mask >>> s) & 1) === 0) s++;
  return s;
}

/**
 * Decodes uncompressed 24- and 32-bit Windows BMP (BI_RGB, and BI_BITFIELDS with 8-bit masks),
 * bottom-up or top-down, to packed RGB. Other BMP kinds are refused with SERVE_IMAGE_DECODE.
 */
export function decodeBmp(buf: Uint8Array): RgbImage {
  if (!isBmp(buf) || buf.length < 54) bmpFail('file too short');
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dataOffset = dv.getUint32(10, true);
  const headerSize = dv.getUint32(14, true);
  if (headerSize < 40) bmpFail(`unsupported header size ${headerSize}`);
  const width = dv.getInt32(18, true);
  const rawHeight = dv.getInt32(22, true);
  const bpp = dv.getUint16(28, true);
  const compression = dv.getUint32(30, true);
  if (width <= 0 || rawHeight === 0 || width > 1 << 15 || Math.abs(rawHeight) > 1 << 15) bmpFail(`invalid size ${width}x${rawHeight}`);
  if (bpp !== 24 && bpp !== 32) bmpFail(`unsupported depth ${bpp} bit (24 and 32 are supported)`);
  let masks = [0x00ff0000, 0x0000ff00, 0x000000ff];
  if (compression === BI_BITFIELDS && bpp === 32) {
    masks = [dv.getUint32(54, true), dv.getUint32(58, true), dv.getUint32(62, true)];
  } else if (compression !== BI_RGB) {
    bmpFail(`unsupported compression ${compression}`);
  }
  const height = Math.abs(rawHeight);
  const stride = Math.ceil((width * bpp) / 32) * 4;
  if (dataOffset + stride * height > buf.length) bmpFail('pixel data truncated');
  const shifts = masks.map(maskShift);
  const out = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    const row = dataOffset + (rawHeight > 0 ? height - 1 - y : y) * stride;
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      if (bpp === 24) {
        const p = row + x * 3;
        out[o] = buf[p + 2];
        out[o + 1] = buf[p + 1];
        out[o + 2] = buf[p];
      } else {
        const px = dv.getUint32(row + x * 4, true);
        for (let c = 0; c < 3; c++) out[o + c] = ((px & masks[c]) >>> shifts[c]) & 0xff;
      }
    }
  }
  return { data: out, width, height };
}

/**
 * Decodes an encoded image (JPEG, PNG, WebP, TIFF, GIF, BMP) or raw pixels (1 to 4 channels) to
 * 3-channel sRGB, EXIF orientation applied and alpha dropped. Throws SERVE_IMAGE_DECODE when the
 * bytes are not an image.
 */
export async function decodeToRgb(image: Uint8Array | RawImage): Promise<RgbImage> {
  let pipeline: Sharp;
  if (image instanceof Uint8Array) {
    if (image.length === 0) throw new ServeError('SERVE_IMAGE_DECODE', 'cannot decode image: no bytes');
    if (isBmp(image)) return decodeBmp(image);
    pipeline = sharp(image, { autoOrient: true });
  } else {
    const { data, width, height, channels } = image;
    if (!Number.isInteger(width) || width < 1 || !Number.isInteger(height) || height < 1) {
      throw new RangeError(`image width and height must be positive integers, got ${width}x${height}`);
    }
    if (channels !== 1 && channels !== 2 && channels !== 3 && channels !== 4) {
      throw new RangeError(`image.channels must be 1, 2, 3 or 4, got ${channels}`);
    }
    if (!(data instanceof Uint8Array) || data.length !== width * height * channels) {
      throw new RangeError(`image.data must hold ${width}x${height}x${channels} bytes, got ${data?.length}`);
    }
    if (channels === 3) return { data: Buffer.from(data.buffer, data.byteOffset, data.byteLength), width, height };
    pipeline = sharp(data, { raw: { width, height, channels } });
  }
  try {
    const { data, info } = await pipeline.removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
    return { data, width: info.width, height: info.height };
  } catch (e) {
    throw new ServeError('SERVE_IMAGE_DECODE', `cannot decode image: ${(e as Error).message}`, { cause: e });
  }
}
