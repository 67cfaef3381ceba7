import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { evalLoader } from '../src/data/eval-loader.js';
import { scanSplit } from '../src/data/scan.js';
import type { Batch } from '../src/data/types.js';

/** Images of the given [width, height] with one white box filling the middle half, labelled so. */
async function images(sizes: [number, number][]): Promise<string> {
  const root = mkdtempSync(join(tmpdir(), 'kd-rect-'));
  mkdirSync(join(root, 'images'));
  mkdirSync(join(root, 'labels'));
  for (const [i, [w, h]] of sizes.entries()) {
    const svg = `<svg width="${w}" height="${h}"><rect width="${w}" height="${h}" fill="#000"/><rect x="${w / 4}" y="${h / 4}" width="${w / 2}" height="${h / 2}" fill="#fff"/></svg>`;
    await sharp(Buffer.from(svg)).png().toFile(join(root, 'images', `${i}.png`));
    writeFileSync(join(root, 'labels', `${i}.txt`), '0 0.5 0.5 0.5 0.5\n');
  }
  return join(root, 'images');
}

describe('--rect validation batches (ultralytics rect, pad 0.5)', () => {
  it('orders images by aspect ratio, letterboxes each batch to its own stride-multiple shape, and maps the labels', async () => {
    // Two wide (2:1), one square, two tall (1:2).
    const dir = await images([[128, 64], [64, 128], [96, 96], [160, 80], [40, 80]]);
    const items = await scanSplit([dir], 1);
    const loader = evalLoader(items, { imgsz: 64, batchSize: 2, workers: 0, rectStride: 32 });
    const batches: Batch[] = [];
    for await (const b of loader.epoch(0)) batches.push(b);
    await loader.close();
    // h/w sorted 0.5, 0.5 | 1, 2 | 2: shapes ceil(r·64/32 + 0.5)·32 with r the batch's [h, w] ratio (1 when it mixes sides).
    expect(batches.map((b) => [b.height, b.width])).toEqual([[64, 96], [96, 96], [96, 64]]);
    expect(batches.map((b) => b.files.map((f) => f.split('/').pop()))).toEqual([['0.png', '3.png'], ['2.png', '1.png'], ['4.png']]);
    for (const b of batches) {
      for (let k = 0; k < b.nTargets; k++) {
        const [img, , cx, cy, w, h] = b.targets.subarray(k * 6, k * 6 + 6);
        // The white box's pixels, found in the batch image, are where the label says.
        const px = (x: number, y: number) => b.images[((img! * b.height + y) * b.width + x) * 3]!;
        const x0 = Math.round((cx! - w! / 2) * b.width), x1 = Math.round((cx! + w! / 2) * b.width);
        const y0 = Math.round((cy! - h! / 2) * b.height), y1 = Math.round((cy! + h! / 2) * b.height);
        expect(px(Math.floor((x0 + x1) / 2), Math.floor((y0 + y1) / 2))).toBeGreaterThan(0.9);
        expect(px(x0 + 1, y0 + 1)).toBeGreaterThan(0.9);
        expect(px(Math.max(0, x0 - 2), Math.floor((y0 + y1) / 2))).toBeLessThan(0.5);
      }
    }
    // Without rect: square imgsz, scanned order.
    const square = evalLoader(items, { imgsz: 64, batchSize: 2, workers: 0 });
    for await (const b of square.epoch(0)) expect([b.height, b.width]).toEqual([64, 64]);
    await square.close();
  });
});
