import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { classifierDescription } from '@kd-edge/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.js';
import { CLASSIFY_DISTILL_SCHEMA } from '../src/classify/classify-schema.js';
import { runClassifyDistill } from '../src/classify/distill.js';
import { KdStop } from '../src/distill/kd-stop.js';
import { trainClassifier, type ClassifyStepInfo } from '../src/classify/train.js';
import { resolveOptions } from '../src/config.js';
import { synthesizeClassifyDataset } from '../src/data/synth-classify.js';
import { STOP_EPOCHS } from '../src/distill/kd-stop.js';
import type { Teacher } from '../src/distill/types.js';
import { readEvents } from '../src/log/event-reader.js';
import { readResultsCsv } from '../src/log/results-csv.js';
import { createClassifier } from '../src/model/classifier.js';
import { readTensorArchive, saveWeights, writeTensorArchive } from '../src/model/weights-io.js';
import { memoryLogger } from '../src/util/logger.js';

const quiet = { progress: { write: () => true } };
/** The default α, as TensorBoard stores it (float32). */
const A = Math.fround(0.7);

/** A checkpoint's meta (the `meta` of its header). */
async function metaOf(file: string): Promise<Record<string, unknown>> {
  return (await readTensorArchive(file)).meta.meta as Record<string, unknown>;
}

/** `tag`'s value per epoch over every TensorBoard file of a run (one more per resume). */
function scalarByEpoch(saveDir: string, tag: string): number[] {
  const out: number[] = [];
  for (const f of readdirSync(saveDir).filter((n) => n.includes('tfevents'))) {
    for (const e of readEvents(join(saveDir, f))) {
      for (const v of e.summary ?? []) if (v.tag === tag) out[e.step] = v.simpleValue!;
    }
  }
  return out;
}

const kdLossByEpoch = (saveDir: string): number[] => readResultsCsv(join(saveDir, 'results.csv')).rows.map((row) => row['train/kd_loss']!);

// --kd-stop teacher on top-1: distillation stops once the student has reached its teacher on val.
describe('kd-trainer classify distill --kd-stop', () => {
  let dir = '';
  let data = '';
  let teacher = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kd-cls-stop-'));
    // 3 classes, 48 train images at 32 px in batches of 16: 3 steps an epoch; 24 val images, 8 a class.
    data = (await synthesizeClassifyDataset({ out: join(dir, 'shapes-cls'), train: 48, val: 24, imgsz: 32, classes: 3, seed: 1 })).root;
    await selectBackend('wasm');
    // An untrained teacher names one class for every image: top-1 1/3, chance, which any student reaches.
    const t = createClassifier(classifierDescription('n', 3, { names: ['circle', 'square', 'triangle'] }), { seed: 7 });
    teacher = join(dir, 'teacher.kdw');
    await saveWeights(teacher, t);
    t.dispose();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(`stops after ${STOP_EPOCHS} epochs in a row at or above the teacher's top-1; a lower epoch restarts the count`, () => {
    const s = new KdStop(0.5);
    expect(s.observe(0, 0.6)).toBe(false); // above
    expect(s.observe(1, 0.4)).toBe(false); // below: the count starts again
    expect(s.observe(2, 0.5)).toBe(false); // level counts as reached
    expect(s.stopped(3)).toBe(false);
    expect(s.observe(3, 0.55)).toBe(true);
    expect(s.stoppedFrom).toBe(4);
    expect([s.stopped(3), s.stopped(4), s.stopped(9)]).toEqual([false, true, true]);
    // Once stopped it stays stopped, whatever later epochs measure.
    expect(s.observe(4, 0.1)).toBe(false);
    expect(s.stopped(5)).toBe(true);
    expect(s.state()).toEqual({ aboveTeacher: 2, stoppedFrom: 4 });
  });

  it('a resumed rule continues from the checkpoint state: the count, or the stop', () => {
    const counting = new KdStop(0.5, { aboveTeacher: 1 });
    expect(counting.observe(7, 0.7)).toBe(true);
    expect(counting.stoppedFrom).toBe(8);
    const stopped = new KdStop(0.5, { aboveTeacher: 2, stoppedFrom: 3 });
    expect([stopped.stopped(2), stopped.stopped(3)]).toEqual([false, true]);
    expect(stopped.observe(3, 0.9)).toBe(false);
    expect(stopped.state()).toEqual({ aboveTeacher: 2, stoppedFrom: 3 });
  });

  const config = (over: Record<string, unknown>) => resolveOptions(CLASSIFY_DISTILL_SCHEMA, [{
    data, teacher, epochs: 4, imgsz: 32, batch_size: 16, backend: 'wasm', threads: 1, project: join(dir, 'runs'), ...over,
  }]).config;

  it('in a run: the student reaches the untrained teacher, α is 0 from the third epoch, the teacher stops running, and --resume keeps it off', async () => {
    const log = memoryLogger();
    const steps: ClassifyStepInfo[] = [];
    const ac = new AbortController();
    // Stopped (as Ctrl-C does) after the first step of the third epoch, the first without the teacher.
    const first = await runClassifyDistill(config({ name: 'stop' }), {
      ...quiet, logger: log, signal: ac.signal, onStep: (s) => { steps.push(s); if (s.epoch === 2) ac.abort(); },
    });
    expect(first.interrupted).toBe(true);
    expect(first.teacher.top1).toBeCloseTo(1 / 3, 9);
    const saveDir = first.distilled.saveDir;
    const top1 = readResultsCsv(join(saveDir, 'results.csv')).rows.map((row) => row['metrics/accuracy_top1']!);
    expect(top1).toHaveLength(2);
    expect(top1.every((v) => v >= Number(first.teacher.top1.toFixed(5)))).toBe(true);
    expect(first.kdStoppedFrom).toBe(2);
    // The KD term is 0 exactly when no teacher logits came with the batch: the teacher did not run for it.
    expect(steps.map((s) => [s.epoch, s.loss[2] > 0])).toEqual([[0, true], [0, true], [0, true], [1, true], [1, true], [1, true], [2, false]]);
    expect(log.lines.some((l) => /kd-stop: the student's val top-1 \(0\.333\) has reached the teacher's \(0\.333\) on 2 epochs in a row: α is 0 from epoch 3 on/.test(l.msg))).toBe(true);
    expect(log.lines.some((l) => /kd-stop: distilled in epochs 1–2, trained on the labels alone from epoch 3/.test(l.msg))).toBe(true);
    expect(await metaOf(first.distilled.last)).toMatchObject({ epoch: 2, epochComplete: false, distill: { kd_stop: 'teacher' }, kdStop: { aboveTeacher: 2, stoppedFrom: 2 } });

    // The checkpoint's setting and stop win over what the resuming command says.
    const relog = memoryLogger();
    const resumed: ClassifyStepInfo[] = [];
    const again = resolveOptions(CLASSIFY_DISTILL_SCHEMA, [{ data: 'ignored', teacher: 'ignored.onnx', kd_stop: 'never', resume: saveDir, backend: 'wasm', threads: 1 }]).config;
    const second = await runClassifyDistill(again, { ...quiet, logger: relog, onStep: (s) => resumed.push(s) });
    expect(second.interrupted).toBe(false);
    expect(second.kdStoppedFrom).toBe(2);
    expect(resumed.map((s) => [s.epoch, s.loss[2]])).toEqual([[2, 0], [2, 0], [3, 0], [3, 0], [3, 0]]);
    expect(relog.lines.some((l) => /kd-stop: the student reached the teacher before this resume; α stays 0 from epoch 3 on/.test(l.msg))).toBe(true);
    expect(relog.lines.some((l) => /kd-stop: distilled in epochs 1–2, trained on the labels alone from epoch 3/.test(l.msg))).toBe(true);
    expect(kdLossByEpoch(saveDir).map((v) => v > 0)).toEqual([true, true, false, false]);
    expect(scalarByEpoch(saveDir, 'kd/alpha')).toEqual([A, A, 0, 0]);
    expect(scalarByEpoch(saveDir, 'kd/teacher_accuracy_top1').map((v) => v.toFixed(4))).toEqual(['0.3333', '0.3333', '0.3333', '0.3333']);
  }, 300_000);

  it('--kd-stop never distils every epoch of the same run', async () => {
    const log = memoryLogger();
    const r = await runClassifyDistill(config({ name: 'never', kd_stop: 'never' }), { ...quiet, logger: log });
    expect(r.kdStoppedFrom).toBeUndefined();
    expect(kdLossByEpoch(r.distilled.saveDir).every((v) => v > 0)).toBe(true);
    expect(scalarByEpoch(r.distilled.saveDir, 'kd/alpha')).toEqual([A, A, A, A]);
    expect(log.lines.some((l) => l.msg.startsWith('kd-stop'))).toBe(false);
    const meta = await metaOf(r.distilled.last);
    expect(meta).toMatchObject({ distill: { kd_stop: 'never' } });
    expect(meta.kdStop).toBeUndefined();
  }, 300_000);

  it('a checkpoint from before --kd-stop resumes as never: it distils to the last epoch', async () => {
    const ac = new AbortController();
    const first = await runClassifyDistill(config({ name: 'old' }), { ...quiet, signal: ac.signal, onStep: (s) => { if (s.epoch === 1) ac.abort(); } });
    // Rewrite its last.kdw as a run from before the option wrote it: no kd_stop, no kdStop.
    const archive = await readTensorArchive(first.distilled.last);
    const header = archive.meta as { meta: { distill: Record<string, unknown>; kdStop?: unknown } };
    expect(header.meta.kdStop).toEqual({ aboveTeacher: 1 });
    delete header.meta.distill.kd_stop;
    delete header.meta.kdStop;
    await writeTensorArchive(first.distilled.last, header, archive.tensors);

    const second = await runClassifyDistill(config({ resume: first.distilled.saveDir }), quiet);
    expect(second.kdStoppedFrom).toBeUndefined();
    expect(kdLossByEpoch(first.distilled.saveDir).every((v) => v > 0)).toBe(true);
    expect(scalarByEpoch(first.distilled.saveDir, 'kd/alpha')).toEqual([A, A, A, A]);
    expect(await metaOf(second.distilled.last)).toMatchObject({ distill: { kd_stop: 'never' } });
  }, 300_000);

  it('through trainClassifier: the teacher is not called after the stop, and the stop needs the teacher\'s top-1', async () => {
    let calls = 0;
    const fake: Teacher = {
      kind: 'tfjs', source: 'fake', task: 'classify', nc: 3, fileHash: '', paramCount: 0,
      predict: async (_images, n) => { calls++; return { logits: new Float32Array(n * 3), ms: 0 }; },
      dispose: async () => undefined,
    };
    const cfg = config({ name: 'api', epochs: 3 });
    // Top-1 0: every student has reached it, so only the first two epochs (3 batches each) run the teacher.
    const r = await trainClassifier(cfg, { ...quiet, kd: { teacher: fake, alpha: 0.5, temperature: 2, warmup: 0, teacherTop1: 0, stopAtTeacher: true } });
    expect(r.kdStoppedFrom).toBe(2);
    expect(calls).toBe(6);
    await expect(trainClassifier(cfg, { ...quiet, kd: { teacher: fake, alpha: 0.5, temperature: 2, warmup: 0, stopAtTeacher: true } }))
      .rejects.toThrow("kd.stopAtTeacher needs kd.teacherTop1, the teacher's val top-1 to reach");
  }, 300_000);

  it('refuses an unknown --kd-stop value, naming the choices', () => {
    expect(() => config({ kd_stop: 'sometimes' })).toThrow(/kd_stop.*sometimes|sometimes.*teacher.*never/);
  });
});
