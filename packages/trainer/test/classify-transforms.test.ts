import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadClassifyDataset, type ClassifyDataset } from '../src/classify/dataset.js';
import { ClassifyLoader, type ClassifyBatch } from '../src/classify/loader.js';
import { IMAGENET_NORMALISATION } from '../src/classify/normalisation.js';
import {
  CLASSIFY_AUGMENT_DEFAULTS, centerCropBox, colorJitter, flipHorizontal, normaliseInto, randomResizedCropBox, valTransform,
} from '../src/classify/transforms.js';
import { decodeImage } from '../src/data/image.js';
import { Rng } from '../src/data/rng.js';
import { synthesizeClassifyDataset } from '../src/data/synth-classify.js';

let dir: string;
let ds: ClassifyDataset;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kd-cls-tf-'));
  const { root } = await synthesizeClassifyDataset({ out: join(dir, 'data'), train: 12, val: 3, imgsz: 48, classes: 3, seed: 2 });
  ds = await loadClassifyDataset(root);
});
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

async function collect(loader: ClassifyLoader, epoch: number): Promise<ClassifyBatch[]> {
  const out: ClassifyBatch[] = [];
  for await (const b of loader.epoch(epoch)) out.push(b);
  return out;
}

describe('classification transforms', () => {
  it('crops within the image at the asked area and ratio, the same for the same seed', () => {
    for (let s = 0; s < 200; s++) {
      const box = randomResizedCropBox(80, 60, Rng.derive(s), [0.08, 1], [3 / 4, 4 / 3]);
      expect(box.left).toBeGreaterThanOrEqual(0);
      expect(box.top).toBeGreaterThanOrEqual(0);
      expect(box.left + box.width).toBeLessThanOrEqual(80);
      expect(box.top + box.height).toBeLessThanOrEqual(60);
      expect(box.width * box.height).toBeGreaterThanOrEqual(0.07 * 80 * 60);
      expect(box).toEqual(randomResizedCropBox(80, 60, Rng.derive(s), [0.08, 1], [3 / 4, 4 / 3]));
    }
    // Ultralytics' CenterCrop: the central square, offsets (side − m) // 2.
    expect(centerCropBox(101, 60)).toEqual({ left: 20, top: 0, width: 60, height: 60 });
  });

  it('flips, jitters and normalises pixels as specified', () => {
    const px = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]); // 2×2 RGB
    flipHorizontal(px, 2);
    expect([...px]).toEqual([4, 5, 6, 1, 2, 3, 10, 11, 12, 7, 8, 9]);
    const before = Float32Array.from(px);
    colorJitter(px, new Rng(1), 0);
    expect(px).toEqual(before);
    const grey = Float32Array.from([100, 100, 100, 100, 100, 100]);
    colorJitter(grey, new Rng(3), 0.4);
    // Contrast and saturation leave a flat grey alone; brightness scales it by a factor in [0.6, 1.4].
    expect(grey[0]).toBeGreaterThanOrEqual(60);
    expect(grey[0]).toBeLessThanOrEqual(140);
    expect(new Set(grey).size).toBe(1);
    const dst = new Float32Array(3);
    normaliseInto(dst, 0, [255, 0, 128], IMAGENET_NORMALISATION);
    expect(dst[0]).toBeCloseTo((1 - 0.485) / 0.229, 5);
    expect(dst[1]).toBeCloseTo(-0.456 / 0.224, 5);
    expect(dst[2]).toBeCloseTo((128 / 255 - 0.406) / 0.225, 5);
  });

  it('loads the same augmented batches for the same seed and epoch, others for another', async () => {
    const opts = { imgsz: 32, batchSize: 5, augment: CLASSIFY_AUGMENT_DEFAULTS, shuffle: true };
    const a = await collect(new ClassifyLoader(ds.train, { ...opts, seed: 7 }), 0);
    const again = await collect(new ClassifyLoader(ds.train, { ...opts, seed: 7, concurrency: 1 }), 0);
    expect(a.map((b) => b.n)).toEqual([5, 5, 2]);
    expect(again.map((b) => b.files)).toEqual(a.map((b) => b.files));
    expect(again.map((b) => [...b.labels])).toEqual(a.map((b) => [...b.labels]));
    again.forEach((b, i) => expect(b.images).toEqual(a[i]!.images));
    const other = await collect(new ClassifyLoader(ds.train, { ...opts, seed: 8 }), 0);
    expect(other.map((b) => b.files)).not.toEqual(a.map((b) => b.files));
    const nextEpoch = await collect(new ClassifyLoader(ds.train, { ...opts, seed: 7 }), 1);
    expect(nextEpoch.map((b) => b.files)).not.toEqual(a.map((b) => b.files));
    // An image's augmentation depends on (seed, epoch, image), not on where the shuffle put it.
    const flat = (bs: ClassifyBatch[]) => new Map(bs.flatMap((b) => b.files.map((f, i) => [f, b.images.slice(i * 32 * 32 * 3, (i + 1) * 32 * 32 * 3)] as const)));
    const inOrder = flat(await collect(new ClassifyLoader(ds.train, { ...opts, seed: 7, shuffle: false }), 0));
    for (const [f, px] of flat(a)) expect(inOrder.get(f)).toEqual(px);
  });

  it('validates on the centre crop, normalised, in file order', async () => {
    const [b] = await collect(new ClassifyLoader(ds.val, { imgsz: 32, batchSize: 8 }), 0);
    expect(b!.files).toEqual(ds.val.map((i) => i.file));
    const want = new Float32Array(32 * 32 * 3);
    await valTransform(await decodeImage(ds.val[1]!.file), 32, IMAGENET_NORMALISATION, want, 0);
    expect(b!.images.slice(32 * 32 * 3, 2 * 32 * 32 * 3)).toEqual(want);
  });
});
