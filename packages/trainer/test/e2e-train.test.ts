import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveOptions, TRAIN_SCHEMA, VAL_SCHEMA } from '../src/config.js';
import { synthesizeDataset } from '../src/data/synth.js';
import { readEvents } from '../src/log/event-reader.js';
import { readResultsCsv } from '../src/log/results-csv.js';
import { loadModel, readTensorArchive } from '../src/model/weights-io.js';
import { HYP_SCRATCH_LOW } from '../src/train/hyp.js';
import { train } from '../src/train/trainer.js';
import type { StepInfo } from '../src/train/types.js';
import { memoryLogger } from '../src/util/logger.js';
import { runVal } from '../src/val/run-val.js';

// A whole run on a tiny synthetic set: yolov5n at 64 px, batch 8, on the wasm backend.
describe('kd-trainer train → val → resume (end to end)', () => {
  const root = mkdtempSync(join(tmpdir(), 'kd-e2e-'));
  let yaml = '';
  const base = () => ({ imgsz: 64, batch_size: 8, epochs: 2, backend: 'wasm', project: join(root, 'runs'), workers: 1, seed: 1 });

  beforeAll(async () => {
    ({ yaml } = await synthesizeDataset({ out: join(root, 'shapes'), train: 24, val: 8, imgsz: 64, classes: 3, seed: 5 }));
  });

  it('trains without leaking tensors and writes weights, results and TensorBoard events', async () => {
    const steps: StepInfo[] = [];
    const log = memoryLogger();
    const { config } = resolveOptions(TRAIN_SCHEMA, [{ ...base(), data: yaml, name: 'a', threads: 1 }]);
    const r = await train(config, HYP_SCRATCH_LOW, { logger: log, onStep: (s) => steps.push(s), progress: { write: () => true } });

    expect(r.interrupted).toBe(false);
    expect(r.epochs).toBe(2);
    expect(steps.length).toBe(6);
    expect(steps.every((s) => s.loss.every(Number.isFinite))).toBe(true);
    // Tensor count right after each optimizer step: flat once momentum buffers exist.
    const afterOpt = steps.filter((s) => s.optimizerStep).map((s) => s.numTensors);
    expect(afterOpt.length).toBeGreaterThanOrEqual(3);
    expect(new Set(afterOpt.slice(1)).size).toBe(1);

    for (const f of ['weights/last.kdw', 'weights/best.kdw', 'results.csv', 'results.png', 'opt.yaml', 'hyp.yaml']) {
      expect(existsSync(join(r.saveDir, f)), f).toBe(true);
    }
    const csv = readResultsCsv(join(r.saveDir, 'results.csv'));
    expect(csv.rows.map((row) => row.epoch)).toEqual([0, 1]);
    const png = await sharp(join(r.saveDir, 'results.png')).metadata();
    expect(png.width).toBeGreaterThan(100);

    const eventsFile = readdirSync(r.saveDir).find((f) => f.includes('tfevents'));
    expect(eventsFile).toBeDefined();
    const events = readEvents(join(r.saveDir, eventsFile!));
    const values = events.flatMap((e) => (e.summary ?? []).map((v) => ({ ...v, step: e.step })));
    const map50 = values.filter((v) => v.tag === 'metrics/mAP_0.5');
    expect(map50.map((v) => v.step)).toEqual([1, 2]);
    expect(values.some((v) => v.tag === 'train/box_loss')).toBe(true);
    expect(values.some((v) => v.tag === 'x/lr0')).toBe(true);
    expect(values.some((v) => v.histo && v.tag.endsWith('.conv.weight'))).toBe(true);
    expect(values.some((v) => v.image && v.tag === 'val/predictions')).toBe(true);

    // `kd-trainer val` on the saved weights reproduces the final table.
    const { config: vc } = resolveOptions(VAL_SCHEMA, [{ weights: r.best, data: yaml, imgsz: 64, batch_size: 16, backend: 'wasm' }]);
    const v = await runVal(vc);
    expect(v.map50).toBeCloseTo(r.final.map50, 9);
    expect(v.map).toBeCloseTo(r.final.map, 9);
    expect(v.images).toBe(8);
    expect(log.lines.some((l) => l.msg.includes('mAP50-95'))).toBe(true);
  });

  it('resumes an interrupted run from last.kdw with its epoch, optimizer and EMA', async () => {
    const { config } = resolveOptions(TRAIN_SCHEMA, [{ ...base(), data: yaml, name: 'b', threads: 1 }]);
    const first = await train(config, HYP_SCRATCH_LOW, { maxSteps: 4, progress: { write: () => true } });
    expect(first.interrupted).toBe(true);
    const ck = await loadModel(first.last);
    expect(ck.meta).toMatchObject({ kind: 'kd-trainer-checkpoint', epoch: 1, epochComplete: false });
    expect(Object.keys(ck.extraTensors).some((k) => k.startsWith('sgd/'))).toBe(true);
    expect(ck.meta.emaUpdates).toBeGreaterThan(0);
    ck.model.dispose();

    const steps: StepInfo[] = [];
    const { config: rc } = resolveOptions(TRAIN_SCHEMA, [{ data: yaml, resume: first.saveDir, backend: 'wasm' }]);
    const second = await train(rc, HYP_SCRATCH_LOW, { onStep: (s) => steps.push(s), progress: { write: () => true } });
    expect(second.saveDir).toBe(first.saveDir);
    expect(second.interrupted).toBe(false);
    // Only epoch 2 (index 1) is trained again, in full: 3 steps of 8 images.
    expect(steps.map((s) => s.epoch)).toEqual([1, 1, 1]);
    const csv = readResultsCsv(join(second.saveDir, 'results.csv'));
    expect(csv.rows.map((row) => row.epoch)).toEqual([0, 1]);
    const done = await loadModel(second.last);
    expect(done.meta).toMatchObject({ epoch: 1, epochComplete: true });
    expect(done.meta.emaUpdates as number).toBeGreaterThan(ck.meta.emaUpdates as number);
    done.model.dispose();
    expect(readFileSync(join(second.saveDir, 'opt.yaml'), 'utf8')).toContain('imgsz: 64');
  });

  it('resumes in a new process from a bare --resume (latest run): epoch, optimizer, EMA and results.csv continue', async () => {
    const { config } = resolveOptions(TRAIN_SCHEMA, [{ ...base(), project: join(root, 'runs-c'), data: yaml, name: 'c', threads: 1 }]);
    const first = await train(config, HYP_SCRATCH_LOW, { maxSteps: 4, progress: { write: () => true } });
    expect(first.interrupted).toBe(true);
    const before = await readTensorArchive(first.last);
    const beforeMeta = (before.meta.meta ?? {}) as Record<string, unknown>;
    expect(beforeMeta).toMatchObject({ epoch: 1, epochComplete: false });

    // A fresh Node process, no --data: the checkpoint's settings, the newest last.kdw below --project.
    const bin = fileURLToPath(new URL('../src/bin/kd-trainer.ts', import.meta.url));
    const out = await promisify(execFile)(process.execPath, ['--conditions=source', '--import', 'tsx', bin, 'train', '--resume', '--project', join(root, 'runs-c'), '--backend', 'wasm'], { timeout: 300_000 });
    expect(out.stdout + out.stderr).toContain(`resuming ${first.last}`);

    const after = await readTensorArchive(first.last);
    const meta = (after.meta.meta ?? {}) as Record<string, unknown>;
    expect(meta).toMatchObject({ epoch: 1, epochComplete: true });
    expect(meta.emaUpdates as number).toBeGreaterThan(beforeMeta.emaUpdates as number);
    const momentum = [...after.tensors.keys()].filter((k) => k.startsWith('extra/sgd/'));
    expect(momentum.length).toBeGreaterThan(0);
    const changed = momentum.some((k) => {
      const a = before.tensors.get(k)!.data;
      const b = after.tensors.get(k)!.data;
      return a.some((v, i) => v !== b[i]);
    });
    expect(changed).toBe(true);
    const csv = readResultsCsv(join(first.saveDir, 'results.csv'));
    expect(csv.rows.map((row) => row.epoch)).toEqual([0, 1]);
  });
});
