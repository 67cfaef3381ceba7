import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDatasetConfig } from '../src/data/dataset-yaml.js';
import { DataLoader } from '../src/data/loader.js';
import { scanSplit } from '../src/data/scan.js';
import { synthesizeDataset } from '../src/data/synth.js';
import type { Batch, DatasetItem } from '../src/data/types.js';
import { memoryLogger } from '../src/util/logger.js';
import { collect } from './loader-helpers.js';

const S = 64;
let dir: string;
let labelled: DatasetItem[];
let unlabeled: DatasetItem[];
const open: DataLoader[] = [];

// Unlabelled images are pure magenta, a colour the synthetic shapes never are exactly.
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kd-unlabeled-'));
  const { yaml } = await synthesizeDataset({ out: join(dir, 'shapes'), train: 24, val: 2, imgsz: S, classes: 3, seed: 2 });
  labelled = await scanSplit((await loadDatasetConfig(yaml)).train, 3);
  await mkdir(join(dir, 'raw'));
  for (let i = 0; i < 10; i++) {
    await sharp({ create: { width: 80, height: 60, channels: 3, background: { r: 255, g: 0, b: 255 } } }).png().toFile(join(dir, 'raw', `u${i}.png`));
  }
  const log = memoryLogger();
  unlabeled = await scanSplit([join(dir, 'raw')], 3, log, { split: 'unlabeled', imagesOnly: true });
  expect(log.lines.map((l) => l.msg)).toEqual(['unlabeled: 10 images, 0 skipped']);
});
afterAll(async () => {
  await Promise.all(open.map((l) => l.close()));
  await rm(dir, { recursive: true, force: true });
});

const NO_HSV = { hsv_h: 0, hsv_s: 0, hsv_v: 0, degrees: 0, translate: 0.1, scale: 0.5, shear: 0, fliplr: 0.5, flipud: 0, mosaic: 1 };

function loader(ratio: number, workers = 0): DataLoader {
  const l = new DataLoader(labelled, { imgsz: S, batchSize: 8, augment: true, seed: 3, workers, hyp: NO_HSV, unlabeled: { items: unlabeled, ratio } });
  open.push(l);
  return l;
}

/** Share of an image's pixels that are exactly magenta. */
function magenta(b: Batch, k: number): number {
  const px = b.height * b.width;
  let n = 0;
  for (let p = 0; p < px; p++) {
    const o = (k * px + p) * 3;
    if (b.images[o] === 1 && b.images[o + 1] === 0 && b.images[o + 2] === 1) n++;
  }
  return n / px;
}

describe('unlabelled images in training batches', () => {
  it('mixes ratio·L of them into each epoch, spread over the batches, and marks their positions', async () => {
    const l = loader(0.5);
    expect(l.length).toBe(Math.ceil((24 + 12) / 8));
    const batches = await collect(l, 0);
    const marked = batches.flatMap((b) => b.unlabeled ?? []);
    expect(marked.length).toBe(12);
    for (const b of batches) {
      const fromRaw = b.files.flatMap((f, k) => (f.includes(`${join(dir, 'raw')}`) ? [k] : []));
      expect(b.unlabeled ?? []).toEqual(fromRaw);
      // 1 unlabelled in 3 images: 2 or 3 of every full batch of 8.
      if (b.n === 8) expect([2, 3]).toContain(fromRaw.length);
    }
    // Epochs go on through the unlabelled list: two epochs of 12 cover all 10 images.
    const next = (await collect(l, 1)).flatMap((b) => b.files.filter((f) => f.includes('raw')));
    const both = new Set([...batches.flatMap((b) => b.files.filter((f) => f.includes('raw'))), ...next]);
    expect(both.size).toBe(10);
  });

  it('never mixes the two kinds in one mosaic', async () => {
    const batches = await collect(loader(1), 2);
    let checked = 0;
    for (const b of batches) {
      for (let k = 0; k < b.n; k++) {
        if (b.unlabeled?.includes(k)) expect(magenta(b, k)).toBeGreaterThan(0.2);
        else expect(magenta(b, k)).toBe(0);
        checked++;
      }
    }
    expect(checked).toBe(48);
  });

  it('builds the same batches in a worker thread as in-process', async () => {
    const a = await collect(loader(1, 0), 4);
    const b = await collect(loader(1, 1), 4);
    expect(b.map((x) => x.files)).toEqual(a.map((x) => x.files));
    expect(Buffer.from(b[1]!.images.buffer).equals(Buffer.from(a[1]!.images.buffer))).toBe(true);
  });

  it('rejects a negative ratio', () => {
    expect(() => loader(-1)).toThrow(/unlabeled.ratio/);
  });
});
