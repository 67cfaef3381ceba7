import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { yoloDescription } from '@kd-edge/core';
import { selectBackend } from '../src/backend/select.js';
import { resolveOptions, TRAIN_SCHEMA } from '../src/config.js';
import { synthesizeDataset } from '../src/data/synth.js';
import { loadModelWeights, openModelArchive, saveWeights } from '../src/model/weights-io.js';
import { createYoloModel } from '../src/model/yolo.js';
import { HYP_SCRATCH_LOW } from '../src/train/hyp.js';
import { train } from '../src/train/trainer.js';
import { memoryLogger } from '../src/util/logger.js';

// The training options ultralytics users type: --freeze, --single-cls, --save-period (tiny runs at 64 px).
describe('training options as ultralytics', () => {
  const root = mkdtempSync(join(tmpdir(), 'kd-train-opts-'));
  let yaml = '';
  const base = () => ({ data: yaml, imgsz: 64, batch_size: 8, backend: 'wasm', threads: 1, workers: 0, project: join(root, 'runs'), seed: 2 });

  beforeAll(async () => {
    ({ yaml } = await synthesizeDataset({ out: join(root, 'data'), train: 16, val: 8, imgsz: 64, classes: 3, seed: 4 }));
  });

  it('--freeze 10 keeps the backbone as loaded and trains the rest', async () => {
    await selectBackend('wasm');
    const start = join(root, 'start.kdw');
    const m = createYoloModel(yoloDescription('n', 3), { seed: 8 });
    await saveWeights(start, m);
    m.dispose();
    const log = memoryLogger();
    // nbs 8: without a warm-up (warmup_epochs 0) accumulation starts at nbs/batch, and the 2 steps must update the weights.
    const { config } = resolveOptions(TRAIN_SCHEMA, [{ ...base(), weights: start, freeze: 10, epochs: 1, name: 'freeze', noval: true, nbs: 8 }]);
    const r = await train(config, { ...HYP_SCRATCH_LOW, warmup_epochs: 0 }, { logger: log, progress: { write: () => true } });
    expect(log.lines.some((l) => /freezing layers 0-9: \d+ of \d+ parameter tensors/.test(l.msg))).toBe(true);
    const before = (await loadModelWeights(start)).weights;
    // The checkpoint's raw (not EMA) weights.
    const { archive } = await openModelArchive(r.last);
    const raw = (name: string): Float32Array => archive.tensors.get(`extra/train/${name}`)!.data;
    const same = (name: string): boolean => raw(name).every((v, i) => v === before.get(name)![i]);
    expect(same('model.0.conv.weight')).toBe(true);
    expect(same('model.9.cv2.bn.weight')).toBe(true);
    expect(same('model.10.conv.weight')).toBe(false);
    expect(same('model.24.m.0.weight')).toBe(false);
  });

  it('--single-cls trains one class, item; --save-period writes epoch{N}.kdw; --rect validates in rectangular batches', async () => {
    const { config } = resolveOptions(TRAIN_SCHEMA, [{ ...base(), single_cls: true, save_period: 1, rect: true, epochs: 2, name: 'single' }]);
    const r = await train(config, HYP_SCRATCH_LOW, { progress: { write: () => true } });
    const w = await loadModelWeights(r.best);
    expect(w.description.nc).toBe(1);
    expect(w.description.names).toEqual(['item']);
    expect(existsSync(join(r.saveDir, 'weights', 'epoch0.kdw'))).toBe(true);
    expect(existsSync(join(r.saveDir, 'weights', 'epoch1.kdw'))).toBe(true);
    expect(Number.isFinite(r.final.map50)).toBe(true);
  });

  it('--threads 4 trains as --threads 1: the same losses step by step on a fixed seed', async () => {
    const losses = async (threads: number): Promise<number[][]> => {
      const out: number[][] = [];
      const log = memoryLogger();
      const { config } = resolveOptions(TRAIN_SCHEMA, [{ ...base(), threads, epochs: 1, name: `t${threads}`, noval: true, noplots: true }]);
      await train(config, HYP_SCRATCH_LOW, { logger: log, maxSteps: 2, onStep: (st) => out.push(st.loss.slice(0, 3)), progress: { write: () => true } });
      if (threads > 1) expect(log.lines.some((l) => l.msg.startsWith(`data parallel: ${threads} replicas`))).toBe(true);
      return out;
    };
    const one = await losses(1);
    const four = await losses(4);
    expect(four).toHaveLength(2);
    // Each replica's loss is normalised over its own shard's targets, as in ultralytics' DDP: a 2-image shard's
    // mean differs from the 8-image batch's by a few parts in a thousand, never more.
    four.forEach((step, i) => step.forEach((v, k) => expect(Math.abs(v - one[i]![k]!) / Math.max(1e-6, Math.abs(one[i]![k]!))).toBeLessThan(1e-2)));
  }, 300_000);
});
