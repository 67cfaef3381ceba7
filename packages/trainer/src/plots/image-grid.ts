import { basename } from 'node:path';
import sharp from 'sharp';
import type { Detection } from '@kd-edge/core';
import type { Shard } from '../data/types.js';
import { classColor } from '../log/draw-boxes.js';
import { SVG_FONT, escapeXml, r2 } from '../log/svg.js';

/** A box to draw on a grid tile: corners in the batch's pixels, a class, and a confidence for predictions. */
export interface GridBox {
  box: [number, number, number, number];
  cls: number;
  score?: number;
}

/** Options of {@link plotImageGrid}. */
export interface ImageGridOptions {
  /** The grid's longer side at most (default 1920, ultralytics' max_size). */
  maxSize?: number;
  /** Small images are scaled up to tiles of at least this many pixels so labels stay legible (default 320). */
  minTile?: number;
  /** Predictions at or below this confidence are not drawn (default 0.25, as ultralytics). */
  conf?: number;
}

// ultralytics plot_images: at most 16 images, a square grid of ceil(√n) columns.
const MAX_SUBPLOTS = 16;

/** Ground-truth boxes of a shard's images, from its normalised targets, in the shard's pixels. */
export function targetBoxes(shard: Shard): GridBox[][] {
  const out: GridBox[][] = Array.from({ length: shard.n }, () => []);
  for (let k = 0; k < shard.nTargets; k++) {
    const [i, cls, cx, cy, w, h] = shard.targets.subarray(k * 6, k * 6 + 6);
    const x = cx! * shard.width, y = cy! * shard.height, bw = w! * shard.width, bh = h! * shard.height;
    out[i!]?.push({ box: [x - bw / 2, y - bh / 2, x + bw / 2, y + bh / 2], cls: cls! });
  }
  return out;
}

/** Predicted boxes as {@link GridBox}es (with their confidence). */
export function detectionBoxes(detections: readonly (readonly Detection[])[]): GridBox[][] {
  return detections.map((dets) => dets.map((d) => ({ box: [...d.box], cls: d.cls, score: d.score })));
}

/**
 * Writes a grid of a batch's images with boxes and file names, as ultralytics `plot_images`
 * (train_batch0.jpg, val_batch0_labels.jpg, val_batch0_pred.jpg): up to 16 images, filled column by
 * column, white borders, a coloured box and tag per object (`name`, or `name 0.8` for predictions
 * above `conf`). Unlike ultralytics, small images are scaled up (see {@link ImageGridOptions.minTile}).
 * Everything is read from `shard` before the first await, so its buffers may be reused at once.
 * @example await plotImageGrid(batch, targetBoxes(batch), batch.files, names, 'runs/train/exp/train_batch0.jpg')
 */
export async function plotImageGrid(
  shard: Shard, boxes: readonly (readonly GridBox[])[], files: readonly string[], names: readonly string[], file: string,
  options: ImageGridOptions = {},
): Promise<void> {
  const { height: h, width: w } = shard;
  const bs = Math.min(shard.n, MAX_SUBPLOTS);
  if (bs < 1) throw new RangeError('shard must hold at least one image');
  const ns = Math.ceil(Math.sqrt(bs));
  const mosaic = new Uint8Array(ns * h * ns * w * 3).fill(255);
  const rowBytes = ns * w * 3;
  for (let i = 0; i < bs; i++) {
    const ox = w * Math.floor(i / ns);
    const oy = h * (i % ns);
    const src = shard.images.subarray(i * h * w * 3, (i + 1) * h * w * 3);
    for (let y = 0; y < h; y++) {
      const dst = (oy + y) * rowBytes + ox * 3;
      for (let k = 0; k < w * 3; k++) mosaic[dst + k] = Math.round(src[y * w * 3 + k]! * 255);
    }
  }
  const kept = boxes.slice(0, bs).map((b) => b.map((x) => ({ ...x, box: [...x.box] as GridBox['box'] })));
  const shown = files.slice(0, bs).map((f) => basename(f).slice(0, 40));

  const scale = Math.min((options.maxSize ?? 1920) / ns / Math.max(h, w), Math.max(1, (options.minTile ?? 320) / Math.max(h, w)));
  const tw = Math.ceil(w * scale);
  const th = Math.ceil(h * scale);
  const W = tw * ns;
  const H = th * ns;
  const svg = gridSvg(W, H, tw, th, ns, bs, kept, shown, names, scale, options.conf ?? 0.25);
  const resized = await sharp(Buffer.from(mosaic.buffer), { raw: { width: ns * w, height: ns * h, channels: 3 } })
    .resize(W, H, { kernel: scale > 1 ? 'cubic' : 'lanczos3', fit: 'fill' })
    .raw()
    .toBuffer();
  await sharp(resized, { raw: { width: W, height: H, channels: 3 } })
    .composite([{ input: Buffer.from(svg), top: 0, left: 0 }])
    .flatten({ background: '#ffffff' })
    // Full-resolution chroma keeps thin coloured box edges their colour.
    .jpeg({ quality: 90, chromaSubsampling: '4:4:4' })
    .toFile(file);
}

function textColor(hex: string): string {
  const n = Number.parseInt(hex.slice(1), 16);
  return 0.299 * (n >> 16) + 0.587 * ((n >> 8) & 0xff) + 0.114 * (n & 0xff) > 150 ? '#000' : '#fff';
}

function gridSvg(
  W: number, H: number, tw: number, th: number, ns: number, n: number, boxes: readonly (readonly GridBox[])[], files: readonly string[],
  names: readonly string[], scale: number, conf: number,
): string {
  // ultralytics: font size 1% of the grid's (h + w), line width a tenth of it (here at least 2 pixels).
  const fs = Math.max(10, Math.floor((tw + th) * ns * 0.01));
  const lw = Math.max(2, Math.round(fs / 10));
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const ox = tw * Math.floor(i / ns);
    const oy = th * (i % ns);
    for (const b of boxes[i] ?? []) {
      if (b.score !== undefined && !(b.score > conf)) continue;
      const x1 = Math.max(ox, Math.min(ox + tw, ox + b.box[0] * scale));
      const y1 = Math.max(oy, Math.min(oy + th, oy + b.box[1] * scale));
      const x2 = Math.max(ox, Math.min(ox + tw, ox + b.box[2] * scale));
      const y2 = Math.max(oy, Math.min(oy + th, oy + b.box[3] * scale));
      if (!(x2 > x1 && y2 > y1)) continue;
      const color = classColor(b.cls);
      out.push(`<rect x="${r2(x1)}" y="${r2(y1)}" width="${r2(x2 - x1)}" height="${r2(y2 - y1)}" fill="none" stroke="${color}" stroke-width="${lw}"/>`);
      const label = `${names[b.cls] ?? b.cls}${b.score === undefined ? '' : ` ${b.score.toFixed(1)}`}`;
      const lwText = label.length * fs * 0.6 + 2;
      const lh = fs + 2;
      // The tag sits on the box's top edge, outside when there is room, inside otherwise.
      const ty = y1 - lh >= oy ? y1 - lh : y1;
      const tx = Math.min(x1, ox + tw - lwText);
      out.push(`<rect x="${r2(tx)}" y="${r2(ty)}" width="${r2(lwText)}" height="${r2(lh)}" fill="${color}"/>`);
      out.push(`<text x="${r2(tx + 1)}" y="${r2(ty + fs * 0.85)}" font-size="${fs}" fill="${textColor(color)}">${escapeXml(label)}</text>`);
    }
  }
  for (let i = 0; i < n; i++) {
    const ox = tw * Math.floor(i / ns);
    const oy = th * (i % ns);
    out.push(`<rect x="${ox + 1}" y="${oy + 1}" width="${tw - 2}" height="${th - 2}" fill="none" stroke="#fff" stroke-width="2"/>`);
    if (files[i]) {
      // Light grey like ultralytics', outlined so it reads on light images too.
      out.push(`<text x="${ox + 5}" y="${r2(oy + 5 + fs * 0.85)}" font-size="${fs}" fill="#dcdcdc" stroke="#000" stroke-width="${r2(fs / 8)}" paint-order="stroke">${escapeXml(files[i]!)}</text>`);
    }
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="${SVG_FONT}">${out.join('')}</svg>`;
}
