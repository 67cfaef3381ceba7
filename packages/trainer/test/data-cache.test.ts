import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_HYP } from '../src/data/augment.js';
import { BatchBuilder, type ImageCache } from '../src/data/batch-builder.js';
import { cachePath, readCachedImage } from '../src/data/disk-cache.js';
import { DataLoader } from '../src/data/loader.js';
import { SharedImageCache } from '../src/data/shared-image-cache.js';
import { silentLogger } from '../src/util/logger.js';
import { scanSplit } from '../src/data/scan.js';
import { synthesizeDataset } from '../src/data/synth.js';

describe('--cache ram|disk', () => {
  it('disk: decoded images kept beside each image, the same batches, remade when the image changes', async () => {
    const root = mkdtempSync(join(tmpdir(), 'kd-cache-'));
    await synthesizeDataset({ out: root, train: 6, val: 1, imgsz: 96, classes: 2, seed: 3 });
    const items = await scanSplit([join(root, 'images', 'train')], 2);
    const builder = (cache: ImageCache) => new BatchBuilder(items, { imgsz: 64, augment: true, hyp: DEFAULT_HYP, seed: 5, cache }, () => undefined);
    const job = { epoch: 1, batch: 0, indices: [0, 1, 2, 3, 4, 5] };
    const plain = await builder('none').build(job);
    expect(readdirSync(join(root, 'images', 'train')).some((f) => f.endsWith('.kdc'))).toBe(false);

    const first = await builder('disk').build(job);
    for (const it of items) expect(existsSync(cachePath(it.image)), it.image).toBe(true);
    const second = await builder('disk').build(job); // a new builder: read from disk
    expect(Buffer.from(first.images.buffer).equals(Buffer.from(plain.images.buffer))).toBe(true);
    expect(Buffer.from(second.images.buffer).equals(Buffer.from(plain.images.buffer))).toBe(true);
    expect(await readCachedImage(items[0]!.image, 64)).toBeDefined();
    expect(await readCachedImage(items[0]!.image, 128)).toBeUndefined(); // another size: made again

    const img = items[0]!.image;
    const before = statSync(cachePath(img)).mtimeMs;
    utimesSync(img, new Date(), new Date(Date.now() + 5000));
    expect(await readCachedImage(img, 64)).toBeUndefined(); // the image changed
    await builder('disk').build(job);
    expect(statSync(cachePath(img)).mtimeMs).toBeGreaterThanOrEqual(before);
    expect(await readCachedImage(img, 64)).toBeDefined();

    const ram = builder('ram');
    const r1 = await ram.build(job);
    expect(Buffer.from(r1.images.buffer).equals(Buffer.from(plain.images.buffer))).toBe(true);
  });
});

describe('--cache ram: one copy for all of a loader\'s threads', () => {
  it('stores, returns and refuses as documented', () => {
    const cache = SharedImageCache.create(5, 12);
    expect(cache.get(0)).toBeUndefined();
    expect(cache.put(0, Uint8Array.from([1, 2, 3, 4, 5, 6]), 1, 2, [7, 8.5])).toBe(true);
    expect(cache.put(0, Uint8Array.from([9, 9, 9]), 1, 1)).toBe(false); // first writer wins
    expect(cache.put(1, new Uint8Array(13), 1, 1)).toBe(false); // does not fit a slot
    expect(cache.put(5, new Uint8Array(3), 1, 1)).toBe(false); // no such slot
    const hit = cache.get(0)!;
    expect(Array.from(hit.data)).toEqual([1, 2, 3, 4, 5, 6]);
    expect([hit.height, hit.width]).toEqual([1, 2]);
    expect(hit.info.slice(0, 2)).toEqual([7, 8.5]);
    // Another thread's view of the same memory.
    const other = SharedImageCache.attach(structuredClone(cache.init));
    expect(Array.from(other.get(0)!.data)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(other.put(4, Uint8Array.from([42]), 1, 1)).toBe(true);
    expect(Array.from(cache.get(4)!.data)).toEqual([42]);
  });

  it('spreads slots over several buffers when they pass a buffer\'s size', () => {
    const cache = SharedImageCache.create(3, 2 ** 29 + 1); // one slot per 1 GiB buffer, address space only
    expect(cache.init.slabs.length).toBe(3);
    expect(cache.put(2, Uint8Array.from([5, 6]), 1, 1)).toBe(true);
    expect(Array.from(cache.get(2)!.data)).toEqual([5, 6]);
  });

  it('data workers read images another worker decoded: the image files may go after the first epoch', async () => {
    const root = mkdtempSync(join(tmpdir(), 'kd-ramcache-'));
    await synthesizeDataset({ out: root, train: 12, val: 1, imgsz: 96, classes: 2, seed: 4 });
    const items = await scanSplit([join(root, 'images', 'train')], 2);
    const warnings: string[] = [];
    const logger = { ...silentLogger, warn: (m: string) => warnings.push(m) };
    const opts = { imgsz: 64, batchSize: 3, augment: true, seed: 1, workers: 2, logger };
    const read = async (loader: DataLoader, epoch: number): Promise<Buffer[]> => {
      const out: Buffer[] = [];
      for await (const b of loader.epoch(epoch)) out.push(Buffer.from(b.images.buffer));
      return out;
    };
    const reference = new DataLoader(items, { ...opts, cache: 'none' });
    const expected = await read(reference, 1);
    await reference.close();

    const cached = new DataLoader(items, { ...opts, cache: 'ram' });
    await read(cached, 0); // every image is decoded once, by one of the two workers
    for (const it of items) rmSync(it.image);
    // Mosaic draws any image into any batch: each worker now needs images the other one decoded.
    const got = await read(cached, 1);
    await cached.close();
    expect(warnings).toEqual([]);
    expect(got.length).toBe(expected.length);
    got.forEach((b, i) => expect(b.equals(expected[i]!), `batch ${i}`).toBe(true));
  });
});
