import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeModel, exportOnnx, planYolo, yoloDescription } from '@kd-edge/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.js';
import { resolveOptions } from '../src/config.js';
import { synthesizeDataset } from '../src/data/synth.js';
import { DISTILL_SCHEMA } from '../src/distill/distill-schema.js';
import { detectFeaturePairs, runDistill } from '../src/distill/run-distill.js';
import { loadModelWeights } from '../src/model/weights-io.js';
import { modelWeights } from '../src/export/model-weights.js';
import { readEvents } from '../src/log/event-reader.js';
import { createYoloModel } from '../src/model/yolo.js';
import { HYP_SCRATCH_LOW } from '../src/train/hyp.js';
import type { DistillStepInfo as StepInfo } from '../src/distill/distill-session.js';
import { memoryLogger, silentLogger } from '../src/util/logger.js';
import { writeUntrainedTeacher } from './model-fixtures.js';

// A whole distillation run on a tiny set: an ONNX teacher (a wider custom YOLOv5) teaching a narrow student.
describe('kd-trainer distill (end to end)', () => {
  const root = mkdtempSync(join(tmpdir(), 'kd-distill-'));
  let yaml = '';
  let teacherFile = '';
  const student = { depth_multiple: 0.33, width_multiple: 0.125 };

  beforeAll(async () => {
    ({ yaml } = await synthesizeDataset({ out: join(root, 'shapes'), train: 16, val: 8, imgsz: 64, classes: 2, seed: 4 }));
    await selectBackend('cpu', silentLogger);
    teacherFile = await writeUntrainedTeacher(join(root, 'teacher.onnx'));
    writeFileSync(join(root, 'student.yaml'), JSON.stringify({ nc: 2, ...student, anchors: yoloDescription('n', 2).anchors, backbone: yoloDescription('n', 2).backbone, head: yoloDescription('n', 2).head }));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const config = (over: Record<string, unknown>) => resolveOptions(DISTILL_SCHEMA, [{
    data: yaml, model: join(root, 'student.yaml'), teacher: teacherFile, imgsz: 64, batch_size: 8, epochs: 2, backend: 'wasm',
    project: join(root, 'runs'), workers: 1, seed: 1, ...over,
  }]).config;

  it('distils after the warm-up, logs every KD term, α, T and the teacher wait share, and trains both replicas', async () => {
    const steps: StepInfo[] = [];
    const log = memoryLogger();
    const r = await runDistill(config({ name: 'kd', kd_warmup: 1, threads: 2 }), HYP_SCRATCH_LOW, {
      logger: log, onStep: (s) => steps.push(s), progress: { write: () => true },
    });
    expect(r.distilled.interrupted).toBe(false);
    expect(steps).toHaveLength(4);
    // Epoch 1 is warm-up (α = 0, no teacher pass, KD terms 0); epoch 2 distils.
    expect(steps.slice(0, 2).every((s) => s.alpha === 0 && s.loss.slice(3).every((v) => v === 0))).toBe(true);
    expect(steps.slice(2).every((s) => s.alpha === 0.5 && s.loss.slice(3).some((v) => v > 0))).toBe(true);
    expect(steps.every((s) => s.loss.length === 7 && s.loss.every(Number.isFinite))).toBe(true);
    expect(r.teacher).toBeDefined();
    expect(log.lines.some((l) => l.msg.startsWith('teacher on val: mAP50'))).toBe(true);

    const ev = readdirSync(r.distilled.saveDir).find((f) => f.includes('tfevents'))!;
    const values = readEvents(join(r.distilled.saveDir, ev)).flatMap((e) => (e.summary ?? []).map((v) => ({ ...v, step: e.step })));
    for (const tag of ['train/kd_obj', 'train/kd_cls', 'train/kd_box', 'kd/alpha', 'kd/temperature', 'kd/teacher_wait_share', 'kd/teacher_ms_per_image',
      'kd/peak_rss_mib', 'kd/teacher_mAP_0.5']) {
      expect(values.some((v) => v.tag === tag), tag).toBe(true);
    }
    expect(values.some((v) => v.tag === 'kd/teacher_class_prob' && v.histo)).toBe(true);
    expect(values.some((v) => v.tag === 'kd/student_class_prob' && v.histo)).toBe(true);
    const alphas = values.filter((v) => v.tag === 'kd/alpha').map((v) => v.simpleValue);
    expect(alphas).toEqual([0, 0.5]);
  });

  it('yolo-kd + feature: adapters train with the student in both replicas and are not saved in best.kdw', async () => {
    const steps: StepInfo[] = [];
    const r = await runDistill(config({ name: 'feat', kd_loss: 'yolo-kd+feature', epochs: 1, threads: 2 }), HYP_SCRATCH_LOW, {
      onStep: (s) => steps.push(s), progress: { write: () => true },
    });
    expect(steps.length).toBe(2);
    // [box, obj, cls, kd_obj, kd_cls, kd_box, kd_feat]
    expect(steps.every((s) => s.loss[6]! > 0 && Number.isFinite(s.loss[6]!))).toBe(true);
    const { weights } = await loadModelWeights(r.distilled.best);
    expect([...weights.keys()].some((k) => k.startsWith('kd.'))).toBe(false);
    const pairs = await detectFeaturePairs(teacherFile, planYolo({ ...yoloDescription('n', 2), ...student }));
    expect(pairs.map((p) => [p.name, p.studentLayer, p.teacherTensor])).toEqual([
      ['p3', 17, '/model.17/cv3/act/Mul_output_0'], ['p4', 20, '/model.20/cv3/act/Mul_output_0'], ['p5', 23, '/model.23/cv3/act/Mul_output_0'],
    ]);
    expect(pairs[0]!.teacherC).toBe(2 * pairs[0]!.studentC);

    // The default weight (0.005) scales the term: the same first step at --kd-feature 1 is 200× larger.
    const heavy: StepInfo[] = [];
    await runDistill(config({ name: 'feat1', kd_loss: 'yolo-kd+feature', kd_feature: 1, epochs: 1, threads: 2 }), HYP_SCRATCH_LOW, {
      onStep: (s) => heavy.push(s), progress: { write: () => true }, maxSteps: 1,
    });
    expect(heavy[0]!.loss[6]! * 0.005).toBeCloseTo(steps[0]!.loss[6]!, 4);
  });

  it('yolo-kd + cwd: the channel-wise term trains on the same neck pairs, from the CLI options', async () => {
    const steps: StepInfo[] = [];
    await runDistill(config({ name: 'cwd', kd_loss: 'yolo-kd+cwd', kd_cwd: 2, kd_cwd_temperature: 3, epochs: 1, threads: 1 }), HYP_SCRATCH_LOW, {
      onStep: (s) => steps.push(s), progress: { write: () => true },
    });
    expect(steps.length).toBe(2);
    expect(steps.every((s) => s.loss[6]! > 0 && Number.isFinite(s.loss[6]!))).toBe(true);
  });

  it('--unlabeled: the teacher labels images without labels, mixed into every epoch', async () => {
    const steps: StepInfo[] = [];
    const raw = join(root, 'shapes', 'images', 'val'); // used as unlabelled images: their label files are not read
    const r = await runDistill(config({ name: 'unl', unlabeled: raw, unlabeled_ratio: 0.5, pseudo_conf: 0.001, kd_warmup: 1, epochs: 2, threads: 1 }), HYP_SCRATCH_LOW, {
      onStep: (s) => steps.push(s), progress: { write: () => true },
    });
    // 16 labelled + 8 unlabelled per epoch in batches of 8: 3 steps an epoch.
    expect(steps.filter((s) => s.epoch === 0)).toHaveLength(3);
    const ev = readdirSync(r.distilled.saveDir).find((f) => f.includes('tfevents'))!;
    const pseudo = readEvents(join(r.distilled.saveDir, ev)).flatMap((e) => e.summary ?? []).filter((v) => v.tag === 'kd/pseudo_boxes_per_image');
    // Labelled during the warm-up too (α = 0 in epoch 0): the teacher runs for the unlabelled images.
    expect(pseudo).toHaveLength(2);
    expect(pseudo.every((v) => v.simpleValue! > 0)).toBe(true);
  });

  it('caches the teacher per image without augmentation: the second epoch reads every output from disk', async () => {
    const log = memoryLogger();
    const cache = join(root, 'tcache');
    const r = await runDistill(config({ name: 'cache', augment: false, teacher_cache: cache, threads: 1 }), HYP_SCRATCH_LOW, { logger: log, progress: { write: () => true } });
    expect(r.distilled.interrupted).toBe(false);
    // 16 train images: 16 misses in epoch 1, 16 hits in epoch 2.
    expect(log.lines.some((l) => /teacher cache: 16 hits, 16 misses/.test(l.msg))).toBe(true);
    const ev = readdirSync(r.distilled.saveDir).find((f) => f.includes('tfevents'))!;
    const perImage = readEvents(join(r.distilled.saveDir, ev)).flatMap((e) => e.summary ?? []).filter((v) => v.tag === 'kd/teacher_ms_per_image').map((v) => v.simpleValue!);
    expect(perImage).toHaveLength(2);
    await expect(runDistill(config({ name: 'cache2', teacher_cache: cache }), HYP_SCRATCH_LOW, { progress: { write: () => true } }))
      .rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringMatching(/no-augment/) });
  });

  it('--compare trains a baseline with the same seed and prints teacher, baseline and distilled', async () => {
    const log = memoryLogger();
    const r = await runDistill(config({ name: 'cmp', compare: true, epochs: 1, threads: 1 }), HYP_SCRATCH_LOW, { logger: log, progress: { write: () => true } });
    expect(r.baseline).toBeDefined();
    expect(r.rows!.map((x) => x.model)).toEqual(['teacher', 'student (baseline)', 'student (distilled)']);
    expect(r.rows![1]!.params).toBe(r.rows![2]!.params);
    expect(r.rows![0]!.params).toBeGreaterThan(r.rows![1]!.params);
    expect(log.lines.some((l) => l.msg.includes('mAP50-95') && l.msg.includes('Params'))).toBe(true);
  });

  it('refuses a teacher with another class count, naming both values', async () => {
    const t = createYoloModel(yoloDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, 3), { seed: 1 });
    const bad = join(root, 'nc3.onnx');
    writeFileSync(bad, encodeModel(exportOnnx(t.description, modelWeights(t), { imgsz: 64 })));
    t.dispose();
    await expect(runDistill(config({ name: 'bad', teacher: bad }), HYP_SCRATCH_LOW, { progress: { write: () => true } }))
      .rejects.toMatchObject({ code: 'DISTILL_INCOMPATIBLE', message: expect.stringMatching(/3.*2|2.*3/) });
  });
});
