// Labelled replay (issue 16): `kd-trainer package --replay-images` ships each replay image's ground-truth label file
// beside it (replay/images + replay/labels, manifest replay.labels, hashed and signed like every file), and
// `kd-trainer adapt --replay` trains on those labels instead of the teacher's for every replay image that has one;
// the teacher labels the rest, and labels.json counts both kinds apart.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, extname, join } from 'node:path';
import { generateKeyPair, nonMaxSuppression, verifyPackage, writeKeyPair, yoloDescription } from '@kd-edge/core';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AdaptResult } from '../src/adapt/adapt-report.js';
import { ADAPT_SCHEMA } from '../src/adapt/adapt-schema.js';
import { jobPaths } from '../src/adapt/job-files.js';
import type { LabelSummary } from '../src/adapt/label-frames.js';
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

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
const stem = (f: string): string => basename(f, extname(f));
const lines = (file: string): string[] => readFileSync(file, 'utf8').split('\n').filter(Boolean);

/** The teacher run by itself as `kd-trainer predict` runs an ONNX model (letterbox, NMS, clip, back to the image): YOLO lines. */
async function teacherLines(teacher: string, image: string, imgsz: number, conf: number, nc: number): Promise<string[]> {
  const img = await decodeImage(image);
  const p = await prepareImage(img, [imgsz, imgsz]);
  const session = await ort.InferenceSession.create(teacher);
  try {
    const out = await session.run({ images: new ort.Tensor('float32', nhwcToNchw(p.input, 1, p.height, p.width), [1, 3, p.height, p.width]) });
    const dets = nonMaxSuppression(out.output0!.data as Float32Array, nc, { confThres: conf, iouThres: 0.45 })
      .map((d) => ({ ...d, box: [Math.max(d.box[0], 0), Math.max(d.box[1], 0), Math.min(d.box[2], p.width), Math.min(d.box[3], p.height)] as [number, number, number, number] }))
      .filter((d) => d.box[2] - d.box[0] >= 2 && d.box[3] - d.box[1] >= 2);
    const orig: [number, number] = [img.height, img.width];
    return [...new Set(yoloLabelLines(scaleDetections(dets, p, orig), orig, false))];
  } finally {
    await session.release();
  }
}

/** Label lines as sorted rows, coordinates rounded to 1e-5 (the job's batched teacher and a lone one differ in the last float bits). */
const rows = (l: string[]): number[][] => l.map((x) => x.split(' ').map((v, i) => (i === 0 ? Number(v) : Math.round(Number(v) * 1e5) / 1e5)))
  .sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]! || a[2]! - b[2]! || a[3]! - b[3]!);

describe('kd-trainer package --replay-images: labelled replay', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kd-package-replay-labels-'));
  let yaml = '';
  let exportDir = '';
  const key = join(dir, 'fleet.key');

  beforeAll(async () => {
    await selectBackend('wasm', silentLogger);
    yaml = (await synthesizeDataset({ out: join(dir, 'data'), train: 6, val: 2, imgsz: 64, classes: 2, seed: 3 })).yaml;
    // One training image without a label file: the scan takes it as a background image, so does its replay copy.
    unlinkSync(join(dir, 'data', 'labels', 'train', `${stem(readdirSync(join(dir, 'data', 'images', 'train')).sort()[0]!)}.txt`));
    const model = createYoloModel({ ...yoloDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, 2), names: NAMES }, { seed: 1 });
    const weights = join(dir, 'best.kdw');
    await saveWeights(weights, model, { meta: { names: NAMES } });
    model.dispose();
    exportDir = join(dir, 'export');
    await runExport(resolveOptions(EXPORT_SCHEMA, [{ weights, out: exportDir, formats: 'onnx', imgsz: 64, bench_runs: 1, workers: 0 }]).config);
    await writeKeyPair(generateKeyPair(), { privateKeyPath: key, publicKeyPath: join(dir, 'fleet.pub') });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes each image\'s label file beside it in replay/labels, listed and signed; a changed label fails verification', async () => {
    const pkg = join(dir, 'pkg');
    const r = await runPackage({ from: exportDir, name: 'shapes', version: '1.0.0', sign: key, out: pkg, logger: silentLogger, valData: yaml, valImages: 1, replayImages: 50 });
    const trusted = { trustedKeys: [readFileSync(join(dir, 'fleet.pub'), 'utf8')] };
    const v = await verifyPackage(r.tar!, trusted);
    expect(v.manifest.replay).toEqual({ dir: 'replay/images', images: 6, labels: 'replay/labels' });
    const images = readdirSync(join(pkg, 'replay', 'images')).sort();
    expect(images).toHaveLength(6);
    expect(readdirSync(join(pkg, 'replay', 'labels')).sort()).toEqual(images.map((f) => `${stem(f)}.txt`));
    // Each label file is the dataset's own for that image (found by content), or empty where the dataset had none.
    const trainDir = join(dir, 'data', 'images', 'train');
    const byHash = new Map(readdirSync(trainDir).map((f) => [sha256(join(trainDir, f)), f]));
    let empty = 0;
    let boxes = 0;
    for (const f of images) {
      const source = byHash.get(sha256(join(pkg, 'replay', 'images', f)));
      expect(source).toBeDefined();
      const own = join(dir, 'data', 'labels', 'train', `${stem(source!)}.txt`);
      const shipped = readFileSync(join(pkg, 'replay', 'labels', `${stem(f)}.txt`), 'utf8');
      if (existsSync(own)) {
        expect(shipped).toBe(readFileSync(own, 'utf8'));
        boxes += lines(join(pkg, 'replay', 'labels', `${stem(f)}.txt`)).length;
      } else {
        expect(shipped).toBe('');
        empty++;
      }
      const listed = v.manifest.files.find((x) => x.path === `replay/labels/${stem(f)}.txt`);
      expect(listed?.sha256).toBe(sha256(join(pkg, 'replay', 'labels', `${stem(f)}.txt`)));
    }
    expect(empty).toBe(1);
    expect(boxes).toBeGreaterThan(0);
    expect(await verifyPackage(pkg, trusted)).toMatchObject({ manifest: { replay: { labels: 'replay/labels' } } });
    // Another class on one box, the same size: only the hash tells.
    const labelled = images.map((f) => join(pkg, 'replay', 'labels', `${stem(f)}.txt`)).find((f) => lines(f).length > 0)!;
    const text = readFileSync(labelled, 'utf8');
    writeFileSync(labelled, `${text[0] === '0' ? '1' : '0'}${text.slice(1)}`);
    await expect(verifyPackage(pkg, trusted)).rejects.toMatchObject({ code: 'PACKAGE_HASH_MISMATCH' });
  });
});

describe('kd-trainer adapt --replay with label files', () => {
  const root = mkdtempSync(join(tmpdir(), 'kd-adapt-replay-labels-'));
  const capture = join(root, 'capture');
  const names = ['shape0', 'shape1', 'shape2'];
  const replayImages = join(root, 'data-a', 'images', 'train');
  const replayLabels = join(root, 'data-a', 'labels', 'train');
  let teacher = '';
  let student = '';
  let files: string[] = [];
  // What the first three replay images' label files say; the other three have none.
  const TRUTH = '2 0.3 0.7 0.05 0.1\n';
  const MIXED = '0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.1 0.1\n1 1.5 0.5 0.1 0.1\n';

  beforeAll(async () => {
    await selectBackend('wasm', silentLogger);
    writeCapture(capture, await synthFrames(root, 12, 3));
    // Domain A with its labels, as kd-agent lays out a package's replay: images/ and labels/ siblings.
    await synthesizeDataset({ out: join(root, 'data-a'), train: 6, val: 1, imgsz: 64, classes: 3, seed: 11, difficulty: 'easy' });
    files = readdirSync(replayImages).sort();
    writeFileSync(join(replayLabels, `${stem(files[0]!)}.txt`), TRUTH);
    // Rows the dataset scan drops: class 7 is out of range (nc 3), 1.5 is off the image.
    writeFileSync(join(replayLabels, `${stem(files[1]!)}.txt`), MIXED);
    writeFileSync(join(replayLabels, `${stem(files[2]!)}.txt`), '');
    for (const f of files.slice(3)) unlinkSync(join(replayLabels, `${stem(f)}.txt`));
    teacher = writeTeacher(join(root, 'teacher.onnx'), { nc: 3 });
    student = await writeStudent(join(root, 'student.kdw'), { names });
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const config = (over: Record<string, unknown>) => resolveOptions(ADAPT_SCHEMA, [{
    frames: capture, teacher, weights: student, out: join(root, 'job'), imgsz: 64, batch_size: 8, epochs: 1, backend: 'wasm', threads: 1, workers: 0,
    replay: replayImages, ...over,
  }]).config;
  const quiet = { progress: { write: () => true } };
  /** Labels, then stops before training (the signal is aborted once the last image is labelled). */
  const labelOnly = async (cfg: ReturnType<typeof config>): Promise<AdaptResult> => {
    const ac = new AbortController();
    return runAdapt(cfg, { ...quiet, signal: ac.signal, onProgress: (p) => { if (p.stage === 'label' && p.done === p.total) ac.abort(); } });
  };

  it('keeps the ground truth of replay images with a label file, has the teacher label the others, and counts both apart', async () => {
    const out = join(root, 'job');
    expect(await labelOnly(config({ out }))).toMatchObject({ status: 'cancelled', stage: 'train' });
    const paths = jobPaths(out);
    const s = JSON.parse(readFileSync(paths.labels, 'utf8')) as LabelSummary;
    const label = (image: string): string => join(paths.data, 'labels', 'train', `replay-${stem(image)}.txt`);
    // Class 2 at a box the teacher never finds: the job trains on exactly that line.
    expect(readFileSync(label(files[0]!), 'utf8')).toBe(TRUTH);
    // The rows the scan accepts, and nothing of the teacher's; an empty file stays a background image.
    expect(readFileSync(label(files[1]!), 'utf8')).toBe('0 0.5 0.5 0.2 0.2\n');
    expect(readFileSync(label(files[2]!), 'utf8')).toBe('');
    // The others are the teacher's own detections over pseudo-conf, as for the frames.
    let teacherBoxes = 0;
    for (const f of files.slice(3)) {
      const got = lines(label(f));
      expect(rows(got)).toEqual(rows(await teacherLines(teacher, join(replayImages, f), 64, 0.5, 3)));
      teacherBoxes += got.length;
    }
    expect(teacherBoxes).toBeGreaterThan(0);
    const replayed = s.items.filter((i) => i.split === 'replay');
    expect(replayed.filter((i) => i.groundTruth === true).map((i) => i.name).sort()).toEqual(files.slice(0, 3).map((f) => `replay-${f}`).sort());
    expect(s.replay).toMatchObject({
      used: 6, labelled: 3, labelBoxes: 2, boxes: teacherBoxes,
      backgrounds: replayed.filter((i) => i.groundTruth !== true && i.boxes === 0).length,
    });
    for (const r of replayed) expect(r.boxes).toBe(lines(join(paths.data, 'labels', 'train', `${stem(r.name)}.txt`)).length);
    // The frames' box counts leave every replay image out.
    expect(s.boxes.total).toBe(s.items.filter((i) => i.split !== 'replay').reduce((n, i) => n + i.boxes, 0));

    // The same inputs go on with the job (here: to training, which the aborted signal stops at once).
    const ac = new AbortController();
    ac.abort();
    expect(await runAdapt(config({ out }), { ...quiet, signal: ac.signal })).toMatchObject({ status: 'cancelled', stage: 'train' });
  });

  it('a flat folder of images without labels is labelled by the teacher throughout, as before', async () => {
    const flat = join(root, 'flat');
    mkdirSync(flat);
    for (const f of files) copyFileSync(join(replayImages, f), join(flat, f));
    const out = join(root, 'job-flat');
    await labelOnly(config({ out, replay: flat }));
    const s = JSON.parse(readFileSync(jobPaths(out).labels, 'utf8')) as LabelSummary;
    expect(s.replay).toMatchObject({ used: 6, labelled: 0, labelBoxes: 0 });
    const first = join(jobPaths(out).data, 'labels', 'train', `replay-${stem(files[0]!)}.txt`);
    expect(rows(lines(first))).toEqual(rows(await teacherLines(teacher, join(flat, files[0]!), 64, 0.5, 3)));
  });
});
