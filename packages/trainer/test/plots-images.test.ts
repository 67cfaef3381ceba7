import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { Shard } from '../src/data/types.js';
import { classColor } from '../src/log/draw-boxes.js';
import { detectionBoxes, plotImageGrid, targetBoxes } from '../src/plots/image-grid.js';
import { histogram2d, labelColumns, labelsSvg, plotLabels, saturationLevel } from '../src/plots/labels.js';

const dir = mkdtempSync(join(tmpdir(), 'kd-plots-img-'));

/** n images of w×h, image k a flat grey of level (k + 1)·20/255, with the given targets. */
function shard(n: number, w: number, h: number, targets: number[] = []): Shard {
  const images = new Float32Array(n * w * h * 3);
  for (let k = 0; k < n; k++) images.fill(((k + 1) * 20) / 255, k * w * h * 3, (k + 1) * w * h * 3);
  return { images, n, width: w, height: h, targets: Float32Array.from(targets), nTargets: targets.length / 6 };
}

async function pixels(file: string) {
  const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  return { info, at: (x: number, y: number) => [...data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3)] };
}

const near = (a: number[], b: number[], tol = 40) => a.every((v, i) => Math.abs(v - b[i]!) <= tol);
const rgb = (hex: string) => [1, 3, 5].map((i) => Number.parseInt(hex.slice(i, i + 2), 16));

describe('plotImageGrid (ultralytics plot_images)', () => {
  it('lays images out column by column in a √n grid, scaling small images up to 320-pixel tiles', async () => {
    const file = join(dir, 'grid.jpg');
    const s = shard(5, 64, 48);
    await plotImageGrid(s, targetBoxes(s), [], [], file);
    const { info, at } = await pixels(file);
    // ceil(√5) = 3 columns; 64×48 scaled ×5 → 320×240 tiles.
    expect([info.width, info.height]).toEqual([960, 720]);
    const centre = (col: number, row: number) => at(col * 320 + 160, row * 240 + 120)[0]!;
    expect([centre(0, 0), centre(0, 1), centre(0, 2), centre(1, 0), centre(1, 1)].map((v) => Math.round(v / 20))).toEqual([1, 2, 3, 4, 5]);
    expect(near(at(2 * 320 + 160, 2 * 240 + 120), [255, 255, 255], 3)).toBe(true); // no sixth image: white
  });

  it('draws labels in their class colours on the objects, and predictions only above conf 0.25', async () => {
    // Image 0: a label box (class 2) centred at (16, 16), 16 px wide. Image 1: two predictions.
    const s = shard(2, 64, 64, [0, 2, 0.25, 0.25, 0.25, 0.25]);
    const labelsFile = join(dir, 'labels.jpg');
    await plotImageGrid(s, targetBoxes(s), ['/a/b/first.jpg', 'second.png'], ['a', 'b', 'c'], labelsFile);
    const l = await pixels(labelsFile);
    // 2 images → 2 × 2 grid of 320-pixel tiles (×5): the box spans 40..120 in tile 0.
    expect([l.info.width, l.info.height]).toEqual([640, 640]);
    expect(near(l.at(40, 100), rgb(classColor(2)))).toBe(true); // left edge
    expect(near(l.at(80, 100), [20, 20, 20])).toBe(true); // inside: the image

    const predFile = join(dir, 'pred.jpg');
    const dets = [[], [{ box: [8, 24, 24, 40] as [number, number, number, number], score: 0.9, cls: 0 }, { box: [40, 24, 56, 40] as [number, number, number, number], score: 0.2, cls: 1 }]];
    await plotImageGrid(s, detectionBoxes(dets), [], ['a', 'b', 'c'], predFile);
    const p = await pixels(predFile);
    // Image 1 is below image 0 (column-major): tile origin (0, 320).
    expect(near(p.at(40, 320 + 160), rgb(classColor(0)))).toBe(true);
    expect(near(p.at(200, 320 + 160), [40, 40, 40])).toBe(true); // the 0.2 box is not drawn
  });

  it('keeps at most 16 images and at most maxSize pixels a side', async () => {
    const file = join(dir, 'big.jpg');
    const s = shard(20, 64, 64);
    await plotImageGrid(s, targetBoxes(s), [], [], file, { maxSize: 128 });
    const meta = await sharp(file).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', 128, 128]);
  });

  it('copies the batch before it awaits, so the caller may reuse its buffers at once', async () => {
    const s = shard(1, 32, 32, [0, 0, 0.5, 0.5, 0.5, 0.5]);
    const file = join(dir, 'reuse.jpg');
    const done = plotImageGrid(s, targetBoxes(s), ['x.jpg'], ['a'], file);
    s.images.fill(1);
    await done;
    const { at } = await pixels(file);
    expect(near(at(160, 160), [20, 20, 20])).toBe(true);
  });
});

describe('plotLabels (ultralytics plot_labels)', () => {
  const labels = [
    Float32Array.from([0, 0.2, 0.3, 0.1, 0.2, 1, 0.8, 0.7, 0.4, 0.3]),
    Float32Array.from([1, 0.5, 0.5, 0.2, 0.2]),
    new Float32Array(0),
  ];

  it('reads every row of every image, one-row images included', () => {
    const c = labelColumns(labels);
    expect(c.cls).toEqual([0, 1, 1]);
    for (const [got, want] of [[c.cx, [0.2, 0.8, 0.5]], [c.cy, [0.3, 0.7, 0.5]], [c.w, [0.1, 0.4, 0.2]], [c.h, [0.2, 0.3, 0.2]]] as const) {
      expect(got.map((v) => Math.round(v * 1000) / 1000)).toEqual(want);
    }
  });

  it('bins box centres and sizes over their range and saturates colour as seaborn pmax=0.9', () => {
    const h = histogram2d([0, 0.5, 1, 1], [0, 0, 1, 1], 2);
    expect(h.xlim).toEqual([0, 1]);
    expect([...h.counts]).toEqual([1, 0, 1, 2]); // counts[xBin·2 + yBin]; 0.5 falls in the upper bin, as numpy
    // Cells sorted descending 10, 5, 1…: the top 10 % of the mass is reached within the first cell.
    expect(saturationLevel([1, 10, 5, 0, 0, 1])).toBe(10);
    expect(saturationLevel(Array(10).fill(1))).toBe(1);
  });

  it('draws the class histogram with names, the centred boxes and both 2-D histograms into a 1600 × 1600 JPEG', async () => {
    const svg = labelsSvg(labels, ['person', 'car']);
    for (const t of ['person', 'car', 'instances', 'x', 'y', 'width', 'height']) expect(svg).toContain(`>${t}<`);
    // One bar per class, two boxes of class 1 and one of class 0 in the shapes panel.
    expect(svg.match(new RegExp(`stroke="${classColor(1)}" stroke-width="0.4"`, 'g'))).toHaveLength(2);
    const file = join(dir, 'labels.jpg');
    await plotLabels(labels, ['person', 'car'], file);
    const meta = await sharp(file).metadata();
    expect([meta.format, meta.width, meta.height, meta.channels]).toEqual(['jpeg', 1600, 1600, 3]);
  });

  it('copes with a split without labels and with many classes (numbers instead of names)', async () => {
    expect(labelsSvg([new Float32Array(0)], ['a'])).toContain('>instances<');
    const many = Array.from({ length: 40 }, (_, c) => Float32Array.from([c, 0.5, 0.5, 0.1, 0.1]));
    const svg = labelsSvg(many, Array.from({ length: 40 }, (_, c) => `class${c}`));
    expect(svg).toContain('>classes<');
    expect(svg).not.toContain('>class3<');
  });
});
