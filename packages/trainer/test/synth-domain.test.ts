import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDatasetConfig } from '../src/data/dataset-yaml.js';
import { Rng } from '../src/data/rng.js';
import { scanSplit } from '../src/data/scan.js';
import { renderSynthImage, synthesizeDataset, type SynthOptions } from '../src/data/synth.js';
import { renderClassifyImage, synthesizeClassifyDataset } from '../src/data/synth-classify.js';
import { SYNTH_DOMAINS } from '../src/data/synth-domain.js';
import { memoryLogger } from '../src/util/logger.js';
import { runCli } from './cli-runner.js';

let dir: string;
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'kd-synth-domain-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

/** sha256 (first 16 hex digits) over every file under `root` whose relative path matches: its path, then its bytes. */
async function digest(root: string, only = /./): Promise<string> {
  const h = createHash('sha256');
  const files = (await readdir(root, { withFileTypes: true, recursive: true }))
    .filter((e) => e.isFile()).map((e) => relative(root, join(e.parentPath, e.name))).filter((f) => only.test(f)).sort();
  for (const f of files) { h.update(`${f}\n`); h.update(await readFile(join(root, f))); }
  return h.digest('hex').slice(0, 16);
}

const BASE = { train: 4, val: 2, imgsz: 64, classes: 4, seed: 5 } as const;

describe('domain a', () => {
  // Made before --domain existed (commit 2c333c6's synth.ts and synth-classify.ts, copied beside rng.ts and
  // synth-shapes.ts) by writing these four sets and hashing them as digest() does. Labels are computed in
  // JavaScript alone, so their hashes hold on any machine; the image bytes also depend on the librsvg,
  // cairo, libjpeg and zlib builds inside sharp 0.35.5, so those are checked where they were made.
  const labels = { hard: 'd028be84b12b87a0', easy: 'e038a5c1e82d405e' };
  const detectFiles = { hard: 'b46a860912b38429', easy: '242fd6ba6fe81887' };
  const classifyFiles = { hard: '76a5000b53696cb4', easy: '2eab5637f19b8068' };
  const sameBuild = process.platform === 'linux' && process.arch === 'x64';

  it.each(['hard', 'easy'] as const)('writes the %s detection labels of the code before domains', async (difficulty) => {
    const out = join(dir, `a-${difficulty}`);
    await synthesizeDataset({ ...BASE, out, difficulty });
    expect(await digest(out, /^labels\//)).toBe(labels[difficulty]);
    if (sameBuild) expect(await digest(out)).toBe(detectFiles[difficulty]);
  });

  it.runIf(sameBuild).each(['hard', 'easy'] as const)('writes the %s classification images of the code before domains', async (difficulty) => {
    const out = join(dir, `ca-${difficulty}`);
    await synthesizeClassifyDataset({ ...BASE, val: 4, out, difficulty });
    expect(await digest(out)).toBe(classifyFiles[difficulty]);
  });

  it('is what no --domain writes, byte for byte', async () => {
    for (const [name, write] of [
      ['detect', (o: SynthOptions) => synthesizeDataset(o)],
      ['classify', (o: SynthOptions) => synthesizeClassifyDataset({ ...o, val: 4 })],
    ] as const) {
      for (const difficulty of ['hard', 'easy'] as const) {
        await write({ ...BASE, seed: 9, difficulty, out: join(dir, `${name}-${difficulty}-none`) });
        await write({ ...BASE, seed: 9, difficulty, domain: 'a', out: join(dir, `${name}-${difficulty}-a`) });
        expect(await digest(join(dir, `${name}-${difficulty}-a`))).toBe(await digest(join(dir, `${name}-${difficulty}-none`)));
      }
    }
  });
});

/** Statistics of 40 easy 128 px renders, of images with shapes and of background-only images. */
async function stats(shift: number) {
  const S = 128, B = 8, nb = S / B;
  let luma = 0, luma2 = 0, n = 0, red = 0, blue = 0, grain = 0, grainN = 0, area = 0, boxes = 0, texture = 0, textureN = 0;
  for (let i = 0; i < 40; i++) {
    const img = await renderSynthImage(Rng.derive(7, i), S, 6, false, 'easy', shift);
    const inBox = new Uint8Array(S * S);
    for (const [, cx, cy, w, h] of img.labels) {
      area += w! * h!;
      boxes++;
      const x0 = Math.max(0, Math.floor((cx! - w! / 2) * S) - 2), x1 = Math.min(S, Math.ceil((cx! + w! / 2) * S) + 2);
      const y0 = Math.max(0, Math.floor((cy! - h! / 2) * S) - 2), y1 = Math.min(S, Math.ceil((cy! + h! / 2) * S) + 2);
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) inBox[y * S + x] = 1;
    }
    for (let p = 0; p < S * S; p++) {
      const l = 0.299 * img.data[p * 3]! + 0.587 * img.data[p * 3 + 1]! + 0.114 * img.data[p * 3 + 2]!;
      luma += l; luma2 += l * l; n++;
      red += img.data[p * 3]!; blue += img.data[p * 3 + 2]!;
      // Pixel-to-pixel change on the background, away from shapes: grain (noise and fine texture).
      if (p % S < S - 1 && !inBox[p] && !inBox[p + 1]) { grain += Math.abs(img.data[p * 3 + 1]! - img.data[p * 3 + 4]!); grainN++; }
    }
    // Texture: change between neighbouring 8×8 block means of a background-only image (noise averages out).
    const bg = await renderSynthImage(Rng.derive(8, i), S, 6, true, 'easy', shift);
    const means = new Float64Array(nb * nb);
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) means[Math.floor(y / B) * nb + Math.floor(x / B)]! += bg.data[(y * S + x) * 3 + 1]! / (B * B);
    for (let by = 0; by < nb; by++) for (let bx = 0; bx < nb - 1; bx++) { texture += Math.abs(means[by * nb + bx]! - means[by * nb + bx + 1]!); textureN++; }
  }
  const mean = luma / n;
  return { mean, std: Math.sqrt(luma2 / n - mean * mean), blueOverRed: blue / red, grain: grain / grainN, texture: texture / textureN, area: area / boxes, boxes };
}

describe('domain b', () => {
  it('is darker, lower in contrast, warmer, textured, grainy, with smaller shapes', async () => {
    const a = await stats(0), b = await stats(SYNTH_DOMAINS.b.shift);
    // Measured: mean 125 → 61, std 35 → 14, blue/red 0.99 → 0.70, grain 0.2 → 6.3, texture 0.9 → 5.6, box area ×0.65.
    expect(b.mean).toBeLessThan(0.7 * a.mean);
    expect(b.std).toBeLessThan(0.6 * a.std);
    expect(b.blueOverRed).toBeLessThan(0.85 * a.blueOverRed);
    expect(b.grain).toBeGreaterThan(3);
    expect(a.grain).toBeLessThan(1);
    expect(b.texture).toBeGreaterThan(3 * a.texture);
    // Somewhat smaller, not tiny: the radius is ×0.8, so the area about ×0.64.
    expect(b.area).toBeLessThan(0.8 * a.area);
    expect(b.area).toBeGreaterThan(0.45 * a.area);
    expect(b.boxes).toBeGreaterThan(60);
  });

  it('writes the same classes and label format, every box inside the image, and says which domain', async () => {
    const { yaml } = await synthesizeDataset({ out: join(dir, 'b'), train: 24, val: 8, imgsz: 128, classes: 6, difficulty: 'easy', domain: 'b', seed: 2 });
    const text = await readFile(yaml, 'utf8');
    expect(text.split('\n')[0]).toMatch(/^# Synthetic shapes written by kd-trainer \(seed 2, easy, domain b of a\|b: another site's camera: .*\); path is relative to this file\.$/);
    const cfg = await loadDatasetConfig(yaml);
    expect(cfg.names).toEqual(['circle', 'square', 'triangle', 'star', 'cross', 'ring']);
    const log = memoryLogger();
    const items = await scanSplit(cfg.train, cfg.nc, log);
    expect(items).toHaveLength(24);
    expect(log.lines.filter((l) => l.level === 'warn')).toEqual([]);
    const rows = (await Promise.all((await readdir(join(dir, 'b/labels/train'))).map((f) => readFile(join(dir, 'b/labels/train', f), 'utf8'))))
      .flatMap((t) => t.split('\n').filter(Boolean));
    expect(rows.length).toBeGreaterThan(24);
    for (const row of rows) {
      expect(row).toMatch(/^[0-5]( \d\.\d{6}){4}$/);
      const [, cx, cy, w, h] = row.split(' ').map(Number);
      expect(w).toBeGreaterThan(0);
      expect(h).toBeGreaterThan(0);
      for (const v of [cx! - w! / 2, cy! - h! / 2]) expect(v).toBeGreaterThanOrEqual(0);
      for (const v of [cx! + w! / 2, cy! + h! / 2]) expect(v).toBeLessThanOrEqual(1 + 1e-6);
    }
  });

  it('is deterministic for a seed, other seeds give other images, and its scenes are unrelated to domain a\'s', async () => {
    const opts = { train: 40, val: 1, imgsz: 32, classes: 3, difficulty: 'easy' } as const;
    await synthesizeDataset({ ...opts, out: join(dir, 'b1'), domain: 'b', seed: 1 });
    await synthesizeDataset({ ...opts, out: join(dir, 'b1again'), domain: 'b', seed: 1 });
    await synthesizeDataset({ ...opts, out: join(dir, 'b2'), domain: 'b', seed: 2 });
    await synthesizeDataset({ ...opts, out: join(dir, 'a1'), seed: 1 });
    expect(await digest(join(dir, 'b1again'))).toBe(await digest(join(dir, 'b1')));
    expect(await digest(join(dir, 'b2'), /^images\//)).not.toBe(await digest(join(dir, 'b1'), /^images\//));
    // The PNG/JPEG choice is the first draw of an image's stream: it matches domain a's at every index
    // only if the two domains share their streams (and so their layouts).
    const kinds = async (d: string) => (await readdir(join(dir, d, 'images/train'))).sort().map((f) => f.slice(-3)).join();
    expect(await kinds('b1')).not.toBe(await kinds('a1'));
  });

  it('darkens the classification set too', async () => {
    let a = 0, b = 0;
    for (let i = 0; i < 12; i++) {
      for (const v of await renderClassifyImage(Rng.derive(7, i), 64, 'star', 'easy')) a += v;
      for (const v of await renderClassifyImage(Rng.derive(7, i), 64, 'star', 'easy', SYNTH_DOMAINS.b.shift)) b += v;
    }
    expect(b).toBeLessThan(0.7 * a);
    // And the written set: the mean of its images' means, against domain a's.
    const mean = async (domain: 'a' | 'b') => {
      const { root } = await synthesizeClassifyDataset({ out: join(dir, `c${domain}`), train: 6, val: 6, imgsz: 64, classes: 3, difficulty: 'easy', domain, seed: 1 });
      expect((await readdir(join(root, 'train'))).sort()).toEqual(['circle', 'square', 'triangle']);
      const files = (await readdir(join(root, 'train'), { recursive: true })).filter((f) => /\.(jpg|png)$/.test(f));
      const means = await Promise.all(files.map(async (f) => (await sharp(join(root, 'train', f)).stats()).channels.reduce((m, c) => m + c.mean / 3, 0)));
      return means.reduce((x, y) => x + y, 0) / means.length;
    };
    expect(await mean('b')).toBeLessThan(0.7 * (await mean('a')));
  });

  it('joins domain a in one dataset YAML whose train is a list of folders (a teacher for both)', async () => {
    await synthesizeDataset({ out: join(dir, 'ja'), train: 5, val: 2, imgsz: 64, classes: 3, difficulty: 'easy', seed: 0 });
    await synthesizeDataset({ out: join(dir, 'jb'), train: 7, val: 3, imgsz: 64, classes: 3, difficulty: 'easy', domain: 'b', seed: 0 });
    const yaml = join(dir, 'ab.yaml');
    await writeFile(yaml, 'train: [ja/images/train, jb/images/train]\nval: [ja/images/val, jb/images/val]\nnames: [circle, square, triangle]\n');
    const cfg = await loadDatasetConfig(yaml);
    const log = memoryLogger();
    expect(await scanSplit(cfg.train, cfg.nc, log)).toHaveLength(12);
    expect(await scanSplit(cfg.val, cfg.nc, log)).toHaveLength(5);
  });
});

describe('an unknown domain', () => {
  it('is a RangeError naming the valid domains', async () => {
    const bad = { out: join(dir, 'bad'), train: 1, val: 1, domain: 'c' } as unknown as SynthOptions;
    await expect(synthesizeDataset(bad)).rejects.toThrow(/unknown domain 'c', expected one of a, b/);
    await expect(synthesizeClassifyDataset(bad)).rejects.toThrow(/unknown domain 'c', expected one of a, b/);
    await expect(synthesizeDataset({ ...bad, domain: 'toString' } as unknown as SynthOptions)).rejects.toThrow(RangeError);
  });

  it('is refused by the CLI, which lists the domains in its help', async () => {
    const r = await runCli(['data', 'synth', '--out', join(dir, 'cli'), '--domain', 'c']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--domain.*'c'.*a, b/s);
    const help = await runCli(['data', 'synth', '--help']);
    expect(help.stdout.replace(/\s+/g, ' ')).toMatch(/--domain <name>.*a: the images as always; b: another site's camera/);
  });
});
