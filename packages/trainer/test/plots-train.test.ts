import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveOptions, TRAIN_SCHEMA } from '../src/config.js';
import { synthesizeDataset } from '../src/data/synth.js';
import { HYP_SCRATCH_LOW } from '../src/train/hyp.js';
import { train } from '../src/train/trainer.js';
import { memoryLogger } from '../src/util/logger.js';

const TRAIN_FILES = ['labels.jpg', 'train_batch0.jpg', 'train_batch1.jpg', 'train_batch2.jpg'];
const VAL_FILES = ['val_batch0_labels.jpg', 'val_batch0_pred.jpg', 'confusion_matrix.png', 'PR_curve.png', 'F1_curve.png', 'P_curve.png', 'R_curve.png'];

// One epoch of yolov5n at 64 px on 24 synthetic images: three steps of 8, then the final validation.
describe('the plots of a training run', () => {
  const root = mkdtempSync(join(tmpdir(), 'kd-plots-train-'));
  let yaml = '';
  const base = () => ({ imgsz: 64, batch_size: 8, epochs: 1, backend: 'wasm', project: join(root, 'runs'), workers: 1, threads: 1, seed: 1 });

  beforeAll(async () => {
    ({ yaml } = await synthesizeDataset({ out: join(root, 'shapes'), train: 24, val: 8, imgsz: 64, classes: 3, seed: 5 }));
  });

  it('writes labels.jpg and train_batch0..2 at the start and the val plots of the best weights at the end', async () => {
    const log = memoryLogger();
    const { config } = resolveOptions(TRAIN_SCHEMA, [{ ...base(), data: yaml, name: 'plots' }]);
    const r = await train(config, HYP_SCRATCH_LOW, { logger: log, progress: { write: () => true } });
    expect(r.interrupted).toBe(false);
    expect(r.final.plots?.files.map((f) => f.slice(r.saveDir.length + 1))).toEqual(VAL_FILES);
    const sizes: Record<string, [number, number]> = {
      // 8 images of 64 px: a 3 × 3 grid of 320-pixel tiles; val batches hold 16 (all 8 here).
      'labels.jpg': [1600, 1600], 'train_batch0.jpg': [960, 960], 'val_batch0_labels.jpg': [960, 960], 'val_batch0_pred.jpg': [960, 960],
      'confusion_matrix.png': [3000, 2250], 'PR_curve.png': [2250, 1500], 'F1_curve.png': [2250, 1500],
    };
    for (const f of [...TRAIN_FILES, ...VAL_FILES]) {
      const meta = await sharp(join(r.saveDir, f)).metadata();
      expect(meta.format, f).toBe(f.endsWith('.jpg') ? 'jpeg' : 'png');
      if (sizes[f]) expect([meta.width, meta.height], f).toEqual(sizes[f]);
    }
    expect(existsSync(join(r.saveDir, 'train_batch3.jpg'))).toBe(false);
    expect(log.lines.some((l) => l.level === 'warn' && l.msg.includes('not written'))).toBe(false);
    // Its matrix counts each of the 8 images' labels once, in the class columns.
    const labels = r.final.plots!.confusionMatrix.reduce((s, row) => s + row.slice(0, 3).reduce((a, v) => a + v, 0), 0);
    expect(labels).toBe(r.final.instances);
  });

  it('writes none with noplots', async () => {
    const { config } = resolveOptions(TRAIN_SCHEMA, [{ ...base(), data: yaml, name: 'none', noplots: true }]);
    const r = await train(config, HYP_SCRATCH_LOW, { maxSteps: 1, progress: { write: () => true } });
    for (const f of [...TRAIN_FILES, ...VAL_FILES]) expect(existsSync(join(r.saveDir, f)), f).toBe(false);
    expect(existsSync(join(r.saveDir, 'weights', 'last.kdw'))).toBe(true);
  });
});
