import { classifierDescription, encodeModel, exportOnnx, inspectModel, readOnnxFile } from '@kd-edge/core';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../src/tf.js';
import { selectBackend } from '../src/backend/select.js';
import { modelWeights } from '../src/export/model-weights.js';
import { createClassifier } from '../src/model/classifier.js';
import type { DetectionModel } from '../src/model/types.js';
import { silentLogger } from '../src/util/logger.js';
import { OnnxTeacher } from '../src/distill/teacher/onnx-teacher.js';
import { LOGIT_LIMIT } from '../src/distill/teacher/head-logits.js';
import type { TeacherOutput } from '../src/distill/types.js';
import {
  maxAbs, perturbBatchNorm, pictures, SATURATE, saturateLevel0Anchor0, tfjsLevels, tinyDetector, uniform, worstViolation, writeExport,
} from './model-fixtures.js';

/*
 * Tolerances.
 * - Forward pass (raw export vs TensorFlow.js): both run float32 convolutions with BatchNorm folded
 *   (ONNX) or not (tfjs) and sum in different orders; differences are ~1e-7 of the largest logit here.
 *   We allow 1e-5·max|z| per level.
 * - Decode inversion (decoded vs raw export, same ONNX Runtime forward): the decode is done in float32,
 *   so the recovered σ carries an absolute error δ of a few ulps of 1 from the Sigmoid (we allow
 *   4·2⁻²⁴), plus for x/y half an ulp of the grid sum 2σ + cell − 0.5 (≤ 2⁻²⁵·(G + 1.5), G the
 *   grid's larger side); the logit amplifies δ by dz/dσ = 1/(σ(1−σ)). So |Δz| ≤ δ/(σ(1−σ)), which is
 *   ~1e-6 at σ = ½ and grows as σ saturates. The expectation is the reference logit clamped to
 *   ±LOGIT_LIMIT (13.8155); channels pushed to ±25 must come back exactly ±LOGIT_LIMIT.
 */
const FORWARD_REL = 1e-5;
const SIGMOID_ULPS = 4 * 2 ** -24;

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));
const clampLogit = (z: number): number => Math.max(-LOGIT_LIMIT, Math.min(LOGIT_LIMIT, z));

/** Per-element bound of the decoded-vs-reference comparison for one level. */
function decodeTolerance(ref: Float32Array, ny: number, nx: number, no: number, extra: number): (i: number) => number {
  const gridDelta = 2 ** -25 * (Math.max(ny, nx) + 1.5);
  return (i) => {
    const s = sigmoid(clampLogit(ref[i]!));
    const k = i % no;
    const delta = SIGMOID_ULPS + (k < 2 ? gridDelta : 0);
    return extra + delta / (s * (1 - s));
  };
}

let dir: string;
let model: DetectionModel;
const [N, H, W] = [5, 64, 96];
let images: Float32Array;
let ref: Float32Array[];
const files: Record<string, string> = {};

beforeAll(async () => {
  await selectBackend('cpu', silentLogger);
  dir = mkdtempSync(join(tmpdir(), 'kd-teacher-onnx-'));
  model = tinyDetector(3);
  saturateLevel0Anchor0(model);
  files.decB2 = writeExport(model, dir, 'dec-b2.onnx', { imgsz: [H, W], batch: 2 });
  files.rawB2 = writeExport(model, dir, 'raw-b2.onnx', { imgsz: [H, W], batch: 2, raw: true });
  files.decDyn = writeExport(model, dir, 'dec-dyn.onnx', { imgsz: [H, W], dynamic: true });
  images = pictures(N, H, W);
  ref = tfjsLevels(model, images, N, H, W);
});

afterAll(() => {
  model.dispose();
  rmSync(dir, { recursive: true, force: true });
});

async function run(file: string, n = N, imgs = images, opts = {}): Promise<{ teacher: OnnxTeacher; out: TeacherOutput }> {
  const teacher = await OnnxTeacher.open(file, opts);
  const out = await teacher.predict(imgs, n, H, W);
  await teacher.dispose();
  return { teacher, out };
}

describe('OnnxTeacher on detectors', () => {
  it('raw export: transposed heads equal the TensorFlow.js logits (NHWC, static batch 2 run as 2+2+1)', async () => {
    const { out } = await run(files.rawB2!);
    expect(out.levels!.map((l) => [l.ny, l.nx])).toEqual([[8, 12], [4, 6], [2, 3]]);
    out.levels!.forEach((lv, l) => {
      expect(lv.data.length).toBe(ref[l]!.length);
      const tol = FORWARD_REL * maxAbs(ref[l]!);
      expect(worstViolation(lv.data, ref[l]!, () => tol)).toBeUndefined();
    });
  });

  it('decoded export: inverting the decode gives the raw logits within the float32 decode bound', async () => {
    const raw = (await run(files.rawB2!)).out;
    const { out } = await run(files.decB2!);
    const no = model.nc + 5;
    out.levels!.forEach((lv, l) => {
      const want = raw.levels![l]!.data;
      const expected = want.map(clampLogit);
      expect(worstViolation(lv.data, expected, decodeTolerance(want, lv.ny, lv.nx, no, 0))).toBeUndefined();
    });
  });

  it('decoded export: recovered logits equal the TensorFlow.js logits (forward + decode bounds), saturated ones clamp to ±13.8155', async () => {
    const { out } = await run(files.decB2!);
    const no = model.nc + 5;
    out.levels!.forEach((lv, l) => {
      const z = ref[l]!;
      const tol = decodeTolerance(z, lv.ny, lv.nx, no, FORWARD_REL * maxAbs(z));
      expect(worstViolation(lv.data, z.map(clampLogit), tol)).toBeUndefined();
    });
    // Level 0, anchor 0: x and class 0 pushed to −25, w and objectness to +25 (past float32's sigmoid).
    const l0 = out.levels![0]!;
    const limit = Math.fround(LOGIT_LIMIT);
    let checked = 0;
    for (let cell = 0; cell < N * l0.ny * l0.nx; cell++) {
      const base = cell * model.na * no;
      for (const [k, sign] of [[0, -1], [5, -1], [2, 1], [4, 1]] as const) {
        expect(Math.abs(ref[0]![base + k]!)).toBeGreaterThan(SATURATE - 10);
        expect(l0.data[base + k]).toBe(sign * limit);
        checked++;
      }
    }
    expect(checked).toBe(N * 8 * 12 * 4);
  });

  it('static batch: chunks with a padded last one equal one dynamic-batch run, and padding does not leak', async () => {
    const chunked = (await run(files.decB2!)).out;
    const whole = (await run(files.decDyn!)).out;
    chunked.levels!.forEach((lv, l) => {
      const tol = 1e-6 * maxAbs(whole.levels![l]!.data);
      expect(worstViolation(lv.data, whole.levels![l]!.data, () => tol)).toBeUndefined();
    });
    // Image 4 is run as [img4, zeros] both alone and as the last chunk of five.
    const per = H * W * 3;
    const alone = (await run(files.decB2!, 1, images.slice(4 * per))).out;
    alone.levels!.forEach((lv, l) => {
      const size = lv.data.length;
      expect(lv.data).toEqual(chunked.levels![l]!.data.subarray(4 * size, 5 * size));
    });
  });

  it('reports its geometry, metadata, parameter count and file hash', async () => {
    const teacher = await OnnxTeacher.open(files.decB2!);
    try {
      expect(teacher.kind).toBe('onnx');
      expect(teacher.task).toBe('detect');
      expect(teacher.nc).toBe(2);
      expect(teacher.outputLayout).toBe('yolov5-decoded');
      expect(teacher.head).toEqual({ nc: 2, strides: [8, 16, 32], anchors: model.anchors });
      expect(teacher.anchorSource).toBe('metadata');
      expect(teacher.imgsz).toEqual([H, W]);
      expect(teacher.batch).toBe(2);
      expect(teacher.paramCount).toBe(inspectModel(await readOnnxFile(files.decB2!)).floatParameterCount);
      expect(teacher.paramCount).toBeGreaterThan(1000);
      expect(teacher.fileHash).toBe(createHash('sha256').update(readFileSync(files.decB2!)).digest('hex'));
      const out = await teacher.predict(images.slice(0, 2 * H * W * 3), 2, H, W);
      expect(Number.isFinite(out.ms) && out.ms >= 0).toBe(true);
      expect(out.features).toBeUndefined();
      expect(out.logits).toBeUndefined();
    } finally {
      await teacher.dispose();
    }
  });

  it('feature maps come back NCHW, concatenated over chunks, and reproduce the P3 head', async () => {
    const names = ['/model.17/cv3/act/Mul_output_0', '/model.20/cv3/act/Mul_output_0', '/model.23/cv3/act/Mul_output_0'];
    const n = 3;
    const { out } = await run(files.decB2!, n, images.slice(0, n * H * W * 3), { features: names });
    const c1 = [...model.params.get('model.24.m.0.weight')!.shape][2]!;
    expect([...out.features!.keys()]).toEqual(names);
    expect(out.features!.get(names[0]!)!.shape).toEqual([n, c1, H / 8, W / 8]);
    expect(out.features!.get(names[1]!)!.shape).toEqual([n, model.params.get('model.24.m.1.weight')!.shape[2], H / 16, W / 16]);
    expect(out.features!.get(names[2]!)!.shape).toEqual([n, model.params.get('model.24.m.2.weight')!.shape[2], H / 32, W / 32]);
    // The P3 head is a 1×1 conv of model.17's output: applying it to the returned feature map must
    // give the tfjs level-0 logits, which checks values, layout and chunk order.
    const f = out.features!.get(names[0]!)!;
    const x = tf.tidy(() => tf.tensor4d(f.data, f.shape).transpose([0, 2, 3, 1]));
    const logits = tf.tidy(() => tf.conv2d(x as tf.Tensor4D, model.params.get('model.24.m.0.weight') as tf.Tensor4D, 1, 'valid')
      .add(model.params.get('model.24.m.0.bias')!));
    const got = logits.dataSync() as Float32Array;
    tf.dispose([x, logits]);
    const want = ref[0]!.subarray(0, got.length);
    const tol = FORWARD_REL * maxAbs(want);
    expect(worstViolation(got, want, () => tol)).toBeUndefined();
    // Asking for features does not change the head outputs.
    const plain = (await run(files.decB2!, n, images.slice(0, n * H * W * 3))).out;
    out.levels!.forEach((lv, l) => expect(lv.data).toEqual(plain.levels![l]!.data));
  });

  it('rejects unknown feature names, naming them and nearby tensors', async () => {
    const err = await OnnxTeacher.open(files.decB2!, { features: ['/model.17/cv3/act/Mul_output_9'] }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DISTILL_FEATURE_UNKNOWN' });
    expect((err as Error).message).toContain("'/model.17/cv3/act/Mul_output_9'");
    expect((err as Error).message).toContain('/model.17/');
  });

  it('rejects images of another size than a static teacher takes, and a wrong value count', async () => {
    const teacher = await OnnxTeacher.open(files.decB2!);
    try {
      await expect(teacher.predict(new Float32Array(64 * 64 * 3), 1, 64, 64)).rejects.toMatchObject({ code: 'DISTILL_INPUT_MISMATCH' });
      await expect(teacher.predict(new Float32Array(64 * 64 * 3), 1, H, W)).rejects.toThrow(RangeError);
    } finally {
      await teacher.dispose();
    }
  });

  it('an ultralytics-style export (only stride and names metadata) gets its anchors from the graph', async () => {
    const anchors = [[11.5, 14, 17, 29, 31, 25], [33, 58, 60, 47, 61, 115], [120, 88, 150, 190, 360, 330]];
    const m = tinyDetector(7, anchors);
    try {
      const file = writeExport(m, dir, 'ultralytics-like.onnx', { imgsz: [H, W], opset: 17 }, (proto) => {
        proto.metadataProps = proto.metadataProps.filter((e) => e.key === 'stride' || e.key === 'names');
      });
      const n = 2;
      const { teacher, out } = await run(file, n, images.slice(0, n * H * W * 3));
      expect(teacher.anchorSource).toBe('graph');
      expect(teacher.head!.anchors).toEqual(anchors);
      expect(teacher.outputLayout).toBe('yolov5-decoded');
      const want = tfjsLevels(m, images.slice(0, n * H * W * 3), n, H, W);
      out.levels!.forEach((lv, l) => {
        const tol = decodeTolerance(want[l]!, lv.ny, lv.nx, m.nc + 5, FORWARD_REL * maxAbs(want[l]!));
        expect(worstViolation(lv.data, want[l]!.map(clampLogit), tol)).toBeUndefined();
      });
    } finally {
      m.dispose();
    }
  });
});

describe('OnnxTeacher on classifiers', () => {
  it('returns the logits [N, nc] of our classifier export, in chunks of its static batch', async () => {
    const cls = createClassifier(classifierDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, 4), { seed: 2 });
    perturbBatchNorm(cls, 21);
    try {
      const file = join(dir, 'cls.onnx');
      writeFileSync(file, encodeModel(exportOnnx(cls.description, modelWeights(cls), { imgsz: 64, batch: 2 })));
      const n = 3;
      const imgs = uniform(n * 64 * 64 * 3, 4);
      const teacher = await OnnxTeacher.open(file);
      const out = await teacher.predict(imgs, n, 64, 64);
      await teacher.dispose();
      expect(teacher.task).toBe('classify');
      expect(teacher.head).toBeUndefined();
      const x = tf.tensor4d(imgs, [n, 64, 64, 3]);
      const logits = cls.forward(x, false);
      const want = logits.dataSync() as Float32Array;
      tf.dispose([x, logits]);
      expect(out.levels).toBeUndefined();
      const tol = FORWARD_REL * maxAbs(want);
      expect(worstViolation(out.logits!, want, () => tol)).toBeUndefined();
    } finally {
      cls.dispose();
    }
  });
});

describe('OnnxTeacher execution providers', () => {
  it('cuda either runs or fails with an error that says how to get it', async () => {
    const opened = await OnnxTeacher.open(files.decB2!, { executionProviders: ['cuda'] }).catch((e: unknown) => e);
    if (opened instanceof OnnxTeacher) {
      // A workstation with onnxruntime-node's CUDA binaries.
      const out = await opened.predict(images.slice(0, 2 * H * W * 3), 2, H, W);
      await opened.dispose();
      expect(out.levels).toHaveLength(3);
      return;
    }
    expect(opened).toMatchObject({ code: 'DISTILL_RUNTIME' });
    expect((opened as Error).message).toContain('docs/backends.md');
  });

  it('rejects an unknown provider by name', async () => {
    await expect(OnnxTeacher.open(files.decB2!, { executionProviders: ['tpu' as 'cpu'] })).rejects.toThrow(/executionProviders: 'tpu'/);
  });
});
