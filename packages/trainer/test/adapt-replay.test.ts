import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, extname, join } from 'node:path';
import { createHash } from 'node:crypto';
import { loadPublicKey, nonMaxSuppression, parseManifest, verifyPackage, yoloDescription } from '@kd-edge/core';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AdaptResult } from '../src/adapt/adapt-report.js';
import { ADAPT_SCHEMA } from '../src/adapt/adapt-schema.js';
import { jobPaths } from '../src/adapt/job-files.js';
import type { LabelSummary } from '../src/adapt/label-frames.js';
import { replayChoice } from '../src/adapt/replay-images.js';
import { runAdapt } from '../src/adapt/run-adapt.js';
import { selectBackend } from '../src/backend/select.js';
import { resolveOptions } from '../src/config.js';
import { decodeImage } from '../src/data/image.js';
import { synthesizeDataset } from '../src/data/synth.js';
import { EXPORT_SCHEMA } from '../src/export/export-schema.js';
import { runExport } from '../src/export/run-export.js';
import { runPackage } from '../src/export/run-package.js';
import { saveWeights } from '../src/model/weights-io.js';
import { createYoloModel } from '../src/model/yolo.js';
import { yoloLabelLines } from '../src/predict/labels.js';
import { prepareImage, scaleDetections } from '../src/predict/preprocess.js';
import { silentLogger } from '../src/util/logger.js';
import { nhwcToNchw } from '../src/val/onnx-predictor.js';
import { NAMES, synthFrames, writeCapture, writeStudent, writeTeacher } from './adapt-fixtures.js';
import { runCli } from './cli-runner.js';

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
const stem = (f: string): string => basename(f, extname(f));

/** The teacher run by itself as `kd-trainer predict` runs an ONNX model (letterbox, NMS, clip, back to the image): YOLO lines. */
async function teacherLines(teacher: string, image: string, imgsz: number, conf: number): Promise<string[]> {
  const img = await decodeImage(image);
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

describe('kd-trainer adapt --replay', () => {
  const root = mkdtempSync(join(tmpdir(), 'kd-adapt-replay-'));
  const capture = join(root, 'capture');
  const replayDir = join(root, 'replay-a');
  let teacher = '';
  let student = '';

  beforeAll(async () => {
    await selectBackend('wasm', silentLogger);
    writeCapture(capture, await synthFrames(root, 12, 3));
    // Domain A images (the original domain), 10 of them, as a package's replay/ folder would hold.
    await synthesizeDataset({ out: join(root, 'data-a'), train: 10, val: 1, imgsz: 64, classes: 2, seed: 11, difficulty: 'easy' });
    mkdirSync(replayDir);
    const aTrain = join(root, 'data-a', 'images', 'train');
    for (const f of readdirSync(aTrain)) copyFileSync(join(aTrain, f), join(replayDir, f));
    // A byte-identical copy of a captured frame among them: it must not be trained on, the frame may be held out.
    copyFileSync(join(capture, readdirSync(capture).filter((f) => f.endsWith('.jpg')).sort()[0]!), join(replayDir, 'copy-of-frame.jpg'));
    teacher = writeTeacher(join(root, 'teacher.onnx'));
    student = await writeStudent(join(root, 'student.kdw'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const config = (over: Record<string, unknown>) => resolveOptions(ADAPT_SCHEMA, [{
    frames: capture, teacher, weights: student, out: join(root, 'job'), imgsz: 64, batch_size: 8, epochs: 1, backend: 'wasm', threads: 1, workers: 0,
    replay: replayDir, replay_max: 6, ...over,
  }]).config;
  const quiet = { progress: { write: () => true } };
  /** Labels, then stops before training (the signal is aborted once the last frame is labelled). */
  const labelOnly = async (cfg: ReturnType<typeof config>): Promise<AdaptResult> => {
    const ac = new AbortController();
    return runAdapt(cfg, { ...quiet, signal: ac.signal, onProgress: (p) => { if (p.stage === 'label' && p.done === p.total) ac.abort(); } });
  };
  const summary = (out: string): LabelSummary => JSON.parse(readFileSync(jobPaths(out).labels, 'utf8')) as LabelSummary;

  it('labels the replay images with the teacher like the frames and puts them in train only, never in the hold-out', async () => {
    const out = join(root, 'job');
    expect(await labelOnly(config({ out }))).toMatchObject({ status: 'cancelled', stage: 'train' });
    const s = summary(out);
    const paths = jobPaths(out);
    expect(s.inputs).toMatchObject({ replay: [replayDir], replayMax: 6 });
    // 11 files: the 10 of domain A and the copy of a frame, which is left out as a duplicate.
    expect(s.replay).toMatchObject({ sources: [replayDir], max: 6, found: 11, skipped: 0, duplicates: 1, used: 6 });
    expect(s.frames.used).toBe(12);
    expect(s.split).toEqual({ adapt: 10, holdout: 2 });
    const replayed = s.items.filter((i) => i.split === 'replay');
    expect(replayed).toHaveLength(6);
    expect(replayed.every((i) => i.name.startsWith('replay-') && i.source.startsWith(replayDir) && !i.source.endsWith('copy-of-frame.jpg'))).toBe(true);
    const train = readdirSync(join(paths.data, 'images', 'train'));
    const held = readdirSync(join(paths.data, 'images', 'val'));
    expect(train.filter((f) => f.startsWith('replay-')).sort()).toEqual(replayed.map((i) => i.name).sort());
    expect(held.filter((f) => f.startsWith('replay-'))).toEqual([]);
    expect(held).toHaveLength(2);
    // No replay image is byte-identical to a hold-out frame, and nothing of train is in the hold-out.
    const heldHashes = new Set(held.map((f) => sha256(join(paths.data, 'images', 'val', f))));
    for (const f of train) expect(heldHashes.has(sha256(join(paths.data, 'images', 'train', f)))).toBe(false);
    // Each replay image's label file is the teacher's own detections over pseudo-conf (the frames' code).
    let boxes = 0;
    for (const r of replayed) {
      const lines = readFileSync(join(paths.data, 'labels', 'train', `${stem(r.name)}.txt`), 'utf8').split('\n').filter(Boolean);
      expect(rows(lines)).toEqual(rows(await teacherLines(teacher, r.source, 64, 0.5)));
      expect(r.boxes).toBe(lines.length);
      expect(r.sha256).toBe(sha256(r.source));
      boxes += lines.length;
    }
    expect(boxes).toBeGreaterThan(0);
    expect(s.replay!.boxes).toBe(boxes);
    // The frames' box counts leave the replay images out.
    expect(s.boxes.total).toBe(s.items.filter((i) => i.split !== 'replay').reduce((n, i) => n + i.boxes, 0));
  });

  it('--replay-max picks by content and seed: the same images under other names, listed in another order, give the same picks', async () => {
    // A .txt list of renamed copies in reverse order.
    const renamed = join(root, 'renamed');
    mkdirSync(renamed);
    const files = readdirSync(replayDir).sort().reverse();
    const list = files.map((f, i) => {
      const to = join(renamed, `r${String(i).padStart(2, '0')}${extname(f)}`);
      copyFileSync(join(replayDir, f), to);
      return to;
    });
    writeFileSync(join(root, 'replay.txt'), `${list.join('\n')}\n`);
    const out = join(root, 'job-list');
    await labelOnly(config({ out, replay: join(root, 'replay.txt') }));
    const picked = (o: string) => summary(o).items.filter((i) => i.split === 'replay').map((i) => i.sha256).sort();
    expect(picked(out)).toEqual(picked(join(root, 'job')));
    // Another seed picks others (and splits the frames otherwise).
    const seeded = join(root, 'job-seed');
    await labelOnly(config({ out: seeded, seed: 4 }));
    expect(picked(seeded)).not.toEqual(picked(out));

    const hashes = Array.from({ length: 20 }, (_, i) => createHash('sha256').update(`img${i}`).digest('hex'));
    const pick = replayChoice(hashes, 5, 0);
    expect(pick.filter(Boolean)).toHaveLength(5);
    expect(replayChoice([...hashes].reverse(), 5, 0)).toEqual([...pick].reverse());
    expect(replayChoice(hashes, 0, 0).every(Boolean)).toBe(true);
    expect(replayChoice(hashes, 50, 0).every(Boolean)).toBe(true);
    // Copies of one image: at most one is taken.
    expect(replayChoice([hashes[0]!, hashes[0]!, hashes[1]!], 0, 0).filter(Boolean)).toHaveLength(2);
  });

  it('a job folder called with other replay inputs is ADAPT_JOB_MISMATCH; a job from before replay goes on without', async () => {
    const out = join(root, 'job');
    await expect(runAdapt(config({ out, replay_max: 4 }), quiet)).rejects.toMatchObject({
      code: 'ADAPT_JOB_MISMATCH', message: expect.stringContaining("replayMax 4 (the job's: 6)"),
    });
    await expect(runAdapt(config({ out, replay: join(root, 'replay.txt') }), quiet)).rejects.toMatchObject({
      code: 'ADAPT_JOB_MISMATCH', message: expect.stringContaining(`replay ${join(root, 'replay.txt')} (the job's: ${replayDir})`),
    });
    await expect(runAdapt(config({ out, replay: '' }), quiet)).rejects.toMatchObject({
      code: 'ADAPT_JOB_MISMATCH', message: expect.stringContaining(`replay none (the job's: ${replayDir})`),
    });
    // The same inputs go on (here: to training, which the aborted signal stops at once).
    const ac = new AbortController();
    ac.abort();
    expect(await runAdapt(config({ out }), { ...quiet, signal: ac.signal })).toMatchObject({ status: 'cancelled', stage: 'train' });

    // labels.json of a job labelled before replay existed has no replay inputs: a call without --replay goes on.
    const old = join(root, 'job-old');
    await labelOnly(config({ out: old, replay: '' }));
    const s = summary(old) as unknown as { inputs: Record<string, unknown>; replay?: unknown };
    delete s.inputs.replay;
    delete s.inputs.replayMax;
    delete s.replay;
    writeFileSync(jobPaths(old).labels, JSON.stringify(s));
    expect(await runAdapt(config({ out: old, replay: '', replay_max: 9 }), { ...quiet, signal: ac.signal })).toMatchObject({ status: 'cancelled', stage: 'train' });
    await expect(runAdapt(config({ out: old }), quiet)).rejects.toMatchObject({ code: 'ADAPT_JOB_MISMATCH' });
  });

  it('refuses a bad replay path, a folder without usable images and a data YAML with ADAPT_REPLAY_NOT_FOUND naming it', async () => {
    const out = join(root, 'job-bad');
    await expect(runAdapt(config({ out, replay: `${replayDir},${join(root, 'nope')}` }), quiet)).rejects.toMatchObject({
      code: 'ADAPT_REPLAY_NOT_FOUND', message: expect.stringContaining(`--replay: ${join(root, 'nope')} does not exist`),
    });
    expect(existsSync(jobPaths(out).labels)).toBe(false);
    const empty = join(root, 'empty');
    mkdirSync(empty);
    writeFileSync(join(empty, 'notes.txt.json'), '{}');
    writeFileSync(join(empty, 'broken.jpg'), Buffer.alloc(300, 9));
    await expect(runAdapt(config({ out, replay: empty }), quiet)).rejects.toMatchObject({
      code: 'ADAPT_REPLAY_NOT_FOUND', message: expect.stringContaining(`no usable image in ${empty} (1 image files found, 1 skipped)`),
    });
    writeFileSync(join(root, 'data.yaml'), 'train: images\nval: images\nnames: [circle, square]\n');
    await expect(runAdapt(config({ out, replay: join(root, 'data.yaml') }), quiet)).rejects.toMatchObject({
      code: 'ADAPT_REPLAY_NOT_FOUND', message: expect.stringContaining('is a YAML file'),
    });
  });

  it('the CLI reads replay from a --cfg YAML: a bad path there exits 2 with one line naming it', async () => {
    const cfgFile = join(root, 'job.yaml');
    writeFileSync(cfgFile, `replay: ${join(root, 'nope-cfg')}\nreplay_max: 3\n`);
    const r = await runCli(['adapt', '--cfg', cfgFile, '--frames', capture, '--teacher', teacher, '--weights', student, '--out', join(root, 'job-cli'), '--imgsz', '64']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`kd-trainer: --replay: ${join(root, 'nope-cfg')} does not exist (give a folder of images of the original domain, a .txt list of image paths, or several joined by commas) [ADAPT_REPLAY_NOT_FOUND]`);
  });
});

describe('kd-trainer package --replay-images', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kd-package-replay-'));
  let yaml = '';
  let exportDir = '';

  beforeAll(async () => {
    await selectBackend('wasm', silentLogger);
    yaml = (await synthesizeDataset({ out: join(dir, 'data'), train: 12, val: 4, imgsz: 64, classes: 2, seed: 3 })).yaml;
    const model = createYoloModel({ ...yoloDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, 2), names: NAMES }, { seed: 1 });
    const weights = join(dir, 'best.kdw');
    await saveWeights(weights, model, { meta: { names: NAMES } });
    model.dispose();
    exportDir = join(dir, 'export');
    await runExport(resolveOptions(EXPORT_SCHEMA, [{ weights, out: exportDir, formats: 'onnx', imgsz: 64, bench_runs: 1, workers: 0 }]).config);
    const keys = await runCli(['keys', 'gen', '--out', dir, '--name', 'fleet']);
    expect(keys.code, keys.stderr).toBe(0);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('copies a seeded sample of the train split into replay/images, hashed and listed; the manifest says so and verify accepts it', async () => {
    const pkg = join(dir, 'pkg');
    const p = await runCli(['package', '--from', exportDir, '--name', 'shapes', '--version', '1.0.0', '--sign', join(dir, 'fleet.key'), '--out', pkg,
      '--val-data', yaml, '--val-images', '2', '--replay-images', '5']);
    expect(p.code, p.stderr).toBe(0);
    const v = await verifyPackage(`${pkg}.tar`, { trustedKeys: [await loadPublicKey(join(dir, 'fleet.pub'))] });
    expect(v.manifest.replay).toEqual({ dir: 'replay/images', images: 5, labels: 'replay/labels' });
    const listed = v.manifest.files.filter((f) => f.path.startsWith('replay/images/'));
    expect(listed.map((f) => f.path)).toEqual(['replay/images/0000.jpg', 'replay/images/0001.jpg', 'replay/images/0002.jpg', 'replay/images/0003.jpg', 'replay/images/0004.jpg']);
    for (const f of listed) expect(f.sha256).toBe(sha256(join(pkg, f.path)));
    // Images of the train split (their labels beside them: adapt-replay-labels.test.ts), none of them one of val/'s.
    const train = new Set(readdirSync(join(dir, 'data', 'images', 'train')).map((f) => sha256(join(dir, 'data', 'images', 'train', f))));
    const val = new Set(readdirSync(join(pkg, 'val', 'images')).map((f) => sha256(join(pkg, 'val', 'images', f))));
    for (const f of listed) {
      expect(train.has(f.sha256)).toBe(true);
      expect(val.has(f.sha256)).toBe(false);
    }
    expect(readdirSync(join(pkg, 'replay', 'images'))).toHaveLength(5);

    // The same data and seed give the same sample; another seed another one.
    const base = { from: exportDir, name: 'shapes', version: '1.0.1', sign: join(dir, 'fleet.key'), tar: false, logger: silentLogger, valData: yaml, valImages: 2 };
    const again = await runPackage({ ...base, out: join(dir, 'again'), replayImages: 5 });
    const hashes = (m: typeof again.manifest) => m.files.filter((f) => f.path.startsWith('replay/images/')).map((f) => f.sha256);
    expect(hashes(again.manifest)).toEqual(listed.map((f) => f.sha256));
    const other = await runPackage({ ...base, out: join(dir, 'other'), replayImages: 5, replaySeed: 7 });
    expect(hashes(other.manifest)).not.toEqual(listed.map((f) => f.sha256));
    // More than the split holds: all of it; from val, without val/'s own images.
    const all = await runPackage({ ...base, out: join(dir, 'all'), replayImages: 50 });
    expect(all.manifest.replay).toEqual({ dir: 'replay/images', images: 12, labels: 'replay/labels' });
    const fromVal = await runPackage({ ...base, out: join(dir, 'from-val'), replayImages: 50, replayFrom: 'val' });
    expect(fromVal.manifest.replay).toEqual({ dir: 'replay/images', images: 2, labels: 'replay/labels' });
    const plain = await runPackage({ ...base, out: join(dir, 'plain') });
    expect('replay' in plain.manifest).toBe(false);
    expect(existsSync(join(dir, 'plain', 'replay'))).toBe(false);
  });

  it('refuses replay without a dataset, for a teacher, and a manifest whose replay count is not what is listed', async () => {
    const base = { from: exportDir, name: 'shapes', version: '1.0.2', sign: join(dir, 'fleet.key'), tar: false, logger: silentLogger };
    await expect(runPackage({ ...base, out: join(dir, 'p-nodata'), replayImages: 3 })).rejects.toMatchObject({
      code: 'EXPORT_INVALID', message: expect.stringContaining('--replay-images: give the dataset YAML'),
    });
    await expect(runPackage({ ...base, out: join(dir, 'p-teacher'), replayImages: 3, valData: yaml, role: 'teacher' })).rejects.toMatchObject({ code: 'EXPORT_INVALID' });
    expect(existsSync(join(dir, 'p-nodata')) || existsSync(join(dir, 'p-teacher'))).toBe(false);

    // A manifest whose replay count is not what it lists, or whose folder lists nothing, is refused naming the field.
    const ok = await runPackage({ ...base, out: join(dir, 'p-edit'), replayImages: 3, valData: yaml });
    const { signature: _sig, ...unsigned } = ok.manifest;
    expect(parseManifest(unsigned).replay).toEqual({ dir: 'replay/images', images: 3, labels: 'replay/labels' });
    expect(() => parseManifest({ ...unsigned, replay: { dir: 'replay/images', images: 4 } })).toThrow(/invalid manifest field replay\.images: 4 \(allowed: 3, the number of files listed under replay\/images\/\)/);
    expect(() => parseManifest({ ...unsigned, replay: { dir: 'val/labels2', images: 1 } })).toThrow(/replay\.dir/);
    expect(() => parseManifest({ ...unsigned, replay: { dir: '../x', images: 1 } })).toThrow(expect.objectContaining({ code: 'PACKAGE_PATH_ESCAPE' }));
    // A manifest without replay (every one before it) still parses, and the field is optional.
    const { replay: _r, ...noReplay } = unsigned;
    expect('replay' in parseManifest(noReplay)).toBe(false);
  });
});
