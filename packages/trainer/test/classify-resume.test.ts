import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { classifierDescription, yoloDescription } from '@kd-edge/core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.js';
import { openClassifyCheckpoint, readClassifyCheckpointMeta } from '../src/classify/checkpoint.js';
import { CLASSIFY_DISTILL_SCHEMA, CLASSIFY_TRAIN_SCHEMA, CLASSIFY_VAL_SCHEMA } from '../src/classify/classify-schema.js';
import { runClassifyDistill } from '../src/classify/distill.js';
import { runClassifyVal } from '../src/classify/run-val.js';
import { trainClassifier, type ClassifyRunOptions, type ClassifyStepInfo, type ClassifyTrainResult } from '../src/classify/train.js';
import { resolveOptions, TRAIN_SCHEMA } from '../src/config.js';
import { synthesizeClassifyDataset } from '../src/data/synth-classify.js';
import { EXPORT_SCHEMA } from '../src/export/export-schema.js';
import { runExport } from '../src/export/run-export.js';
import { readResultsCsv } from '../src/log/results-csv.js';
import { renderResultsSvg, resultsPanels } from '../src/log/results-plot.js';
import { createClassifier } from '../src/model/classifier.js';
import { readTensorArchive, saveWeights } from '../src/model/weights-io.js';
import { createYoloModel } from '../src/model/yolo.js';
import { Adam } from '../src/train/adam.js';
import { readCheckpointMeta, saveCheckpoint } from '../src/train/checkpoint.js';
import { ModelEma } from '../src/train/ema.js';
import { HYP_SCRATCH_LOW } from '../src/train/hyp.js';
import { NesterovSgd } from '../src/train/sgd.js';
import * as tf from '../src/tf.js';
import { KD_TRAINER_BIN, runCli } from './cli-runner.js';

const quiet = { progress: { write: () => true } };

/** Every tensor of two .kdw files (model, raw weights, optimizer state) compared bit for bit: the names that differ. */
async function differingTensors(a: string, b: string): Promise<string[]> {
  const [x, y] = await Promise.all([readTensorArchive(a), readTensorArchive(b)]);
  expect([...y.tensors.keys()].sort()).toEqual([...x.tensors.keys()].sort());
  return [...x.tensors].filter(([k, t]) => {
    const u = y.tensors.get(k)!.data;
    return t.data.some((v, i) => !Object.is(v, u[i]));
  }).map(([k]) => k);
}

/** A checkpoint's meta without the time it was written. */
async function metaOf(file: string): Promise<Record<string, unknown>> {
  const { date: _date, ...meta } = (await readTensorArchive(file)).meta.meta as Record<string, unknown>;
  return meta;
}

/** results.csv's lines (the same text when the runs agree to every printed digit). */
const csvLines = (dir: string): string[] => readFileSync(join(dir, 'results.csv'), 'utf8').trim().split('\n');

/** Stops a run with the signal after step `step` (1-based) of epoch `epoch` (0-based), as Ctrl-C does. */
function stopAt(epoch: number, step: number): Pick<ClassifyRunOptions, 'signal' | 'onStep'> {
  const ac = new AbortController();
  return { signal: ac.signal, onStep: (s) => { if (s.epoch === epoch && s.step === step) ac.abort(); } };
}

// 3 classes, 48 train images at 32 px in batches of 16: 3 steps an epoch, 3 epochs, on the wasm backend.
describe('classify --resume', () => {
  let dir = '';
  let data = '';
  let full: ClassifyTrainResult;
  const project = () => join(dir, 'runs');
  const base = () => ({ data, epochs: 3, imgsz: 32, batch_size: 16, backend: 'wasm', threads: 1, project: project() });
  const trainCfg = (layer: Record<string, unknown>) => resolveOptions(CLASSIFY_TRAIN_SCHEMA, [{ ...base(), ...layer }]).config;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kd-cls-resume-'));
    data = (await synthesizeClassifyDataset({ out: join(dir, 'shapes-cls'), train: 48, val: 24, imgsz: 32, classes: 3, seed: 1 })).root;
    await selectBackend('wasm');
    full = await trainClassifier(trainCfg({ name: 'full' }), quiet);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('Adam saves and restores its moments and step count', () => {
    const make = () => new Map([['model.0.conv.weight', tf.variable(tf.tensor1d([1, -2]), true, `w${Math.random()}`)]]);
    const grads = [[0.5, -0.1], [-0.25, 0.3], [0.1, 0.2]].map((g) => ({ 'model.0.conv.weight': tf.tensor1d(g) }));
    const [a, b] = [make(), make()];
    // One optimizer at a time: their moments are variables named after the parameters.
    const straight = new Adam(a, { lr: 0.1, weightDecay: 0.01, kind: 'adamw' });
    for (const g of grads) straight.step(g);
    straight.dispose();
    const first = new Adam(b, { lr: 0.1, weightDecay: 0.01, kind: 'adamw' });
    first.step(grads[0]!);
    const saved = new Map([...first.state()].map(([k, t]) => [k, { shape: [...t.shape], data: t.dataSync() as Float32Array }]));
    expect([...saved.keys()].sort()).toEqual(['m/model.0.conv.weight', 'v/model.0.conv.weight']);
    first.dispose();
    const second = new Adam(b, { lr: 0.1, weightDecay: 0.01, kind: 'adamw' });
    try {
      second.loadState(saved, 1);
      for (const g of grads.slice(1)) second.step(g);
      expect(second.t).toBe(3);
      expect([...b.get('model.0.conv.weight')!.dataSync()]).toEqual([...a.get('model.0.conv.weight')!.dataSync()]);
      expect(() => second.loadState(new Map([['m/nope', { shape: [2], data: new Float32Array(2) }]]), 1)).toThrow(/m\/nope is not m\/ or v\/ of a parameter/);
    } finally {
      // The moments are named after the parameter: left registered, they would clash with a classifier's.
      second.dispose();
      tf.dispose([...a.values(), ...b.values(), ...grads.flatMap((g) => Object.values(g))]);
    }
  });

  // The loader's order and augmentation depend on (seed, epoch, image) only, the step on the weights, the
  // optimizer state and the EMA count: a resumed run skips the steps it took and goes on bit for bit.
  it.each(['Adam', 'SGD'])('stopped mid-epoch and resumed, %s ends with the weights, optimizer state and results.csv of an uninterrupted run', async (optimizer) => {
    const straight = optimizer === 'Adam' ? full : await trainClassifier(trainCfg({ name: 'full-sgd', optimizer }), quiet);
    const first = await trainClassifier(trainCfg({ name: `int-${optimizer}`, optimizer }), { ...quiet, ...stopAt(1, 1) });
    expect([first.interrupted, first.epochs]).toEqual([true, 1]);
    const ck = await openClassifyCheckpoint(first.saveDir, 'train');
    expect(ck.meta).toMatchObject({ kind: 'kd-trainer-checkpoint', task: 'classify', epoch: 1, epochComplete: false, step: 1, emaUpdates: 4, optimizerSteps: 4, names: ['circle', 'square', 'triangle'] });
    const extras = [...ck.archive.archive.tensors.keys()];
    expect(extras.some((k) => k.startsWith('extra/train/model.'))).toBe(true);
    expect(extras.some((k) => k.startsWith(optimizer === 'Adam' ? 'extra/optimizer/v/' : 'extra/optimizer/model.'))).toBe(true);
    expect(existsSync(join(first.saveDir, 'results.png'))).toBe(true);

    const steps: ClassifyStepInfo[] = [];
    // Nothing but the run to resume and where to compute: its options come from the checkpoint.
    const cfg = resolveOptions(CLASSIFY_TRAIN_SCHEMA, [{ data: 'ignored', resume: first.saveDir, backend: 'wasm', threads: 1 }]).config;
    const live = tf.memory().numTensors;
    const second = await trainClassifier(cfg, { ...quiet, onStep: (s) => steps.push(s) });
    // The models built from the checkpoint and the restored optimizer state are all freed.
    expect(tf.memory().numTensors).toBe(live);
    expect(second.saveDir).toBe(first.saveDir);
    expect([second.interrupted, second.epochs]).toEqual([false, 3]);
    expect(steps.map((s) => [s.epoch, s.step])).toEqual([[1, 2], [1, 3], [2, 1], [2, 2], [2, 3]]);
    expect(await differingTensors(straight.last, second.last)).toEqual([]);
    expect(await differingTensors(straight.best, second.best)).toEqual([]);
    const { opt: o1, ...m1 } = await metaOf(straight.last);
    const { opt: o2, ...m2 } = await metaOf(second.last);
    expect(m2).toEqual(m1);
    expect({ ...(o2 as object), name: '', resume: '' }).toEqual({ ...(o1 as object), name: '', resume: '' });
    expect(csvLines(second.saveDir)).toEqual(csvLines(straight.saveDir));
    expect(second.final).toMatchObject({ top1: straight.final.top1, top5: straight.final.top5, loss: straight.final.loss });
    // TensorBoard: the resumed process writes a second event file beside the first.
    expect(readdirSync(second.saveDir).filter((f) => f.includes('tfevents'))).toHaveLength(2);
  });

  it('stopped on an epoch boundary, it saves that epoch complete and resumes with the next one', async () => {
    const first = await trainClassifier(trainCfg({ name: 'edge' }), { ...quiet, ...stopAt(0, 3) });
    expect([first.interrupted, first.epochs]).toEqual([true, 1]);
    expect(await metaOf(first.last)).toMatchObject({ epoch: 0, epochComplete: true, step: 0, top1: expect.any(Number) });
    expect(readResultsCsv(join(first.saveDir, 'results.csv')).rows.map((r) => r.epoch)).toEqual([0]);
    await expect(readClassifyCheckpointMeta(first.saveDir, 'distill')).rejects.toThrow(
      `${first.last} is a checkpoint of kd-trainer classify train, not of classify distill: resume it with kd-trainer classify train --resume ${first.last}`);
    // A row written after the checkpoint (a crash between the two) is dropped, not kept twice.
    appendFileSync(join(first.saveDir, 'results.csv'), `${csvLines(full.saveDir)[2]}\n`);
    const steps: ClassifyStepInfo[] = [];
    const second = await trainClassifier(trainCfg({ resume: join(first.saveDir, 'weights', 'last.kdw') }), { ...quiet, onStep: (s) => steps.push(s) });
    expect(steps[0]).toMatchObject({ epoch: 1, step: 1 });
    expect(await differingTensors(full.last, second.last)).toEqual([]);
    expect(csvLines(second.saveDir)).toEqual(csvLines(full.saveDir));
  });

  it('classify val and export read last.kdw (a checkpoint) as the EMA classifier, and best.kdw stays plain weights', async () => {
    const ck = await metaOf(full.last);
    expect(ck).toMatchObject({ kind: 'kd-trainer-checkpoint', task: 'classify', imgsz: 32, normalisation: { scale: 1 / 255 } });
    const v = await runClassifyVal(resolveOptions(CLASSIFY_VAL_SCHEMA, [{ weights: full.last, data, imgsz: 32, backend: 'wasm' }]).config);
    expect(v.top1).toBe(ck.top1);
    const e = await runExport(resolveOptions(EXPORT_SCHEMA, [{ weights: full.last, imgsz: 32, data, bench_runs: 1, out: join(dir, 'export-last') }]).config);
    expect(e.rows[0]!.top1).toBe(ck.top1);
    const best = await readTensorArchive(full.best);
    expect(best.meta.meta).toMatchObject({ kind: 'kd-trainer-weights', task: 'classify' });
    expect([...best.tensors.keys()].filter((k) => k.startsWith('extra/'))).toEqual([]);
  });

  it('writes results.png: losses over accuracy and learning rate, one panel per column', async () => {
    const png = join(full.saveDir, 'results.png');
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 2400, 1200]);
    const table = readResultsCsv(join(full.saveDir, 'results.csv'));
    expect(resultsPanels(table.columns)).toEqual([['train/loss', 'val/loss'], ['metrics/accuracy_top1', 'metrics/accuracy_top5', 'lr/0']]);
    const titles = [...renderResultsSvg(table).matchAll(/<text[^>]*font-size="26"[^>]*>([^<]+)<\/text>/g)].map((m) => m[1]);
    expect(titles).toHaveLength(5);
    expect(resultsPanels([...table.columns, 'train/ce_loss', 'train/kd_loss'])).toEqual([
      ['train/loss', 'train/ce_loss', 'train/kd_loss', 'val/loss'], ['metrics/accuracy_top1', 'metrics/accuracy_top5', 'lr/0'],
    ]);
  });

  it('distill --resume takes the teacher and KD settings from the checkpoint, in a new process, and ends as the uninterrupted run', async () => {
    // An untrained classifier of the dataset's classes is teacher enough: what matters is that the resumed run uses it.
    const t = createClassifier(classifierDescription('n', 3, { names: ['circle', 'square', 'triangle'] }), { seed: 7 });
    const teacher = join(dir, 'teacher.kdw');
    await saveWeights(teacher, t);
    t.dispose();
    // At chance, the untrained teacher is reached at once: --kd-stop never keeps it distilling (the stop is tested in classify-kd-stop).
    const kd = { teacher, kd_alpha: 0.5, kd_temperature: 2, kd_warmup: 1, kd_stop: 'never' };
    const cfg = (name: string) => resolveOptions(CLASSIFY_DISTILL_SCHEMA, [{ ...base(), ...kd, name }]).config;
    const straight = await runClassifyDistill(cfg('kd-full'), quiet);
    const first = await runClassifyDistill(cfg('kd-int'), { ...quiet, ...stopAt(1, 1) });
    expect(first.interrupted).toBe(true);
    const saveDir = first.distilled.saveDir;
    expect(await metaOf(first.distilled.last)).toMatchObject({ epoch: 1, step: 1, distill: kd });
    await expect(readClassifyCheckpointMeta(saveDir, 'train')).rejects.toThrow(
      `${first.distilled.last} is a checkpoint of kd-trainer classify distill (teacher ${teacher}), not of classify train: resume it with kd-trainer classify distill --resume ${first.distilled.last}`);

    // Through the API, the teacher and KD settings given are not the run's: the checkpoint's win. One more step.
    const other = resolveOptions(CLASSIFY_DISTILL_SCHEMA, [{ data: 'ignored', teacher: 'ignored.onnx', kd_alpha: 0.9, kd_temperature: 8, kd_warmup: 0, resume: saveDir, backend: 'wasm', threads: 1 }]).config;
    const second = await runClassifyDistill(other, { ...quiet, ...stopAt(1, 2) });
    expect(second.distilled.saveDir).toBe(saveDir);
    expect(await metaOf(second.distilled.last)).toMatchObject({ epoch: 1, step: 2, distill: kd });

    // Through the CLI, nothing but --resume (an option of another run is ignored, and said to be).
    const r = await runCli(['classify', 'distill', '--resume', saveDir, '--epochs', '9'], 300_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toContain('--resume continues the run with its own options: --epochs ignored');
    expect(r.stdout).toContain(`resuming ${join(saveDir, 'weights', 'last.kdw')} from epoch 2/3, step 3/3`);
    expect(r.stdout).toContain(`distilling from ${teacher}`);
    expect(r.stdout).toContain('loss = 0.5·KD(T=2) + 0.50·CE after 1 epoch(s) of CE alone');
    expect(await differingTensors(straight.distilled.last, first.distilled.last)).toEqual([]);
    expect(csvLines(saveDir)).toEqual(csvLines(straight.distilled.saveDir));
    expect(readResultsCsv(join(saveDir, 'results.csv')).rows.map((row) => row['train/kd_loss']! > 0)).toEqual([false, true, true]);
    const titles = [...renderResultsSvg(readResultsCsv(join(saveDir, 'results.csv'))).matchAll(/font-size="26"[^>]*>([^<]+)</g)].map((m) => m[1]);
    expect(titles).toEqual(['train/loss', 'train/ce_loss', 'train/kd_loss', 'val/loss', 'metrics/accuracy_top1', 'metrics/accuracy_top5', 'lr/0']);
    expect((await sharp(join(saveDir, 'results.png')).metadata()).format).toBe('png');
  }, 600_000);

  it('refuses what it cannot resume, naming the file and what it is', async () => {
    const last = full.last;
    // A detection checkpoint, written as kd-trainer train writes one.
    const det = createYoloModel(yoloDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, 3), { seed: 1 });
    const detFile = join(dir, 'detect-last.kdw');
    const ema = new ModelEma(det);
    const sgd = new NesterovSgd(det.params, 0.01, 0.9, 0);
    await saveCheckpoint(detFile, {
      model: det, ema, optimizer: sgd, cfg: resolveOptions(TRAIN_SCHEMA, [{ data: 'd.yaml' }]).config, hyp: HYP_SCRATCH_LOW, names: ['a', 'b', 'c'],
    }, { epoch: 0, complete: false, bestFitness: 0 });
    sgd.dispose();
    det.dispose();
    await expect(readClassifyCheckpointMeta(detFile, 'train')).rejects.toThrow(
      `${detFile} is a checkpoint of kd-trainer train (a detector), not of a classifier: resume it with kd-trainer train --resume ${detFile}`);
    await expect(readCheckpointMeta(last)).rejects.toThrow(
      `${last} is a checkpoint of kd-trainer classify train (a classifier), not of a detector: resume it with kd-trainer classify train --resume ${last}`);
    await expect(openClassifyCheckpoint(full.best, 'train')).rejects.toThrow(
      new RegExp(`^${full.best} is not a kd-trainer training checkpoint: it holds plain classifier weights saved by a run \\(the EMA of epoch \\d`));
    const csv = join(full.saveDir, 'results.csv');
    await expect(openClassifyCheckpoint(csv, 'train')).rejects.toThrow(`${csv}: not a kd-edge weights file`);
    await expect(readClassifyCheckpointMeta(join(dir, 'nowhere'), 'train')).rejects.toThrow(`${join(dir, 'nowhere')}: cannot read (ENOENT)`);
    await expect(trainClassifier(trainCfg({ resume: full.saveDir }), quiet)).rejects.toThrow(
      `${last}: training to 3 epochs is finished, nothing to resume (validate it with kd-trainer classify val --weights ${last}, or train on from it with --weights ${last})`);

    // The CLI: exit code 2 and the message; a bare --resume looks below --project.
    const cli = await runCli(['classify', 'train', '--resume', full.best]);
    expect(cli.code).toBe(2);
    expect(cli.stderr).toContain(`${full.best} is not a kd-trainer training checkpoint`);
    const bare = await runCli(['classify', 'train', '--resume', '--project', join(dir, 'empty')]);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain(`--resume: no last.kdw found below ${join(dir, 'empty')}`);
  }, 300_000);

  it('Ctrl-C in the CLI saves a resumable checkpoint and says how to continue', async () => {
    const child = spawn(process.execPath, [
      '--conditions=source', '--import', 'tsx', KD_TRAINER_BIN, 'classify', 'train', '--data', data, '--epochs', '50', '--imgsz', '32',
      '--batch-size', '4', '--backend', 'wasm', '--threads', '1', '--project', project(), '--name', 'sigint',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    await new Promise<void>((resolve) => {
      const t = setInterval(() => { if (/1\/50 .*\d+\/12/.test(out)) { clearInterval(t); resolve(); } }, 100);
    });
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code, out).toBe(130);
    const saveDir = join(project(), 'sigint');
    expect(out).toContain('Interrupted: saving a checkpoint (last.kdw) after this step; kd-trainer classify train --resume continues it');
    expect(out).toContain(`continue with: kd-trainer classify train --resume ${saveDir}`);
    const ck = await openClassifyCheckpoint(saveDir, 'train');
    // The resumed run's first step is the one after the last saved.
    const steps: ClassifyStepInfo[] = [];
    const ac = new AbortController();
    await trainClassifier({ ...trainCfg({}), resume: saveDir }, { ...quiet, signal: ac.signal, onStep: (s) => { steps.push(s); ac.abort(); } });
    expect(steps[0]).toMatchObject(ck.meta.epochComplete ? { epoch: ck.meta.epoch + 1, step: 1 } : { epoch: ck.meta.epoch, step: ck.meta.step + 1 });
  }, 300_000);
});
