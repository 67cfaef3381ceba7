import { fileURLToPath } from 'node:url';
import { classifierDescription } from '@kd-edge/core';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../src/tf.js';
import { selectBackend } from '../src/backend/select.js';
import { createClassifier } from '../src/model/classifier.js';
import type { DetectionModel } from '../src/model/types.js';
import { saveWeights } from '../src/model/weights-io.js';
import { silentLogger } from '../src/util/logger.js';
import { OnnxTeacher } from '../src/distill/teacher/onnx-teacher.js';
import { openTeacher } from '../src/distill/teacher/open-teacher.js';
import { TfjsTeacher } from '../src/distill/teacher/tfjs-teacher.js';
import { pictures, tfjsLevels, tinyDetector, writeExport } from './model-fixtures.js';

let dir: string;
let model: DetectionModel;
let kdw: string;
const [N, H, W] = [2, 64, 64];

beforeAll(async () => {
  await selectBackend('cpu', silentLogger);
  dir = mkdtempSync(join(tmpdir(), 'kd-teacher-tfjs-'));
  model = tinyDetector(5);
  kdw = join(dir, 'teacher.kdw');
  await saveWeights(kdw, model);
});

afterAll(() => {
  model.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('TfjsTeacher', () => {
  it('gives the model\'s eval-mode logits per level, unchanged, and leaves no tensors behind', async () => {
    const teacher = await TfjsTeacher.open(kdw);
    try {
      const images = pictures(N, H, W);
      const want = tfjsLevels(model, images, N, H, W);
      const before = tf.memory().numTensors;
      const out = await teacher.predict(images, N, H, W);
      expect(tf.memory().numTensors).toBe(before);
      expect(out.levels!.map((l) => [l.ny, l.nx])).toEqual([[8, 8], [4, 4], [2, 2]]);
      out.levels!.forEach((lv, l) => expect(lv.data).toEqual(want[l]));
      expect(out.features).toBeUndefined();
      expect(Number.isFinite(out.ms)).toBe(true);
    } finally {
      await teacher.dispose();
    }
  });

  it('reports geometry, parameter count and file hash, and its variables are not trainable', async () => {
    const teacher = await TfjsTeacher.open(kdw);
    try {
      expect(teacher.kind).toBe('tfjs');
      expect(teacher.task).toBe('detect');
      expect(teacher.nc).toBe(2);
      expect(teacher.head).toEqual({ nc: 2, strides: [8, 16, 32], anchors: model.anchors });
      expect(teacher.imgsz).toBeUndefined();
      expect(teacher.batch).toBeUndefined();
      expect(teacher.paramCount).toBe(model.paramCount());
      expect(teacher.fileHash).toBe(createHash('sha256').update(readFileSync(kdw)).digest('hex'));
      // A student's optimizer minimising over "all trainable variables" must not move the teacher.
      const trainableIds = new Set(Object.values(tf.engine().registeredVariables).filter((v) => v.trainable).map((v) => v.id));
      const own = (teacher as unknown as { model: DetectionModel }).model;
      expect([...own.params.values()].some((v) => trainableIds.has(v.id))).toBe(false);
    } finally {
      await teacher.dispose();
    }
  });

  it('gives classifier logits', async () => {
    const cls = createClassifier(classifierDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, 3), { seed: 8 });
    const file = join(dir, 'cls.kdw');
    await saveWeights(file, cls);
    const teacher = await TfjsTeacher.open(file);
    try {
      const images = pictures(N, H, W);
      const x = tf.tensor4d(images, [N, H, W, 3]);
      const logits = cls.forward(x, false);
      const out = await teacher.predict(images, N, H, W);
      expect(teacher.task).toBe('classify');
      expect(teacher.head).toBeUndefined();
      expect(out.logits).toEqual(logits.dataSync());
      expect(out.levels).toBeUndefined();
      tf.dispose([x, logits]);
    } finally {
      await teacher.dispose();
      cls.dispose();
    }
  });

  it('refuses feature maps with a clear error pointing to an ONNX teacher', async () => {
    const err = await TfjsTeacher.open(kdw, { features: [17] }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DISTILL_FEATURES_UNSUPPORTED' });
    expect((err as Error).message).toMatch(/needs an ONNX teacher/);
    expect((err as Error).message).toContain('--formats onnx');
  });
});

describe('openTeacher', () => {
  it('picks the runtime by extension', async () => {
    const onnx = writeExport(model, dir, 'Teacher.ONNX', { imgsz: H });
    const a = await openTeacher(onnx);
    const b = await openTeacher(kdw);
    try {
      expect(a).toBeInstanceOf(OnnxTeacher);
      expect(b).toBeInstanceOf(TfjsTeacher);
    } finally {
      await a.dispose();
      await b.dispose();
    }
  });

  it('opens an ultralytics .pt checkpoint as a tfjs teacher', async () => {
    const t = await openTeacher(fileURLToPath(new URL('./fixtures/ultralytics/yolov5n-nc3-v7.pt', import.meta.url)));
    try {
      expect(t).toBeInstanceOf(TfjsTeacher);
      expect([t.task, t.nc]).toEqual(['detect', 3]);
      expect(t.head?.strides).toEqual([8, 16, 32]);
    } finally {
      await t.dispose();
    }
  });

  it('names a missing file, an unsupported extension, and features asked of a .kdw', async () => {
    await expect(openTeacher(join(dir, 'nope.onnx'))).rejects.toMatchObject({ code: 'DISTILL_TEACHER_NOT_FOUND', message: expect.stringContaining('nope.onnx') });
    await expect(openTeacher(dir + '/')).rejects.toMatchObject({ code: 'DISTILL_TEACHER_NOT_FOUND' });
    const pt = join(dir, 'yolov5s.pt');
    writeFileSync(pt, 'PK\u0003\u0004');
    await expect(openTeacher(pt)).rejects.toMatchObject({ code: 'WEIGHTS_INVALID', message: expect.stringContaining('yolov5s.pt') });
    const err = await openTeacher(join(dir, 'w.pth')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DISTILL_TEACHER_NOT_FOUND' });
    writeFileSync(join(dir, 'w.pth'), 'x');
    const fmt = await openTeacher(join(dir, 'w.pth')).catch((e: unknown) => e);
    expect(fmt).toMatchObject({ code: 'DISTILL_TEACHER_FORMAT' });
    expect((fmt as Error).message).toContain("'.pth'");
    await expect(openTeacher(kdw, { features: ['/model.17/cv3/act/Mul_output_0'] })).rejects.toMatchObject({ code: 'DISTILL_FEATURES_UNSUPPORTED' });
  });
});
