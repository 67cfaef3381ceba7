import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { yoloDescription } from '@kd-edge/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.js';
import { resolveOptions } from '../src/config.js';
import { synthesizeDataset } from '../src/data/synth.js';
import { DISTILL_SCHEMA } from '../src/distill/distill-schema.js';
import { DistillSession, type DistillStepInfo } from '../src/distill/distill-session.js';
import { kdStopSummary, STOP_EPOCHS } from '../src/distill/kd-stop.js';
import { runDistill } from '../src/distill/run-distill.js';
import { openTeacher } from '../src/distill/teacher/open-teacher.js';
import type { Teacher } from '../src/distill/types.js';
import { loadModel } from '../src/model/weights-io.js';
import type { DetectionModel } from '../src/model/types.js';
import type { EpochEnd } from '../src/train/hooks.js';
import { HYP_SCRATCH_LOW } from '../src/train/hyp.js';
import { memoryLogger, silentLogger } from '../src/util/logger.js';
import type { ValResult } from '../src/val/validator.js';
import { writeUntrainedTeacher } from './model-fixtures.js';

// --kd-stop teacher: distillation stops once the student has reached its teacher on val.
describe('kd-trainer distill --kd-stop', () => {
  const root = mkdtempSync(join(tmpdir(), 'kd-stop-'));
  let yaml = '';
  let teacherFile = '';
  let teacher: Teacher;

  beforeAll(async () => {
    ({ yaml } = await synthesizeDataset({ out: join(root, 'shapes'), train: 16, val: 8, imgsz: 64, classes: 2, seed: 4 }));
    await selectBackend('cpu', silentLogger);
    // An untrained teacher: its val mAP is about 0, so any student reaches it.
    teacherFile = await writeUntrainedTeacher(join(root, 'teacher.onnx'), { kdw: join(root, 'teacher.kdw') });
    teacher = await openTeacher(teacherFile);
  });
  afterAll(async () => {
    await teacher.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  const geometry = { nc: 2, strides: [8, 16, 32], anchors: yoloDescription('n', 2).anchors };
  const session = (stopAtTeacher: boolean) => {
    const s = new DistillSession({
      teacher, losses: ['yolo-kd'], temperature: 2, alpha: 0.5, lambda: 1, warmup: 0, ramp: 0, clsMode: 'sigmoid', boxMode: 'ciou',
      termWeights: { obj: 1, cls: 1, box: 1 }, ...(stopAtTeacher ? { stopAtTeacher } : {}),
    }, geometry);
    s.teacherMetrics = { map50: 0.4, map: 0.2 };
    return s;
  };
  const epochEnd = (epoch: number, map?: number): EpochEnd => ({
    epoch, meanLoss: [0, 0, 0, 0, 0, 0], images: 16, model: undefined as unknown as DetectionModel,
    ...(map === undefined ? {} : { metrics: { map, map50: 2 * map } as ValResult }),
  });
  const start = (s: DistillSession, resumedState?: Record<string, unknown>) =>
    s.onTrainStart({ cfg: { seed: 0, epochs: 10 } as never, model: undefined as unknown as DetectionModel, log: silentLogger, ...(resumedState ? { resumedState } : {}) });

  it(`stops after ${STOP_EPOCHS} validated epochs in a row at or above the teacher; a lower epoch restarts the count`, async () => {
    const s = session(true);
    start(s);
    await s.onEpochEnd(epochEnd(0, 0.25)); // above
    await s.onEpochEnd(epochEnd(1, 0.19)); // below: the count starts again
    await s.onEpochEnd(epochEnd(2, 0.2)); // level counts as reached
    await s.onEpochEnd(epochEnd(3)); // not validated (--noval): counts neither way
    expect(s.alphaAt(4)).toBe(0.5);
    await s.onEpochEnd(epochEnd(4, 0.21));
    expect(s.stoppedFrom).toBe(5);
    expect([s.alphaAt(4.99), s.alphaAt(5), s.alphaAt(9.5)]).toEqual([0.5, 0, 0]);
    // Once stopped it stays stopped, whatever later epochs measure.
    await s.onEpochEnd(epochEnd(5, 0.1));
    expect(s.alphaAt(6)).toBe(0);
    expect(s.checkpointState()).toEqual({ kdStop: { aboveTeacher: 2, stoppedFrom: 5 } });
  });

  it('takes no decision after the last epoch (nothing is left to stop)', async () => {
    const s = session(true);
    start(s);
    for (let e = 7; e < 10; e++) await s.onEpochEnd(epochEnd(e, e === 7 ? 0.1 : 0.3));
    expect(s.stoppedFrom).toBeUndefined();
  });

  it('a resumed session continues from the checkpoint state: the count, or the stop', async () => {
    const counting = session(true);
    start(counting, { kdStop: { aboveTeacher: 1 } });
    await counting.onEpochEnd(epochEnd(7, 0.3));
    expect(counting.stoppedFrom).toBe(8);
    const stopped = session(true);
    start(stopped, { kdStop: { aboveTeacher: 2, stoppedFrom: 3 } });
    expect([stopped.alphaAt(2.5), stopped.alphaAt(3)]).toEqual([0.5, 0]);
  });

  it('the end line names the epochs that distilled, one epoch, or none when the stop came in the warm-up', () => {
    expect(kdStopSummary(5, 0, 'mAP50-95')).toMatch(/distilled in epochs 1–5, trained on the labels alone from epoch 6 .*mAP50-95/);
    expect(kdStopSummary(3, 2, 'top-1')).toMatch(/distilled in epoch 3, trained on the labels alone from epoch 4/);
    expect(kdStopSummary(2, 3, 'mAP50-95')).toMatch(/during the warm-up, so it never distilled/);
  });

  it('never stops without stopAtTeacher (--kd-stop never)', async () => {
    const s = session(false);
    start(s);
    for (let e = 0; e < 4; e++) await s.onEpochEnd(epochEnd(e, 0.9));
    expect(s.stoppedFrom).toBeUndefined();
    expect(s.alphaAt(5)).toBe(0.5);
  });

  const config = (over: Record<string, unknown>) => resolveOptions(DISTILL_SCHEMA, [{
    data: yaml, model: 'yolov5n', teacher: teacherFile, imgsz: 64, batch_size: 8, epochs: 4, backend: 'wasm',
    project: join(root, 'runs'), workers: 1, threads: 1, seed: 1, ...over,
  }]).config;

  it('in a run: the student reaches an untrained teacher, α is 0 from the third epoch, the teacher stops running, and --resume keeps it off', async () => {
    const log = memoryLogger();
    const steps: DistillStepInfo[] = [];
    // 16 images in batches of 8: 2 steps an epoch; stop in the third epoch, after its first step.
    const first = await runDistill(config({ name: 'stop' }), HYP_SCRATCH_LOW, {
      logger: log, maxSteps: 5, onStep: (s) => steps.push(s), progress: { write: () => true },
    });
    expect(first.interrupted).toBe(true);
    expect(first.teacher!.map).toBeLessThan(0.01);
    const [head, ...rows] = readFileSync(join(first.distilled.saveDir, 'results.csv'), 'utf8').trim().split('\n').map((l) => l.split(',').map((c) => c.trim()));
    const col = head!.indexOf('metrics/mAP_0.5:0.95');
    expect(col).toBeGreaterThan(0);
    const csv = rows.map((r) => Number(r[col]));
    expect(csv).toHaveLength(2);
    expect(csv.every((m) => m >= first.teacher!.map)).toBe(true);
    expect(first.kdStoppedFrom).toBe(2);
    expect(steps.map((s) => s.alpha)).toEqual([0.5, 0.5, 0.5, 0.5, 0]);
    // The step after the stop has no KD loss at all: the teacher did not run for it.
    expect(steps[4]!.loss.slice(3).every((v) => v === 0)).toBe(true);
    expect(log.lines.some((l) => /kd-stop: the student's val mAP50-95 .* has reached the teacher's .* α is 0 from epoch 3 on/.test(l.msg))).toBe(true);
    const ck = await loadModel(join(first.distilled.saveDir, 'weights', 'last.kdw'));
    expect(ck.meta.hookState).toEqual({ kdStop: { aboveTeacher: 2, stoppedFrom: 2 } });
    ck.model.dispose();

    const resumedSteps: DistillStepInfo[] = [];
    const relog = memoryLogger();
    const { config: rc } = resolveOptions(DISTILL_SCHEMA, [{ data: yaml, teacher: 'ignored.onnx', resume: first.distilled.saveDir, backend: 'wasm' }]);
    const second = await runDistill(rc, HYP_SCRATCH_LOW, { logger: relog, onStep: (s) => resumedSteps.push(s), progress: { write: () => true } });
    expect(second.interrupted).toBe(false);
    expect(resumedSteps.map((s) => [s.epoch, s.alpha])).toEqual([[2, 0], [2, 0], [3, 0], [3, 0]]);
    expect(second.kdStoppedFrom).toBe(2);
    expect(relog.lines.some((l) => /before this resume; α stays 0 from epoch 3/.test(l.msg))).toBe(true);
    expect(relog.lines.some((l) => /kd-stop: distilled in epochs 1–2, trained on the labels alone from epoch 3/.test(l.msg))).toBe(true);
  });

  it('with a warm-up, the epochs it distilled start after it; warm-up epochs count toward the stop', async () => {
    const log = memoryLogger();
    const steps: DistillStepInfo[] = [];
    const r = await runDistill(config({ name: 'warm', kd_warmup: 1, epochs: 3 }), HYP_SCRATCH_LOW, { logger: log, onStep: (s) => steps.push(s), progress: { write: () => true } });
    expect(r.kdStoppedFrom).toBe(2);
    expect(steps.map((s) => s.alpha)).toEqual([0, 0, 0.5, 0.5, 0, 0]);
    expect(log.lines.some((l) => /kd-stop: distilled in epoch 2, trained on the labels alone from epoch 3/.test(l.msg))).toBe(true);
  });

  it('--kd-decay linear: α falls step by step to 0 at the end of the run', async () => {
    const steps: DistillStepInfo[] = [];
    await runDistill(config({ name: 'decay', kd_decay: 'linear', kd_stop: 'never', epochs: 2 }), HYP_SCRATCH_LOW, { onStep: (s) => steps.push(s), progress: { write: () => true } });
    // Two steps an epoch: progress 0, 0.5, 1, 1.5 of 2 epochs.
    expect(steps.map((s) => s.alpha)).toEqual([0.5, 0.375, 0.25, 0.125]);
  });

  it('--kd-stop never distils every epoch of the same run', async () => {
    const steps: DistillStepInfo[] = [];
    const r = await runDistill(config({ name: 'never', kd_stop: 'never', epochs: 3 }), HYP_SCRATCH_LOW, {
      onStep: (s) => steps.push(s), progress: { write: () => true },
    });
    expect(r.kdStoppedFrom).toBeUndefined();
    expect(steps.map((s) => s.alpha)).toEqual([0.5, 0.5, 0.5, 0.5, 0.5, 0.5]);
  });

  it('a .kdw teacher is validated too (on TensorFlow.js), so --kd-stop and the --compare gap share work with it', async () => {
    const log = memoryLogger();
    const onnx = await runDistill(config({ name: 'vonnx', epochs: 1 }), HYP_SCRATCH_LOW, { maxSteps: 1, progress: { write: () => true } });
    const kdw = await runDistill(config({ name: 'vkdw', epochs: 1, teacher: join(root, 'teacher.kdw') }), HYP_SCRATCH_LOW, { logger: log, maxSteps: 1, progress: { write: () => true } });
    expect(kdw.teacher).toBeDefined();
    // An untrained teacher finds nothing in either form: both measure 0 (export parity is tested elsewhere).
    expect(kdw.teacher).toEqual(onnx.teacher);
    expect(log.lines.some((l) => l.msg.startsWith('teacher on val: mAP50'))).toBe(true);
  });

  it('refuses an unknown --kd-stop value, naming the choices', () => {
    expect(() => config({ kd_stop: 'sometimes' })).toThrow(/kd_stop.*teacher.*never|teacher.*never.*sometimes|sometimes.*teacher/);
  });
});
