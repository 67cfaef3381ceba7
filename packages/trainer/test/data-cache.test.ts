import { existsSync, mkdtempSync, readdirSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_HYP } from '../src/data/augment.js';
import { BatchBuilder, type ImageCache } from '../src/data/batch-builder.js';
import { cachePath, readCachedImage } from '../src/data/disk-cache.js';
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
