import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageToLabelPath, scanSplit } from '../src/data/scan.js';
import { DatasetError } from '../src/errors.js';
import { memoryLogger } from '../src/util/logger.js';

let dir: string;
let img: string;
let lbl: string;

async function solid(file: string, format: 'jpeg' | 'png', size = 32): Promise<void> {
  await sharp({ create: { width: size, height: size, channels: 3, background: '#3080c0' } })[format]().toFile(file);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kd-scan-'));
  img = join(dir, 'images/train');
  lbl = join(dir, 'labels/train');
  await mkdir(img, { recursive: true });
  await mkdir(lbl, { recursive: true });
  await solid(join(img, 'a.jpg'), 'jpeg');
  await writeFile(join(lbl, 'a.txt'), [
    '0 0.5 0.5 0.2 0.2',
    '0 0.5 0.5 0.2 0.2', // duplicate
    '9 0.5 0.5 0.2 0.2', // class out of range for nc=3
    '1 1.5 0.5 0.2 0.2', // outside [0, 1]
    '2 0.3 0.3 0.1 1.0004', // round-off: kept, clipped
    '',
  ].join('\n'));
  await solid(join(img, 'b.png'), 'png'); // no label file: background
  await solid(join(img, 'c.jpg'), 'jpeg');
  await writeFile(join(lbl, 'c.txt'), '1 0.1 0.1 0.9 0.1 0.9 0.9\n2 0.5 0.5 0.0 0.3\n1 0.5 0.5\n1.5 0.5 0.5 0.1 0.1\n');
  await writeFile(join(img, 'corrupt.jpg'), Buffer.from('this is not a jpeg at all, just text'));
  const png = await readFile(join(img, 'b.png'));
  await writeFile(join(img, 'truncated.png'), png.subarray(0, Math.floor(png.length * 0.6)));
  const jpg = await readFile(join(img, 'a.jpg'));
  await writeFile(join(img, 'trailing.jpg'), Buffer.concat([jpg, Buffer.from('extra bytes after EOI')]));
  await writeFile(join(img, 'notes.txt'), 'not an image');
  await writeFile(join(dir, 'list.txt'), 'images/train/a.jpg\n./images/train/c.jpg\nimages/train/missing.jpg\n');
});
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

describe('imageToLabelPath', () => {
  it('replaces the last /images/ and the extension', () => {
    expect(imageToLabelPath('/d/images/x/images/train/a.b.JPG')).toBe('/d/images/x/labels/train/a.b.txt');
    expect(imageToLabelPath('/d/pics/a.png')).toBe('/d/pics/a.txt');
  });
});

describe('scanSplit', () => {
  it('skips bad images and drops bad rows with one counted warning per kind', async () => {
    const log = memoryLogger();
    const items = await scanSplit([img], 3, log, { split: 'train' });
    expect(items.map((i) => i.image.slice(img.length + 1))).toEqual(['a.jpg', 'b.png', 'c.jpg', 'trailing.jpg']);

    const a = items[0]!.labels;
    expect(a.length).toBe(10);
    expect(Array.from(a.subarray(0, 5))).toEqual([0, 0.5, 0.5, expect.closeTo(0.2, 6), expect.closeTo(0.2, 6)]);
    expect(a[9]).toBe(1); // 1.0004 clipped
    expect(items[1]!.labels.length).toBe(0);
    // Polygon row becomes its box; zero-height, short and fractional-class rows are dropped.
    expect(Array.from(items[2]!.labels)).toEqual([1, 0.5, 0.5, expect.closeTo(0.8, 6), expect.closeTo(0.8, 6)]);

    const warns = log.lines.filter((l) => l.level === 'warn').map((l) => l.msg);
    expect(warns, warns.join('\n')).toHaveLength(7);
    expect(warns).toContain('train: 1 corrupt images skipped: corrupt.jpg');
    expect(warns).toContain('train: 1 truncated images skipped: truncated.png');
    expect(warns).toContain('train: 1 labels with class id out of range (nc=3) dropped in 1 file: a.txt');
    expect(warns).toContain('train: 1 labels with coordinates outside [0, 1] dropped in 1 file: a.txt');
    expect(warns).toContain('train: 1 duplicate labels removed in 1 file: a.txt');
    expect(warns).toContain('train: 2 malformed label rows dropped (need 5 numbers, integer class) in 1 file: c.txt');
    expect(warns).toContain('train: 1 labels with zero width or height dropped in 1 file: c.txt');
    expect(log.lines.find((l) => l.level === 'info')?.msg).toMatch(/train: 4 images, 3 boxes, 2 backgrounds \(2 without label file\), 2 skipped/);
  });

  it('counts rows per kind across files', async () => {
    const log = memoryLogger();
    await scanSplit([img], 1, log);
    const msg = log.lines.find((l) => l.msg.includes('class id out of range'))!.msg;
    // nc=1: classes 9, 1 and 2 in a.txt; 1 (polygon) and 2 in c.txt
    expect(msg).toBe('dataset: 5 labels with class id out of range (nc=1) dropped in 2 files: a.txt, c.txt');
  });

  it('reads .txt lists relative to the list and reports listed files that are missing', async () => {
    const log = memoryLogger();
    const items = await scanSplit([join(dir, 'list.txt')], 3, log);
    expect(items.map((i) => i.image)).toEqual([join(img, 'a.jpg'), join(img, 'c.jpg')]);
    expect(log.lines.map((l) => l.msg)).toContain('dataset: 1 listed images not found, skipped: missing.jpg');
  });

  it('throws DatasetError when nothing usable is left', async () => {
    const empty = join(dir, 'empty/images');
    await mkdir(empty, { recursive: true });
    await writeFile(join(empty, 'x.jpg'), 'junk');
    await expect(scanSplit([empty], 3, memoryLogger(), { split: 'val' })).rejects.toThrow(DatasetError);
    await expect(scanSplit([join(dir, 'nowhere')], 3)).rejects.toThrow(/does not exist/);
  });
});
