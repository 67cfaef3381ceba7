import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, extname, join } from 'node:path';
import { nonMaxSuppression } from '@kd-edge/core';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decideAcceptance } from '../src/adapt/acceptance.js';
import type { AdaptProgress, AdaptReport } from '../src/adapt/adapt-report.js';
import { ADAPT_SCHEMA } from '../src/adapt/adapt-schema.js';
import type { AdaptFigures } from '../src/adapt/evaluate.js';
import { holdoutSplit } from '../src/adapt/holdout-split.js';
import { jobPaths } from '../src/adapt/job-files.js';
import { labelFrames, type LabelSummary } from '../src/adapt/label-frames.js';
import { runAdapt } from '../src/adapt/run-adapt.js';
import { selectBackend } from '../src/backend/select.js';
import { resolveOptions } from '../src/config.js';
import { decodeImage } from '../src/data/image.js';
import { OnnxTeacher } from '../src/distill/teacher/onnx-teacher.js';
import { readResultsCsv } from '../src/log/results-csv.js';
import { yoloLabelLines } from '../src/predict/labels.js';
import { prepareImage, scaleDetections } from '../src/predict/preprocess.js';
import { readCheckpointMeta } from '../src/train/checkpoint.js';
import { memoryLogger, silentLogger } from '../src/util/logger.js';
import { nhwcToNchw } from '../src/val/onnx-predictor.js';
import { captureName, labelledVal, NAMES, synthFrames, writeCapture, writeStudent, writeTeacher } from './adapt-fixtures.js';

/** The teacher run by itself as `kd-trainer predict` runs an ONNX model: letterbox, output0, NMS, clip, back to the frame, YOLO lines. */
async function teacherDirect(teacher: string, frame: string, imgsz: number, conf: number): Promise<string[]> {
  const img = await decodeImage(frame);
  const p = await prepareImage(img, [imgsz, imgsz]);
  const session = await ort.InferenceSession.create(teacher);
  try {
    const out = await session.run({ images: new ort.Tensor('float32', nhwcToNchw(p.input, 1, p.height, p.width), [1, 3, p.height, p.width]) });
    const dets = nonMaxSuppression(out.output0!.data as Float32Array, NAMES.length, { confThres: conf, iouThres: 0.45 })
      .map((d) => ({ ...d, box: [Math.max(d.box[0], 0), Math.max(d.box[1], 0), Math.min(d.box[2], p.width), Math.min(d.box[3], p.height)] as [number, number, number, number] }))
      .filter((d) => d.box[2] - d.box[0] >= 2 && d.box[3] - d.box[1] >= 2);
    const orig: [number, number] = [img.height, img.width];
    return [...new Set(yoloLabelLines(scaleDetections(dets, p, orig), orig, false))];
  } finally {
    await session.release();
  }
}

const rows = (lines: string[]): number[][] => lines.filter(Boolean).map((l) => l.split(' ').map(Number)).sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]! || a[2]! - b[2]!);

describe('kd-trainer adapt (library)', () => {
  const root = mkdtempSync(join(tmpdir(), 'kd-adapt-'));
  const capture = join(root, 'capture');
  let frames: { data: Buffer; ext: string }[] = [];
  let teacher = '';
  let student = '';
  let valYaml = '';

  beforeAll(async () => {
    await selectBackend('wasm', silentLogger);
    frames = await synthFrames(root, 16, 3);
    writeCapture(capture, frames);
    // Two frames a power cut damaged: a JPEG cut in half and a PNG of noise.
    writeFileSync(join(capture, captureName(1_800_000_000_000, 'jpg')), frames[5]!.data.subarray(0, frames[5]!.data.length >> 1));
    writeFileSync(join(capture, captureName(1_800_000_000_001, 'png')), Buffer.alloc(400, 7));
    teacher = writeTeacher(join(root, 'teacher.onnx'));
    student = await writeStudent(join(root, 'student.kdw'));
    valYaml = await labelledVal(root);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const config = (over: Record<string, unknown>) => resolveOptions(ADAPT_SCHEMA, [{
    frames: capture, teacher, weights: student, out: join(root, 'job'), imgsz: 64, batch_size: 8, epochs: 1, backend: 'wasm', threads: 1, workers: 0,
    calib_images: 8, ...over,
  }]).config;
  const quiet = { progress: { write: () => true } };

  it('labels, fine-tunes, evaluates, accepts and exports; the labels are the teacher\'s detections over pseudo-conf; adapt.json says it all', async () => {
    const seen: AdaptProgress[] = [];
    const log = memoryLogger();
    const r = await runAdapt(config({ val: valYaml, min_gain: -1, max_loss: 1 }), { ...quiet, logger: log, onProgress: (p) => seen.push(p) });
    expect(r.status).toBe('accepted');
    // What was written is what training reads: no label row dropped by the dataset scan.
    expect(log.lines.filter((l) => l.level === 'warn' && /label/.test(l.msg))).toEqual([]);
    const report = r as AdaptReport;
    const paths = jobPaths(join(root, 'job'));
    expect(JSON.parse(readFileSync(paths.report, 'utf8'))).toEqual(JSON.parse(JSON.stringify(report)));

    // Frames: 18 image files (sidecars are not images), 2 corrupt skipped; 16 used, 3 held out.
    expect(report.frames).toMatchObject({ found: 18, used: 16, skipped: 2, sources: [capture] });
    expect(report.frames.skippedFiles.map((f) => basename(f)).sort()).toEqual([captureName(1_800_000_000_000, 'jpg'), captureName(1_800_000_000_001, 'png')]);
    expect(report.split).toEqual({ adapt: 13, holdout: 3, share: 0.2, seed: 0 });
    const labels = JSON.parse(readFileSync(paths.labels, 'utf8')) as LabelSummary;
    expect(readdirSync(join(paths.data, 'images', 'train'))).toHaveLength(13);
    expect(readdirSync(join(paths.data, 'images', 'val'))).toHaveLength(3);
    expect(readFileSync(paths.dataYaml, 'utf8')).toMatch(/names:\n\s+- circle\n\s+- square/);

    // Every frame is a hard link to the captured file (not a symbolic link, not a copy), with a label file.
    let boxes = 0;
    let belowThreshold = 0;
    for (const f of labels.items) {
      const split = f.split === 'adapt' ? 'train' : 'val';
      const image = join(paths.data, 'images', split, f.name);
      expect(lstatSync(image).isFile()).toBe(true);
      expect(statSync(image).ino).toBe(statSync(f.source).ino);
      const lines = readFileSync(join(paths.data, 'labels', split, `${basename(f.name, extname(f.name))}.txt`), 'utf8').split('\n').filter(Boolean);
      expect(lines).toHaveLength(f.boxes);
      boxes += f.boxes;
      // As the teacher finds them run by itself: same classes, coordinates to float32 round-off.
      const want = rows(await teacherDirect(teacher, f.source, 64, 0.5));
      const got = rows(lines);
      expect(got.map((x) => x[0])).toEqual(want.map((x) => x[0]));
      got.forEach((g, i) => g.forEach((v, k) => expect(Math.abs(v - want[i]![k]!), `${f.name} row ${i}`).toBeLessThan(1e-4)));
      if ((await teacherDirect(teacher, f.source, 64, 0.25)).length > want.length) belowThreshold++;
    }
    // The teacher has boxes between 0.25 and 0.5 on some frames: the threshold is what kept them out.
    expect(belowThreshold).toBeGreaterThan(0);
    expect(boxes).toBe(report.boxes.total);
    expect(boxes).toBeGreaterThan(0);
    expect(report.boxes.perFrame).toBeCloseTo(boxes / 16, 9);

    // The recipe: no warm-up, so the first epoch trains at lr0 itself.
    expect(report.training).toMatchObject({ stopReason: 'completed', epochs: 1, epochsRun: 1, resumes: 0, adapted: paths.best });
    expect(report.recipe.hyp).toMatchObject({ lr0: 0.002, lrf: 0.1, warmup_epochs: 0, warmup_bias_lr: 0 });
    // No gradient accumulation: an update every step.
    expect(report.recipe.nbs).toBe(8);
    const csv = readResultsCsv(join(paths.run, 'results.csv'));
    expect(csv.rows).toHaveLength(1);
    expect(csv.rows[0]!['x/lr0']).toBeCloseTo(0.002, 9);
    expect(csv.rows[0]!['x/lr1']).toBeCloseTo(0.002, 9);

    // Before and after, on the hold-out (3 frames) and on the labelled val (8 images); the teacher on val only.
    const e = report.evaluation;
    expect(e.holdout.images).toBe(3);
    expect(e.holdout.adapted).toBeDefined();
    expect(e.holdout.teacher).toBeUndefined();
    expect(e.val).toMatchObject({ images: 8, data: valYaml });
    expect(e.val!.teacher).toBeDefined();
    expect(report.checks.map((c) => [c.name, c.passed])).toEqual([['holdout-gain', true], ['val-loss', true]]);

    // Exported: fp32 and int8 calibrated on 8 of the adaptation frames.
    expect(report.export!.rows.map((x) => x.file)).toEqual(['model.onnx', 'model.int8.onnx', 'model.int8.u8s8.onnx']);
    expect(report.export!.calibration).toEqual({ images: 8, method: 'minmax' });
    for (const f of ['model.onnx', 'model.int8.onnx', 'export.json']) expect(statSync(join(paths.export, f)).size).toBeGreaterThan(0);

    const stages = seen.map((p) => p.stage).filter((s, i, a) => s !== a[i - 1]);
    expect(stages).toEqual(['label', 'train', 'evaluate', 'export']);
    expect(seen.find((p) => p.stage === 'label' && p.done === 16)).toMatchObject({ total: 16, boxes });
    expect(seen.filter((p) => p.stage === 'evaluate').map((p) => `${p.set}/${p.model}`)).toEqual(
      ['holdout/serving', 'holdout/adapted', 'val/serving', 'val/adapted', 'val/teacher']);
  });

  it('decides a finished job again under another rule without labelling or training: rejected, and the export is gone', async () => {
    const paths = jobPaths(join(root, 'job'));
    const labelled = statSync(paths.labels).mtimeMs;
    const seen: AdaptProgress[] = [];
    const r = await runAdapt(config({ val: valYaml, min_gain: 1 }), { ...quiet, onProgress: (p) => seen.push(p) });
    expect(seen).toEqual([]);
    expect(r.status).toBe('rejected');
    const report = JSON.parse(readFileSync(paths.report, 'utf8')) as AdaptReport;
    expect(report).toMatchObject({ accepted: false, status: 'rejected', exportSkipped: 'rejected' });
    expect(report.export).toBeUndefined();
    expect(report.checks[0]).toMatchObject({ name: 'holdout-gain', passed: false, limit: 1 });
    expect(report.reasons[0]).toMatch(/^hold-out mAP50-95 .* < min-gain 1\.000$/);
    expect(() => statSync(paths.export)).toThrow();
    expect(statSync(paths.labels).mtimeMs).toBe(labelled);
  });

  it('resumes a stopped job from its checkpoint, without labelling again', async () => {
    const out = join(root, 'job-resume');
    const paths = jobPaths(out);
    const ac = new AbortController();
    const first: AdaptProgress[] = [];
    const r1 = await runAdapt(config({ out, epochs: 2, export: false }), {
      ...quiet, signal: ac.signal, onProgress: (p) => { first.push(p); if (p.stage === 'train') ac.abort(); },
    });
    expect(r1).toEqual({ status: 'cancelled', stage: 'train', job: out });
    expect(() => statSync(paths.report)).toThrow();
    const ck = await readCheckpointMeta(paths.last);
    const stoppedAt = ck.meta.epoch + (ck.meta.epochComplete ? 1 : 0);
    expect(stoppedAt).toBe(1);
    const labelled = statSync(paths.labels).mtimeMs;

    const log = memoryLogger();
    const second: AdaptProgress[] = [];
    const r2 = await runAdapt(config({ out, epochs: 2, export: false, min_gain: -1 }), { ...quiet, logger: log, onProgress: (p) => second.push(p) });
    expect(r2.status).toBe('accepted');
    expect(second.some((p) => p.stage === 'label')).toBe(false);
    expect(statSync(paths.labels).mtimeMs).toBe(labelled);
    expect(log.lines.some((l) => l.msg.startsWith(`resuming ${paths.last} from epoch 2/2`))).toBe(true);
    // Only the epoch not yet trained.
    expect(second.filter((p) => p.stage === 'train').map((p) => p.stage === 'train' && p.epoch)).toEqual([2]);
    expect((r2 as AdaptReport).training).toMatchObject({ stopReason: 'completed', epochs: 2, epochsRun: 2, resumes: 1 });
    expect(readResultsCsv(join(paths.run, 'results.csv')).rows.map((x) => x.epoch)).toEqual([0, 1]);
    expect((r2 as AdaptReport).exportSkipped).toBe('not asked (--no-export)');
  });

  it('stops at the time budget after a step, with last.kdw, and still evaluates; more time trains on', async () => {
    const out = join(root, 'job-budget');
    const steps: AdaptProgress[] = [];
    const r = await runAdapt(config({ out, epochs: 3, time_budget: 0.001, export: false, min_gain: -1 }), { ...quiet, onProgress: (p) => steps.push(p) });
    const report = r as AdaptReport;
    expect(report.training).toMatchObject({ stopReason: 'budget', epochs: 3, epochsRun: 0, adapted: jobPaths(out).last });
    expect(report.training.seconds).toBeGreaterThan(0.001);
    expect(steps.some((p) => p.stage === 'train')).toBe(false);
    expect(report.evaluation.holdout.adapted).toBeDefined();
    const ck = await readCheckpointMeta(jobPaths(out).last);
    expect([ck.meta.epoch, ck.meta.epochComplete]).toEqual([0, false]);
    // A later call does not train again: the budget ended the training.
    const later: AdaptProgress[] = [];
    const again = await runAdapt(config({ out, epochs: 3, time_budget: 0.001, export: false, min_gain: -1 }), { ...quiet, onProgress: (p) => later.push(p) });
    expect((again as AdaptReport).training.stopReason).toBe('budget');
    expect(later).toEqual([]);
    // Given more time (here: none), it trains on from its checkpoint to the last epoch.
    const more = await runAdapt(config({ out, epochs: 3, export: false, min_gain: -1 }), { ...quiet, onProgress: (p) => later.push(p) });
    expect((more as AdaptReport).training).toMatchObject({ stopReason: 'completed', epochsRun: 3, resumes: 1, adapted: jobPaths(out).best });
    expect(later.filter((p) => p.stage === 'train').map((p) => p.stage === 'train' && p.epoch)).toEqual([1, 2, 3]);
  });

  it('splits by frame content and seed: the same frames under other names and in another order split the same', async () => {
    const t = await OnnxTeacher.open(teacher);
    try {
      const label = async (dir: string, out: string, seed: number): Promise<Map<string, string>> => {
        const paths = jobPaths(out);
        const s = await labelFrames({
          paths, teacher: t, names: NAMES, minFrames: 10, batchSize: 8, workers: 0, logger: silentLogger,
          inputs: { frames: [dir], teacher, teacherSha256: '', weights: student, weightsSha256: '', imgsz: 64, pseudoConf: 0.5, holdout: 0.25, seed },
        });
        return new Map(s!.items.map((f) => [f.sha256, f.split]));
      };
      const other = join(root, 'capture-renamed');
      writeCapture(other, [...frames].reverse(), 42);
      const a = await label(capture, join(root, 'split-a'), 3);
      const b = await label(other, join(root, 'split-b'), 3);
      expect(a.size).toBe(16);
      expect([...b].sort()).toEqual([...a].sort());
      expect([...a.values()].filter((s) => s === 'holdout')).toHaveLength(4);
      const c = await label(capture, join(root, 'split-c'), 4);
      expect([...c].sort()).not.toEqual([...a].sort());
    } finally {
      await t.dispose();
    }
    // The rule itself: exact share, order-free, copies together.
    const keys = Array.from({ length: 50 }, (_, i) => `k${i}`);
    const held = holdoutSplit(keys, 0.2, 1);
    expect(held.filter(Boolean)).toHaveLength(10);
    expect(holdoutSplit([...keys].reverse(), 0.2, 1)).toEqual([...held].reverse());
    // 11 of 100 would split the sixth pair of copies: both go.
    const dup = holdoutSplit([...keys, ...keys], 0.11, 1);
    keys.forEach((_, i) => expect(dup[i]).toBe(dup[i + 50]));
    expect(dup.filter(Boolean)).toHaveLength(12);
  });

  it('links the frames before verifying them: frames the capture evicts during the verification are still used', async () => {
    const ring = join(root, 'capture-evicting');
    const written = writeCapture(ring, frames);
    const t = await OnnxTeacher.open(teacher);
    try {
      const log = memoryLogger();
      // The capture evicts every frame while the frames are verified (scanSplit's closing line is logged after
      // the last image is checked): the job must have its own links by then.
      const evicting = { ...log, info: (m: string) => { if (m.startsWith('frames: ') && m.includes(' skipped')) rmSync(ring, { recursive: true, force: true }); log.info(m); } };
      const s = await labelFrames({
        paths: jobPaths(join(root, 'job-evicting')), teacher: t, names: NAMES, minFrames: 10, batchSize: 8, workers: 0, logger: evicting,
        inputs: { frames: [ring], teacher, teacherSha256: '', weights: student, weightsSha256: '', imgsz: 64, pseudoConf: 0.5, holdout: 0.25, seed: 3 },
      });
      expect(readdirSync(root)).not.toContain('capture-evicting');
      expect(s!.frames).toMatchObject({ found: 16, used: 16, skipped: 0 });
      expect(s!.items.map((f) => f.source).sort()).toEqual([...written].sort());
    } finally {
      await t.dispose();
    }
  });

  it('refuses too few frames and an empty hold-out, naming the count and the folder', async () => {
    const few = join(root, 'few');
    writeCapture(few, frames.slice(0, 5));
    await expect(runAdapt(config({ frames: few, out: join(root, 'job-few') }), quiet)).rejects.toMatchObject({
      code: 'ADAPT_TOO_FEW_FRAMES', message: expect.stringMatching(new RegExp(`^5 usable frames, an adaptation needs at least 10 \\(5 image files found in ${few}, 0 skipped\\)`)),
    });
    await expect(runAdapt(config({ out: join(root, 'job-nohold'), holdout: 0.02 }), quiet)).rejects.toMatchObject({
      code: 'ADAPT_TOO_FEW_FRAMES', message: expect.stringContaining(`the hold-out is empty: 2 % of 16 frames rounds to none`),
    });
  });

  it('refuses a teacher of other classes, by count or by names, as DISTILL_INCOMPATIBLE', async () => {
    const three = writeTeacher(join(root, 'teacher-nc3.onnx'), { nc: 3 });
    await expect(runAdapt(config({ teacher: three, out: join(root, 'job-nc3') }), quiet)).rejects.toMatchObject({
      code: 'DISTILL_INCOMPATIBLE', message: expect.stringContaining('class count: teacher 3, student 2'),
    });
    const renamed = writeTeacher(join(root, 'teacher-names.onnx'), { names: ['person', 'car'] });
    await expect(runAdapt(config({ teacher: renamed, out: join(root, 'job-names') }), quiet)).rejects.toMatchObject({
      code: 'DISTILL_INCOMPATIBLE', message: expect.stringContaining('class names: teacher ["person","car"], student ["circle","square"]'),
    });
  });

  it('refuses missing files, a student that is not .kdw, and a job folder started with other inputs', async () => {
    const out = join(root, 'job-missing');
    await expect(runAdapt(config({ out, teacher: join(root, 'nope.onnx') }), quiet)).rejects.toMatchObject({ code: 'DISTILL_TEACHER_NOT_FOUND' });
    await expect(runAdapt(config({ out, weights: join(root, 'nope.kdw') }), quiet)).rejects.toMatchObject({ code: 'WEIGHTS_INVALID' });
    await expect(runAdapt(config({ out, weights: teacher }), quiet)).rejects.toMatchObject({ code: 'ADAPT_WEIGHTS_FORMAT' });
    await expect(runAdapt(config({ out, frames: join(root, 'no-capture') }), quiet)).rejects.toMatchObject({
      code: 'ADAPT_FRAMES_NOT_FOUND', message: `--frames: ${join(root, 'no-capture')} does not exist`,
    });
    await expect(runAdapt(config({ seed: 5 }), quiet)).rejects.toMatchObject({
      code: 'ADAPT_JOB_MISMATCH', message: expect.stringContaining('seed 5 (the job\'s: 0)'),
    });
  });

  it('accepts on a hold-out gain of at least min-gain and a val fall of at most max-loss; no weights is a rejection', () => {
    const f = (map: number) => ({ map50: map, map, precision: 0, recall: 0 });
    const fig = (h: [number, number], v?: [number, number]): AdaptFigures => ({
      imgsz: 64, holdout: { images: 3, instances: 5, serving: f(h[0]), adapted: f(h[1]) },
      ...(v ? { val: { data: 'v.yaml', images: 8, instances: 9, serving: f(v[0]), adapted: f(v[1]) } } : {}),
    });
    const rule = { minGain: 0.01, maxLoss: 0.02 };
    expect(decideAcceptance(fig([0.3, 0.31]), rule).accepted).toBe(true);
    // 0.21 − 0.2 is 0.00999999999999998 in float64: a gain equal to min-gain passes all the same.
    expect(decideAcceptance(fig([0.2, 0.21]), rule).accepted).toBe(true);
    expect(decideAcceptance(fig([0.3, 0.309]), rule).accepted).toBe(false);
    expect(decideAcceptance(fig([0.3, 0.4], [0.5, 0.48]), rule).accepted).toBe(true);
    const d = decideAcceptance(fig([0.3, 0.4], [0.5, 0.479]), rule);
    expect(d.accepted).toBe(false);
    expect(d.checks.map((c) => [c.name, c.passed])).toEqual([['holdout-gain', true], ['val-loss', false]]);
    expect(d.reasons[1]).toBe('val mAP50-95 0.500 → 0.479 (−0.021) falls more than max-loss 0.020');
    const none = decideAcceptance({ imgsz: 64, holdout: { images: 3, instances: 5, serving: f(0.3) } }, rule);
    expect(none).toMatchObject({ accepted: false, checks: [{ name: 'trained', passed: false }] });
  });
});
