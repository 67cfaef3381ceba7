import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDatasetConfig } from '../src/data/dataset-yaml.js';
import { Rng } from '../src/data/rng.js';
import { scanSplit } from '../src/data/scan.js';
import { renderSynthImage, synthesizeDataset } from '../src/data/synth.js';
import { memoryLogger } from '../src/util/logger.js';

let dir: string;
let yaml: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kd-synth-'));
  ({ yaml } = await synthesizeDataset({ out: join(dir, 'a'), train: 24, val: 8, imgsz: 64, classes: 4, seed: 3 }));
});
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

describe('synthesizeDataset', () => {
  it('writes a YOLO layout that loads and scans cleanly', async () => {
    const cfg = await loadDatasetConfig(yaml);
    expect(cfg.names).toEqual(['circle', 'square', 'triangle', 'star']);
    const log = memoryLogger();
    const train = await scanSplit(cfg.train, cfg.nc, log);
    const val = await scanSplit(cfg.val, cfg.nc, log);
    expect(train).toHaveLength(24);
    expect(val).toHaveLength(8);
    expect(log.lines.filter((l) => l.level === 'warn')).toEqual([]);
    const files = await readdir(join(dir, 'a/images/train'));
    expect(files.some((f) => f.endsWith('.png'))).toBe(true);
    expect(files.some((f) => f.endsWith('.jpg'))).toBe(true);
    expect(await readdir(join(dir, 'a/labels/train'))).toHaveLength(24);
    const boxes = train.flatMap((it) => Array.from(it.labels));
    expect(boxes.length).toBeGreaterThan(0);
    for (let i = 0; i < boxes.length; i += 5) expect(boxes[i]).toBeLessThan(4);
  });

  it('is deterministic for a seed', async () => {
    const { yaml: again } = await synthesizeDataset({ out: join(dir, 'b'), train: 3, val: 0, imgsz: 64, classes: 4, seed: 3 });
    expect(again).toBe(join(dir, 'b/data.yaml'));
    for (const f of await readdir(join(dir, 'b/images/train'))) {
      expect((await readFile(join(dir, 'b/images/train', f))).equals(await readFile(join(dir, 'a/images/train', f)))).toBe(true);
    }
  });

  it('rejects bad options', async () => {
    await expect(synthesizeDataset({ out: join(dir, 'c'), classes: 13 })).rejects.toThrow(RangeError);
  });
});

describe('renderSynthImage', () => {
  it('labels tight boxes over the pixels of each shape', async () => {
    let checked = 0, small = 0;
    for (let seed = 0; checked < 40 && seed < 60; seed++) {
      const img = await renderSynthImage(Rng.derive(99, seed), 128, 12);
      if (img.noisy || img.blurred) continue;
      img.shapes.forEach((shape, k) => {
        const [cls, cx, cy, w, h] = img.labels[k]!;
        expect(cls).toBe(['circle', 'square', 'triangle', 'star', 'cross', 'ring', 'ellipse', 'hexagon', 'diamond', 'pentagon', 'semicircle', 'arrow'].indexOf(shape.kind));
        const x1 = Math.round((cx! - w! / 2) * 128), x2 = Math.round((cx! + w! / 2) * 128);
        const y1 = Math.round((cy! - h! / 2) * 128), y2 = Math.round((cy! + h! / 2) * 128);
        if (x2 - x1 <= 12) small++;
        const near = (x: number, y: number) => {
          const p = (y * 128 + x) * 3;
          const d = Math.abs(img.data[p]! - shape.color[0]) + Math.abs(img.data[p + 1]! - shape.color[1]) + Math.abs(img.data[p + 2]! - shape.color[2]);
          return d < 60;
        };
        let inside = 0;
        for (let y = y1; y < y2; y++) for (let x = x1; x < x2; x++) if (near(x, y)) inside++;
        expect(inside / ((x2 - x1) * (y2 - y1))).toBeGreaterThan(0.15);
        // Tight: the shape's colour reaches each side of the box (within one pixel).
        const rowHas = (y: number) => Array.from({ length: x2 - x1 }, (_, i) => x1 + i).some((x) => near(x, y));
        const colHas = (x: number) => Array.from({ length: y2 - y1 }, (_, i) => y1 + i).some((y) => near(x, y));
        expect(rowHas(y1) || rowHas(y1 + 1)).toBe(true);
        expect(rowHas(y2 - 1) || rowHas(y2 - 2)).toBe(true);
        expect(colHas(x1) || colHas(x1 + 1)).toBe(true);
        expect(colHas(x2 - 1) || colHas(x2 - 2)).toBe(true);
        checked++;
      });
    }
    expect(checked).toBeGreaterThanOrEqual(40);
    expect(small).toBeGreaterThan(0);
  });
});

describe('--difficulty easy', () => {
  it('draws 1-4 medium or large shapes on a clean background, never noisy or blurred', async () => {
    let shapes = 0;
    for (let seed = 0; seed < 30; seed++) {
      const img = await renderSynthImage(Rng.derive(5, seed), 128, 6, false, 'easy');
      expect(img.noisy).toBe(false);
      expect(img.blurred).toBe(false);
      expect(img.shapes.length).toBeGreaterThanOrEqual(1);
      expect(img.shapes.length).toBeLessThanOrEqual(4);
      for (const s of img.shapes) {
        expect(s.r).toBeGreaterThanOrEqual(8);
        expect(s.r).toBeLessThanOrEqual(26);
      }
      shapes += img.shapes.length;
    }
    expect(shapes).toBeGreaterThan(30);
    // The hard set keeps its small shapes.
    const hard = await Promise.all(Array.from({ length: 30 }, (_, s) => renderSynthImage(Rng.derive(5, s), 128, 6)));
    expect(hard.some((img) => img.shapes.some((s) => s.r < 6))).toBe(true);
  });

  it('writes a dataset that scans cleanly and says it is the easy set', async () => {
    const { yaml: easy } = await synthesizeDataset({ out: join(dir, 'easy'), train: 6, val: 2, imgsz: 64, classes: 3, difficulty: 'easy', seed: 1 });
    expect(await readFile(easy, 'utf8')).toMatch(/seed 1, easy/);
    const cfg = await loadDatasetConfig(easy);
    const log = memoryLogger();
    expect(await scanSplit(cfg.train, cfg.nc, log)).toHaveLength(6);
    expect(log.lines.filter((l) => l.level === 'warn')).toEqual([]);
  });
});
