import { letterbox, type LetterboxGeometry, type ManifestLetterbox, type ManifestNormalisation } from '@kd-edge/core';
import sharp from 'sharp';
import type { RgbImage } from './decode-image.js';
import { ServeError } from './serve-error.js';

/** How an RGB image becomes the model's input tensor. */
export interface PreprocessSpec {
  /** Model input [height, width]. */
  size: [number, number];
  normalisation: ManifestNormalisation;
  letterbox: ManifestLetterbox;
  /** Whether the model accepts a smaller, stride-aligned input (ultralytics `auto`); only for dynamic inputs. */
  auto: boolean;
}

/** A letterboxed, normalised CHW image ready to feed a model, with the geometry to map boxes back. */
export interface PreparedInput {
  /** [3, H, W] float32 values, normalised. */
  data: Float32Array;
  /** [1, 3, H, W]. */
  dims: [number, number, number, number];
  /** Size of the source image. */
  width: number;
  height: number;
  geometry: LetterboxGeometry;
}

/**
 * Letterboxes `rgb` into the model's input size (core's ultralytics geometry, bilinear resize, the
 * manifest's padding colour) and writes CHW floats `(pixel·scale − mean[c]) / std[c]`.
 */
export async function letterboxToTensor(rgb: RgbImage, spec: PreprocessSpec): Promise<PreparedInput> {
  const { width, height } = rgb;
  const geometry = letterbox([height, width], spec.size, { auto: spec.auto, stride: spec.letterbox.stride });
  const [nw, nh] = geometry.newUnpad;
  const [left, top] = geometry.pad;
  const [outH, outW] = geometry.shape;
  let pixels: Buffer = rgb.data;
  if (nw !== width || nh !== height || outW !== nw || outH !== nh) {
    let pipeline = sharp(rgb.data, { raw: { width, height, channels: 3 } });
    // cv2.INTER_LINEAR is what ultralytics resizes with; libvips' linear kernel is its closest match.
    if (nw !== width || nh !== height) pipeline = pipeline.resize(nw, nh, { fit: 'fill', kernel: 'linear' });
    if (outW !== nw || outH !== nh) {
      const [r, g, b] = spec.letterbox.color;
      pipeline = pipeline.extend({ left, top, right: outW - nw - left, bottom: outH - nh - top, background: { r, g, b } });
    }
    try {
      pixels = await pipeline.raw().toBuffer();
    } catch (e) {
      throw new ServeError('SERVE_IMAGE_DECODE', `cannot letterbox a ${width}x${height} image: ${(e as Error).message}`, { cause: e });
    }
  }
  const plane = outH * outW;
  if (pixels.length !== plane * 3) {
    throw new ServeError('SERVE_IMAGE_DECODE', `letterbox produced ${pixels.length} bytes, expected ${outW}x${outH}x3`);
  }
  const { scale, mean, std } = spec.normalisation;
  const data = new Float32Array(plane * 3);
  for (let c = 0; c < 3; c++) {
    // (p·scale − mean)/std as one multiply-add per pixel.
    const a = scale / std[c];
    const b = -mean[c] / std[c];
    const base = c * plane;
    for (let p = 0, s = c; p < plane; p++, s += 3) data[base + p] = pixels[s] * a + b;
  }
  return { data, dims: [1, 3, outH, outW], width, height, geometry };
}
