import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspectModel, readOnnxFile, yoloDescription } from '@kd-edge/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.js';
import { CLASSIFY_DISTILL_SCHEMA } from '../src/classify/classify-schema.js';
import { loadClassifyDataset } from '../src/classify/dataset.js';
import { runClassifyDistill } from '../src/classify/distill.js';
import { ClassifyLoader } from '../src/classify/loader.js';
import { trainClassifier } from '../src/classify/train.js';
import { CLASSIFY_AUGMENT_DEFAULTS } from '../src/classify/transforms.js';
import { resolveOptions } from '../src/config.js';
import type { Teacher } from '../src/distill/types.js';
import { readEvents } from '../src/log/event-reader.js';
import { readResultsCsv } from '../src/log/results-csv.js';
import { readTensorArchiveMeta, saveWeights } from '../src/model/weights-io.js';
import { createYoloModel } from '../src/model/yolo.js';
import { silentLogger } from '../src/util/logger.js';
import { runCli } from './cli-runner.js';


const cli = (args: string[]) => runCli(args);

interface ValJson { top1: number; top5: number; loss: number; images: number; perClass: { images: number; top1: number }[]; split: string }

// The whole classification path through the CLI on a tiny synthetic set: 3 classes, 48 + 24 images at 32 px.
describe('kd-trainer classify: synth → train → val → export → val ONNX → distill --compare', () => {
  let dir = '';
  let data = '';
  let best = '';
  let kdwVal: ValJson;
  const runs = () => join(dir, 'runs');
  const small = ['--imgsz', '32', '--batch-size', '16', '--backend', 'wasm', '--threads', '1'];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kd-cls-e2e-'));
    data = join(dir, 'shapes-cls');
    const r = await cli(['data', 'synth', '--task', 'classify', '--out', data, '--train', '48', '--val', '24', '--imgsz', '32', '--classes', '3', '--seed', '1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('of 3 classes (circle, square, triangle)');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('trains and writes best/last weights, results.csv with ultralytics columns and TensorBoard scalars', async () => {
    const r = await cli(['classify', 'train', '--data', data, '--epochs', '3', ...small, '--project', runs(), '--name', 't']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Epoch\s+train_loss\s+val_loss\s+top1_acc\s+top5_acc/);
    expect(r.stdout).toMatch(/Class\s+Images\s+top1_acc\s+top5_acc/);
    const save = join(runs(), 't');
    for (const f of ['weights/best.kdw', 'weights/last.kdw', 'results.csv', 'opt.yaml']) expect(existsSync(join(save, f)), f).toBe(true);
    const csv = readResultsCsv(join(save, 'results.csv'));
    expect(csv.columns).toEqual(['epoch', 'train/loss', 'val/loss', 'metrics/accuracy_top1', 'metrics/accuracy_top5', 'lr/0']);
    expect(csv.rows.map((row) => row.epoch)).toEqual([0, 1, 2]);
    // ultralytics' linear schedule: lr0·((1 − e/epochs)·(1 − lrf) + lrf).
    expect(csv.rows.map((row) => row['lr/0'])).toEqual([0.001, 0.00067, 0.00034]);
    const events = readEvents(join(save, readdirSync(save).find((f) => f.includes('tfevents'))!));
    const tags = new Set(events.flatMap((e) => (e.summary ?? []).map((v) => v.tag)));
    for (const t of ['train/loss', 'val/loss', 'metrics/accuracy_top1', 'metrics/accuracy_top5', 'lr/0']) expect(tags.has(t), t).toBe(true);
    best = join(save, 'weights', 'best.kdw');
  });

  it('validates best.kdw to the accuracy saved with it', async () => {
    const r = await cli(['classify', 'val', '--weights', best, '--data', data, ...small, '--json']);
    expect(r.code, r.stderr).toBe(0);
    kdwVal = JSON.parse(r.stdout) as ValJson;
    const meta = (await readTensorArchiveMeta(best)).meta as { top1: number; top5: number; task: string; names: string[] };
    expect(meta).toMatchObject({ task: 'classify', names: ['circle', 'square', 'triangle'] });
    expect(kdwVal).toMatchObject({ images: 24, split: 'val', top1: meta.top1, top5: 1 });
    expect(kdwVal.perClass.map((c) => c.images)).toEqual([8, 8, 8]);
  });

  it('exports to ONNX with its normalisation, and the ONNX file validates to the same accuracy', async () => {
    const e = await cli(['export', '--weights', best, '--imgsz', '32', '--data', data, '--bench-runs', '2']);
    expect(e.code, e.stderr).toBe(0);
    expect(e.stdout).toMatch(/Format\s+File\s+Size \(MB\)\s+top1_acc\s+top5_acc/);
    const onnx = join(dir, 'runs', 't', 'weights', 'export', 'model.onnx');
    const meta = inspectModel(await readOnnxFile(onnx)).metadata;
    expect(meta).toMatchObject({ task: 'classify', output_layout: 'logits' });
    expect(JSON.parse(meta.normalisation!)).toEqual({ scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
    const report = JSON.parse(readFileSync(join(dir, 'runs', 't', 'weights', 'export', 'export.json'), 'utf8')) as { rows: { top1?: number }[] };
    expect(report.rows[0]!.top1).toBe(kdwVal.top1);
    const r = await cli(['classify', 'val', '--weights', onnx, '--data', data, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const v = JSON.parse(r.stdout) as ValJson;
    expect(v.top1).toBe(kdwVal.top1);
    expect(v.perClass).toEqual(kdwVal.perClass);
    // The same pixels and normalisation: the loss agrees to float32 round-off (BatchNorm folded in the export).
    expect(Math.abs(v.loss - kdwVal.loss)).toBeLessThan(1e-3);
  });

  it('distils from the ONNX teacher with --compare: baseline and distilled runs, KD columns, the table', async () => {
    const teacher = join(dir, 'runs', 't', 'weights', 'export', 'model.onnx');
    const r = await cli(['classify', 'distill', '--teacher', teacher, '--data', data, '--epochs', '2', ...small, '--project', runs(), '--name', 'd', '--compare']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`teacher ${teacher}: top1_acc ${kdwVal.top1.toFixed(3)}`));
    expect(r.stdout).toMatch(/Model\s+Params\s+top1_acc\s+top5_acc/);
    for (const row of ['teacher', 'student (baseline)', 'student (distilled)']) expect(r.stdout).toContain(row);
    const base = readResultsCsv(join(runs(), 'd-baseline', 'results.csv'));
    const kd = readResultsCsv(join(runs(), 'd-kd', 'results.csv'));
    expect(base.columns).not.toContain('train/kd_loss');
    expect(kd.columns.slice(-2)).toEqual(['train/ce_loss', 'train/kd_loss']);
    expect(kd.rows.every((row) => row['train/kd_loss']! > 0 && row['train/ce_loss']! > 0)).toBe(true);
    // α·KD + (1 − α)·CE with α = 0.7.
    for (const row of kd.rows) expect(row['train/loss']).toBeCloseTo(0.7 * row['train/kd_loss']! + 0.3 * row['train/ce_loss']!, 3);
    // Same seed, data order and schedule: the baseline's first epoch is a plain train run's.
    expect(base.rows[0]!['train/loss']).toBe(readResultsCsv(join(runs(), 't', 'results.csv')).rows[0]!['train/loss']);
  });

  it('runs the teacher on the student\'s augmented batches, after the warm-up only, and distils from a .kdw', async () => {
    const cfg = resolveOptions(CLASSIFY_DISTILL_SCHEMA, [{
      data, teacher: best, imgsz: 32, batch_size: 16, epochs: 2, backend: 'wasm', project: runs(), name: 'api', kd_warmup: 1,
    }]).config;
    const seen: Float32Array[] = [];
    const fake: Teacher = {
      kind: 'tfjs', source: 'fake', task: 'classify', nc: 3, fileHash: '', paramCount: 0,
      predict: async (images, n) => { seen.push(Float32Array.from(images)); return { logits: new Float32Array(n * 3), ms: 0 }; },
      dispose: async () => undefined,
    };
    const r = await trainClassifier(cfg, { kd: { teacher: fake, alpha: 0.5, temperature: 2, warmup: 1 }, progress: { write: () => true } });
    // 48 images in batches of 16: 3 steps an epoch, the teacher only in the second epoch, on the very pixels the student got.
    const ds = await loadClassifyDataset(data);
    const loader = new ClassifyLoader(ds.train, { imgsz: 32, batchSize: 16, augment: CLASSIFY_AUGMENT_DEFAULTS, shuffle: true, seed: 0 });
    const want: Float32Array[] = [];
    for await (const b of loader.epoch(1)) want.push(b.images);
    expect(seen).toEqual(want);
    const csv = readResultsCsv(join(r.saveDir, 'results.csv'));
    expect(csv.rows.map((row) => row['train/kd_loss']! > 0)).toEqual([false, true]);
    // A .kdw teacher: the same weights as best.kdw on the same val pixels give best.kdw's accuracy.
    const d = await runClassifyDistill({ ...cfg, name: 'kdw', epochs: 1, kd_warmup: 0 }, { progress: { write: () => true } });
    expect(d.teacher.top1).toBe(kdwVal.top1);
    expect(d.teacher.loss).toBeCloseTo(kdwVal.loss, 5);
    expect(d.baseline).toBeUndefined();
    expect(readResultsCsv(join(d.distilled.saveDir, 'results.csv')).rows[0]!['train/kd_loss']).toBeGreaterThan(0);
  });

  it('refuses a detector teacher, naming the file, and lists options with defaults in --help', async () => {
    await selectBackend('cpu', silentLogger);
    const det = createYoloModel(yoloDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, 3), { seed: 1 });
    const file = join(dir, 'detector.kdw');
    await saveWeights(file, det);
    det.dispose();
    const r = await cli(['classify', 'distill', '--teacher', file, '--data', data, '--epochs', '1', ...small, '--project', runs()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`teacher ${file} and the student do not match`);
    expect(r.stderr).toContain('teacher is a detect model');
    expect(r.stderr).toContain('[DISTILL_INCOMPATIBLE]');
    const help = await cli(['classify', 'distill', '--help']);
    // Commander wraps the help lines: match across them, up to the next option.
    expect(help.stdout).toMatch(/--kd-temperature <n>\s+temperature T[^-]*\(default: 4\)/);
    expect(help.stdout).toMatch(/--kd-alpha <n>[^\n]*\(default: 0\.7\)/);
    expect((await cli(['classify', 'train', '--help'])).stdout).toMatch(/--optimizer <name>[^]*?\(default: Adam\)\s+\(choices: "Adam", "AdamW", "SGD"\)/);
  });
});
