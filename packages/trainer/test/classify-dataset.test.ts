import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadClassifyDataset } from '../src/classify/dataset.js';
import { perClassCounts, synthesizeClassifyDataset } from '../src/data/synth-classify.js';
import { memoryLogger } from '../src/util/logger.js';

let dir: string;
let png: Buffer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kd-cls-data-'));
  // Noise, so that the file has a payload long enough to cut (a solid square compresses to its header).
  const raw = Buffer.from(Array.from({ length: 24 * 24 * 3 }, (_, i) => (i * 7919) % 251));
  png = await sharp(raw, { raw: { width: 24, height: 24, channels: 3 } }).png().toBuffer();
});
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

/** Writes ROOT with `layout` split → class → number of good images. */
async function dataset(name: string, layout: Record<string, Record<string, number>>): Promise<string> {
  const root = join(dir, name);
  for (const [split, classes] of Object.entries(layout)) {
    for (const [cls, n] of Object.entries(classes)) {
      await mkdir(join(root, split, cls), { recursive: true });
      for (let i = 0; i < n; i++) await writeFile(join(root, split, cls, `${i}.png`), png);
    }
  }
  return root;
}

describe('loadClassifyDataset', () => {
  it('names the classes by train/ sub-folders, sorted, and labels every split by them', async () => {
    const root = await dataset('ok', { train: { zebra: 2, apple: 3 }, val: { zebra: 1, apple: 1 } });
    await writeFile(join(root, 'train', 'apple', 'notes.txt'), 'not an image');
    const ds = await loadClassifyDataset(root);
    expect(ds.names).toEqual(['apple', 'zebra']);
    expect(ds.valSplit).toBe('val');
    expect(ds.train.map((i) => i.label).sort()).toEqual([0, 0, 0, 1, 1]);
    expect(ds.val.find((i) => i.file.includes('/zebra/'))!.label).toBe(1);
  });

  it('validates on test/ when there is no val/', async () => {
    const root = await dataset('test-only', { train: { a: 1, b: 1 }, test: { a: 1, b: 2 } });
    const ds = await loadClassifyDataset(root);
    expect(ds.valSplit).toBe('test');
    expect(ds.val).toHaveLength(3);
  });

  it('refuses a val class that train lacks, naming it', async () => {
    const root = await dataset('extra-val', { train: { a: 1, b: 1 }, val: { a: 1, b: 1, c: 1 } });
    await expect(loadClassifyDataset(root)).rejects.toThrow(/class folder 'c' not in train\/ \(classes: a, b\)/);
  });

  it('refuses an empty class folder and a split without classes, naming the folder', async () => {
    const empty = await dataset('empty-class', { train: { a: 2, b: 0 }, val: { a: 1, b: 1 } });
    await expect(loadClassifyDataset(empty)).rejects.toMatchObject({ code: 'DATASET_INVALID', message: expect.stringContaining(`${join(empty, 'train', 'b')}: empty class folder`) });
    const noVal = await dataset('no-val', { train: { a: 1 } });
    await expect(loadClassifyDataset(noVal)).rejects.toThrow(/neither val\/ nor test\/ found/);
    const flat = await dataset('flat', { val: { a: 1 } });
    await mkdir(join(flat, 'train'));
    await expect(loadClassifyDataset(flat)).rejects.toThrow(`${join(flat, 'train')}: no class folders`);
    await expect(loadClassifyDataset(join(dir, 'nowhere'))).rejects.toThrow(/dataset folder .*nowhere does not exist/);
  });

  it('skips corrupt and truncated images with a warning naming each file', async () => {
    const root = await dataset('corrupt', { train: { a: 2, b: 1 }, val: { a: 1, b: 1 } });
    await writeFile(join(root, 'train', 'a', 'broken.jpg'), Buffer.from('this is not a jpeg at all, just text'));
    await writeFile(join(root, 'train', 'b', 'cut.png'), png.subarray(0, Math.floor(png.length * 0.6)));
    const log = memoryLogger();
    const ds = await loadClassifyDataset(root, log);
    expect(ds.train).toHaveLength(3);
    const warns = log.lines.filter((l) => l.level === 'warn').map((l) => l.msg);
    expect(warns).toContain('train/a: 1 corrupt images skipped: broken.jpg');
    expect(warns).toContain('train/b: 1 truncated images skipped: cut.png');
  });

  it('warns about a train class that val has no folder for', async () => {
    const root = await dataset('missing-val', { train: { a: 1, b: 1 }, val: { a: 1 } });
    const log = memoryLogger();
    await loadClassifyDataset(root, log);
    expect(log.lines).toContainEqual({ level: 'warn', msg: 'val: no folder for class b (0 images)' });
  });
});

describe('synthesizeClassifyDataset', () => {
  it('writes one folder per shape with the images spread evenly, deterministic for a seed', async () => {
    expect(perClassCounts(10, 3)).toEqual([4, 3, 3]);
    const a = await synthesizeClassifyDataset({ out: join(dir, 'synth-a'), train: 10, val: 6, imgsz: 32, classes: 3, seed: 4 });
    expect(a.names).toEqual(['circle', 'square', 'triangle']);
    const ds = await loadClassifyDataset(a.root);
    expect(ds.names).toEqual(['circle', 'square', 'triangle']);
    expect([0, 1, 2].map((c) => ds.train.filter((i) => i.label === c).length)).toEqual([4, 3, 3]);
    expect([0, 1, 2].map((c) => ds.val.filter((i) => i.label === c).length)).toEqual([2, 2, 2]);
    const b = await synthesizeClassifyDataset({ out: join(dir, 'synth-b'), train: 10, val: 6, imgsz: 32, classes: 3, seed: 4 });
    const c = await synthesizeClassifyDataset({ out: join(dir, 'synth-c'), train: 10, val: 6, imgsz: 32, classes: 3, seed: 5 });
    const raw = async (root: string) => (await sharp(join(root, 'train', 'square', (await loadClassifyDataset(root)).train.find((i) => i.label === 1)!.file.split('/').pop()!)).raw().toBuffer());
    expect((await raw(b.root)).equals(await raw(a.root))).toBe(true);
    expect((await raw(c.root)).equals(await raw(a.root))).toBe(false);
    await expect(synthesizeClassifyDataset({ out: join(dir, 'synth-d'), train: 2, val: 6, classes: 3 })).rejects.toThrow(/train must be an integer >= the class count 3/);
  });
});
