import { letterbox, type Detection } from '@kd-edge/core';
import sharp from 'sharp';
import { PAD_VALUE, type RgbImage } from '../data/image.js';

/** An image letterboxed for the model, and how to map its boxes back. */
export interface PreparedImage {
  /** NHWC float32 in 0..1, one image of height×width. */
  input: Float32Array;
  height: number;
  width: number;
  /** Resize gains new/old per axis, [height, width]. */
  gain: [number, number];
  /** Padding before the content, [left, top] pixels. */
  pad: [number, number];
}

/**
 * Letterboxes an RGB image into `shape` ([height, width]) as ultralytics `letterbox(auto=False)`:
 * aspect kept, bilinear resize, grey 114 padding split evenly; then scales pixels to 0..1.
 */
export async function prepareImage(img: RgbImage, shape: readonly [number, number]): Promise<PreparedImage> {
  const g = letterbox([img.height, img.width], shape);
  const [nw, nh] = g.newUnpad;
  const [left, top] = g.pad;
  const [H, W] = g.shape;
  let pipeline = sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), { raw: { width: img.width, height: img.height, channels: 3 } });
  if (nw !== img.width || nh !== img.height) pipeline = pipeline.resize(nw, nh, { fit: 'fill', kernel: 'linear' });
  if (nw !== W || nh !== H) {
    pipeline = pipeline.extend({ left, top, right: W - nw - left, bottom: H - nh - top, background: { r: PAD_VALUE, g: PAD_VALUE, b: PAD_VALUE } });
  }
  const { data, info } = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || info.width !== W || info.height !== H) throw new Error(`letterbox produced ${info.width}x${info.height}x${info.channels}, expected ${W}x${H}x3`);
  const input = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) input[i] = data[i]! / 255;
  return { input, height: H, width: W, gain: [nh / img.height, nw / img.width], pad: [left, top] };
}

/** Maps detections from the letterboxed input back to the original image (`[height, width]`), clipped to it. */
export function scaleDetections(dets: readonly Detection[], p: Pick<PreparedImage, 'gain' | 'pad'>, orig: readonly [number, number]): Detection[] {
  const [h0, w0] = orig;
  const x = (v: number) => Math.min(Math.max((v - p.pad[0]) / p.gain[1], 0), w0);
  const y = (v: number) => Math.min(Math.max((v - p.pad[1]) / p.gain[0], 0), h0);
  return dets.map((d) => ({ ...d, box: [x(d.box[0]), y(d.box[1]), x(d.box[2]), y(d.box[3])] }));
}
