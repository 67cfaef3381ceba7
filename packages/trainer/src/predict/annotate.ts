import { extname } from 'node:path';
import sharp from 'sharp';
import type { RgbImage } from '../data/image.js';
import { classColor, detectionsSvg, type DrawBox } from '../log/draw-boxes.js';
import { r2 } from '../log/svg.js';

/** Options of {@link annotateImage} (detect.py's drawing flags). */
export interface AnnotateOptions {
  /** Box line width in pixels (default scales with the image). */
  lineWidth?: number;
  /** Boxes only, no class tags. */
  hideLabels?: boolean;
  /** Class names without confidences. */
  hideConf?: boolean;
}

function boxesOnlySvg(width: number, height: number, boxes: readonly DrawBox[], lineWidth?: number): string {
  const lw = lineWidth ?? Math.max(Math.round((width + height) / 2 * 0.003), 2);
  const rects = boxes.map(({ box, cls }) => {
    const [x1, y1, x2, y2] = [Math.max(0, box[0]), Math.max(0, box[1]), Math.min(width, box[2]), Math.min(height, box[3])];
    return x2 > x1 && y2 > y1
      ? `<rect x="${r2(x1)}" y="${r2(y1)}" width="${r2(x2 - x1)}" height="${r2(y2 - y1)}" fill="none" stroke="${classColor(cls)}" stroke-width="${lw}"/>`
      : '';
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${rects.join('')}</svg>`;
}

/**
 * Draws detections on an RGB image as detect.py does (coloured boxes, `name conf` tags) and returns
 * the annotated RGB pixels, ready to encode or to pipe into a video.
 * @example const out = await annotateImage(img, [{ box: [4, 4, 40, 40], cls: 0, score: 0.91 }], ['circle']);
 */
export async function annotateImage(img: RgbImage, boxes: readonly DrawBox[], names: readonly string[], opts: AnnotateOptions = {}): Promise<RgbImage> {
  const { width, height } = img;
  if (boxes.length === 0) return img;
  const svg = opts.hideLabels
    ? boxesOnlySvg(width, height, boxes, opts.lineWidth)
    : detectionsSvg(width, height, opts.hideConf ? boxes.map(({ box, cls }) => ({ box, cls })) : boxes, names, opts.lineWidth);
  // The SVG brings an alpha channel into the composite; a second pass drops it to keep packed RGB.
  const { data, info } = await sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), { raw: { width, height, channels: 3 } })
    .composite([{ input: Buffer.from(svg), top: 0, left: 0 }])
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels === 3) return { data, width, height };
  const rgb = await sharp(data, { raw: { width, height, channels: info.channels } }).removeAlpha().raw().toBuffer();
  return { data: rgb, width, height };
}

/** A 24-bit bottom-up BMP (libvips writes none): 54-byte header, BGR rows padded to 4 bytes. */
export function encodeBmp(img: RgbImage): Buffer {
  const { width, height, data } = img;
  const rowBytes = (width * 3 + 3) & ~3;
  const buf = Buffer.alloc(54 + rowBytes * height);
  buf.write('BM', 0, 'latin1');
  buf.writeUInt32LE(buf.length, 2);
  buf.writeUInt32LE(54, 10);
  buf.writeUInt32LE(40, 14);
  buf.writeInt32LE(width, 18);
  buf.writeInt32LE(height, 22);
  buf.writeUInt16LE(1, 26);
  buf.writeUInt16LE(24, 28);
  buf.writeUInt32LE(rowBytes * height, 34);
  buf.writeInt32LE(2835, 38);
  buf.writeInt32LE(2835, 42);
  for (let y = 0; y < height; y++) {
    const dst = 54 + (height - 1 - y) * rowBytes;
    for (let x = 0; x < width; x++) {
      const s = (y * width + x) * 3;
      buf[dst + x * 3] = data[s + 2]!;
      buf[dst + x * 3 + 1] = data[s + 1]!;
      buf[dst + x * 3 + 2] = data[s]!;
    }
  }
  return buf;
}

/** Encodes RGB pixels in the format `file`'s extension names (jpg/jpeg, png, webp, bmp). */
export async function encodeImage(img: RgbImage, file: string): Promise<Buffer> {
  const ext = extname(file).toLowerCase();
  if (ext === '.bmp') return encodeBmp(img);
  const s = sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), { raw: { width: img.width, height: img.height, channels: 3 } });
  if (ext === '.png') return s.png().toBuffer();
  if (ext === '.webp') return s.webp({ quality: 95 }).toBuffer();
  return s.jpeg({ quality: 95 }).toBuffer();
}
