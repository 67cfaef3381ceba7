import sharp from 'sharp';
import { SVG_FONT, escapeXml, r2 } from './svg.js';

/** One box to draw: corners in pixels, class index and optional confidence. */
export interface DrawBox {
  box: [number, number, number, number];
  cls: number;
  score?: number;
}

/** Options of {@link drawDetections}. */
export interface DrawDetectionsOptions {
  /** Output encoding (default `'png'`); `'jpeg'` suits `val_batch0_pred.jpg`-style files. */
  format?: 'png' | 'jpeg';
  /** Box line width in pixels (default scales with the image, at least 2). */
  lineWidth?: number;
}

// Ultralytics' 20-colour palette, so class colours look familiar next to YOLOv5 outputs.
const PALETTE = [
  'FF3838', 'FF9D97', 'FF701F', 'FFB21D', 'CFD231', '48F90A', '92CC17', '3DDB86', '1A9334', '00D4BB',
  '2C99A8', '00C2FF', '344593', '6473FF', '0018EC', '8438FF', '520085', 'CB38FF', 'FF95C8', 'FF37C7',
];

/** Colour (`#rrggbb`) used for class `cls`. */
export function classColor(cls: number): string {
  return `#${PALETTE[((Math.trunc(cls) % PALETTE.length) + PALETTE.length) % PALETTE.length]}`;
}

function textColor(hex: string): string {
  const n = Number.parseInt(hex.slice(1), 16);
  const luma = 0.299 * (n >> 16) + 0.587 * ((n >> 8) & 0xff) + 0.114 * (n & 0xff);
  return luma > 150 ? '#000' : '#fff';
}

/** The SVG overlay {@link drawDetections} composites: boxes and filled label tags. */
export function detectionsSvg(width: number, height: number, boxes: readonly DrawBox[], names: readonly string[], lineWidth?: number): string {
  const lw = lineWidth ?? Math.max(Math.round((width + height) / 2 * 0.003), 2);
  const font = Math.max(10, lw * 5);
  const out: string[] = [];
  for (const { box, cls, score } of boxes) {
    const x1 = Math.max(0, Math.min(width, box[0]));
    const y1 = Math.max(0, Math.min(height, box[1]));
    const x2 = Math.max(0, Math.min(width, box[2]));
    const y2 = Math.max(0, Math.min(height, box[3]));
    if (!(x2 > x1 && y2 > y1)) continue;
    const color = classColor(cls);
    out.push(`<rect x="${r2(x1)}" y="${r2(y1)}" width="${r2(x2 - x1)}" height="${r2(y2 - y1)}" fill="none" stroke="${color}" stroke-width="${lw}"/>`);
    const label = `${names[cls] ?? `class ${cls}`}${score === undefined ? '' : ` ${score.toFixed(2)}`}`;
    // DejaVu Sans averages about 0.6 em per character; a close estimate is enough for the tag width.
    const tw = label.length * font * 0.6 + 4;
    const th = font + 4;
    // Tag above the box, or inside it when the box touches the top edge.
    const ty = y1 - th >= 0 ? y1 - th : y1;
    const tx = Math.min(x1, Math.max(0, width - tw));
    out.push(`<rect x="${r2(tx)}" y="${r2(ty)}" width="${r2(tw)}" height="${r2(th)}" fill="${color}"/>`);
    out.push(`<text x="${r2(tx + 2)}" y="${r2(ty + font)}" font-size="${font}" fill="${textColor(color)}">${escapeXml(label)}</text>`);
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="${SVG_FONT}">${out.join('')}</svg>`;
}

/**
 * Draws coloured boxes with class/score labels on an RGB image (HWC, 3 bytes per pixel) and returns
 * the encoded image; used for TensorBoard images of validation predictions and `val_batch*_pred` files.
 * @example const png = await drawDetections(rgb, 640, 640, [{ box: [10, 20, 200, 220], cls: 0, score: 0.9 }], ['person'])
 */
export async function drawDetections(
  rgb: Uint8Array, width: number, height: number, boxes: readonly DrawBox[], names: readonly string[], options: DrawDetectionsOptions = {},
): Promise<Buffer> {
  for (const [name, v] of [['width', width], ['height', height]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  }
  if (rgb.length !== width * height * 3) {
    throw new RangeError(`rgb must hold width*height*3 = ${width * height * 3} bytes (RGB, HWC), got ${rgb.length}`);
  }
  const svg = detectionsSvg(width, height, boxes, names, options.lineWidth);
  // sharp composites last in its pipeline and the SVG brings an alpha channel, so drop alpha in a
  // second pass to keep the output RGB (TensorBoard colorspace 3, smaller PNGs).
  const { data, info } = await sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width, height, channels: 3 } })
    .composite([{ input: Buffer.from(svg), top: 0, left: 0 }])
    .raw()
    .toBuffer({ resolveWithObject: true });
  const img = sharp(data, { raw: { width, height, channels: info.channels } }).removeAlpha();
  return options.format === 'jpeg' ? img.jpeg({ quality: 90 }).toBuffer() : img.png().toBuffer();
}
