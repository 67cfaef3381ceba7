import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDatasetConfig } from '../src/data/dataset-yaml.js';
import { DataLoader } from '../src/data/loader.js';
import { scanSplit } from '../src/data/scan.js';
import { synthesizeDataset } from '../src/data/synth.js';
import type { DatasetItem } from '../src/data/types.js';
import { memoryLogger } from '../src/util/logger.js';
import { collect } from './loader-helpers.js';

const S = 64;
let dir: string;
let train: DatasetItem[];
let val: DatasetItem[];
const open: DataLoader[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kd-loader-'));
  const { yaml } = await synthesizeDataset({ out: dir, train: 40, val: 10, imgsz: S, classes: 3, seed: 11 });
  const cfg = await loadDatasetConfig(yaml);
  train = await scanSplit(cfg.train, cfg.nc);
  val = await scanSplit(cfg.val, cfg.nc);
});
afterAll(async () => {
  await Promise.all(open.map((l) => l.close()));
  await rm(dir, { recursive: true, force: true });
});

function loader(items: DatasetItem[], opts: Partial<ConstructorParameters<typeof DataLoader>[1]> = {}): DataLoader {
  const l = new DataLoader(items, { imgsz: S, batchSize: 16, augment: true, seed: 5, ...opts });
  open.push(l);
  return l;
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 600 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

describe('DataLoader', () => {
  it('yields length batches of the right shape, last partial batch kept', async () => {
    const l = loader(train);
    expect(l.length).toBe(3);
    const batches = await collect(l, 0);
    expect(batches.map((b) => b.n)).toEqual([16, 16, 8]);
    for (const b of batches) {
      expect([b.height, b.width]).toEqual([S, S]);
      expect(b.images.length).toBe(b.n * S * S * 3);
      expect(b.targets.length).toBe(b.nTargets * 6);
      expect(b.files).toHaveLength(b.n);
      let lo = Infinity, hi = -Infinity;
      for (const v of b.images) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      expect(lo).toBeGreaterThanOrEqual(0);
      expect(hi).toBeLessThanOrEqual(1);
      for (let t = 0; t < b.nTargets; t++) {
        const [bi, cls, cx, cy, w, h] = b.targets.subarray(t * 6, t * 6 + 6);
        expect(Number.isInteger(bi) && bi! >= 0 && bi! < b.n).toBe(true);
        expect(cls).toBeLessThan(3);
        for (const v of [cx!, cy!, w!, h!]) { expect(v).toBeGreaterThanOrEqual(0); expect(v).toBeLessThanOrEqual(1); }
      }
    }
    expect(batches.reduce((n, b) => n + b.nTargets, 0)).toBeGreaterThan(0);
    const s = l.stats();
    expect(s.batches).toBe(3);
    expect(s.waitMs).toBeLessThanOrEqual(s.totalMs);
  });

  it('reproduces an epoch for a seed, in a worker or in-process, and reshuffles per epoch', async () => {
    const [a] = await collect(loader(train), 1);
    const [b] = await collect(loader(train, { workers: 0 }), 1);
    expect(Buffer.from(a!.images.buffer).equals(Buffer.from(b!.images.buffer))).toBe(true);
    expect(Array.from(a!.targets)).toEqual(Array.from(b!.targets));
    expect(a!.files).toEqual(b!.files);
    const l = loader(train);
    expect(l.order(1)).not.toEqual(l.order(2));
    expect([...l.order(1)].sort((x, y) => x - y)).toEqual(train.map((_, i) => i));
    expect(loader(train, { seed: 6 }).order(1)).not.toEqual(l.order(1));
  });

  it('builds batches ahead of the consumer, up to prefetch', async () => {
    const l = loader(train, { batchSize: 8, prefetch: 2 }); // 5 batches
    const it = l.epoch(0)[Symbol.asyncIterator]();
    await it.next(); // holding batch 0
    // Without asking for more, batches 1 and 2 get built, and no further.
    await until(() => l.stats().ready >= 3, 'batches 1 and 2');
    await new Promise((r) => setTimeout(r, 200));
    expect(l.stats().ready).toBe(3);
    expect(l.stats().submitted).toBe(3);
    await it.next();
    await until(() => l.stats().ready >= 4, 'batch 3');
    await it.return?.(undefined);

    const none = loader(train, { batchSize: 8, prefetch: 0, workers: 0 });
    const it0 = none.epoch(0)[Symbol.asyncIterator]();
    await it0.next();
    await new Promise((r) => setTimeout(r, 200));
    expect(none.stats().submitted).toBe(1);
    await it0.return?.(undefined);
  });

  it('letterboxes validation batches in order and reports their geometry', async () => {
    const l = loader(val, { augment: false, batchSize: 4 });
    const batches = await collect(l, 0);
    expect(batches.map((b) => b.n)).toEqual([4, 4, 2]);
    expect(batches.flatMap((b) => b.files)).toEqual(val.map((v) => v.image));
    expect(batches[0]!.shapes[0]).toEqual({ orig: [S, S], ratio: [1, 1], pad: [0, 0] });
    // Validation targets are the scanned labels unchanged (square images, no padding).
    const first = batches[0]!;
    const rows = Array.from(first.targets).reduce<number[][]>((acc, v, i) => { if (i % 6 === 0) acc.push([]); acc[acc.length - 1]!.push(v); return acc; }, []);
    const expected = Array.from(val[0]!.labels);
    expect(rows.filter((r) => r[0] === 0).flatMap((r) => r.slice(1))).toEqual(expected);
  });

  it('replaces (train) or skips (val) an image that fails mid-epoch, warning once', async () => {
    const broken = join(dir, 'broken.jpg');
    await writeFile(broken, 'not a jpeg');
    const items = [...train.slice(0, 7), { image: broken, labels: Float32Array.from([0, 0.5, 0.5, 0.2, 0.2]) }];
    const log = memoryLogger();
    const t = await collect(loader(items, { batchSize: 8, logger: log }), 0);
    expect(t.map((b) => b.n)).toEqual([8]);
    const v = await collect(loader(items, { batchSize: 8, augment: false, logger: log, workers: 0 }), 0);
    expect(v.map((b) => b.n)).toEqual([7]);
    const warns = log.lines.filter((x) => x.level === 'warn').map((x) => x.msg);
    expect(warns).toHaveLength(2);
    expect(warns[0]).toMatch(/broken\.jpg/);
    expect(warns[0]).toMatch(/replaced/);
    expect(warns[1]).toMatch(/skipped/);
  });

  it('validates its options', () => {
    expect(() => new DataLoader(train, { imgsz: 0, batchSize: 1, augment: false })).toThrow(RangeError);
    expect(() => new DataLoader(train, { imgsz: 64, batchSize: 2, augment: false, prefetch: -1 })).toThrow(/prefetch/);
    expect(() => new DataLoader([], { imgsz: 64, batchSize: 2, augment: false })).toThrow(/no images/);
  });
});
