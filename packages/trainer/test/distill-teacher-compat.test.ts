import { DEFAULT_ANCHORS } from '@kd-edge/core';
import { describe, expect, it } from 'vitest';
import { checkCompatibility, type StudentGeometry } from '../src/distill/teacher/compat.js';
import { OnnxTeacher } from '../src/distill/teacher/onnx-teacher.js';
import type { Teacher } from '../src/distill/types.js';

const anchors = DEFAULT_ANCHORS.map((a) => [...a]);

function teacher(over: Partial<Teacher> = {}): Teacher {
  return {
    kind: 'onnx', source: 'teacher.onnx', task: 'detect', nc: 3, head: { nc: 3, strides: [8, 16, 32], anchors },
    imgsz: [320, 320], batch: 1, fileHash: 'f', paramCount: 1,
    predict: () => Promise.reject(new Error('unused')), dispose: () => Promise.resolve(),
    ...over,
  };
}

const student: StudentGeometry = { task: 'detect', nc: 3, imgsz: 320, strides: [8, 16, 32], anchors, na: 3 };

function thrown(f: () => unknown): Error & { code?: string } {
  try {
    f();
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('did not throw');
}

describe('checkCompatibility', () => {
  it('accepts a matching pair with no warnings', () => {
    expect(checkCompatibility(teacher(), student)).toEqual([]);
    expect(checkCompatibility(teacher({ imgsz: undefined }), { ...student, imgsz: [256, 384] })).toEqual([]);
  });

  it('names both values of each hard mismatch in one error', () => {
    const e = thrown(() => checkCompatibility(teacher(), { ...student, nc: 80, imgsz: [256, 320] }));
    expect(e.code).toBe('DISTILL_INCOMPATIBLE');
    expect(e.message).toContain('class count: teacher 3, student 80');
    expect(e.message).toContain('image size: teacher takes only 320×320 (static input), student trains at 256×320');
  });

  it('names strides and anchors-per-level mismatches', () => {
    const four = { strides: [8, 16, 32, 64], anchors: [...anchors, [200, 200, 300, 300, 400, 400]] };
    const e = thrown(() => checkCompatibility(teacher(), { ...student, ...four }));
    expect(e.message).toContain('strides: teacher [8, 16, 32], student [8, 16, 32, 64]');
    expect(e.message).toContain('anchors per level: teacher [3, 3, 3], student [3, 3, 3, 3]');
    const two = anchors.map((a) => a.slice(0, 4));
    const e2 = thrown(() => checkCompatibility(teacher(), { ...student, anchors: two, na: 2 }));
    expect(e2.message).toContain('anchors per level: teacher [3, 3, 3], student [2, 2, 2]');
    expect(e2.message).not.toContain('strides');
  });

  it('names a task (output layout) mismatch', () => {
    const e = thrown(() => checkCompatibility(teacher({ task: 'classify', head: undefined }), student));
    expect(e.message).toContain('output layout: teacher is a classify model (class logits [N, nc]), student is a detect model (per-level detection heads)');
  });

  it('warns, disabling box distillation, when anchors differ in value but not in count', () => {
    const other = anchors.map((a) => a.map((v) => v * 1.1));
    const w = checkCompatibility(teacher(), { ...student, anchors: other });
    expect(w).toHaveLength(1);
    expect(w[0]).toMatchObject({ code: 'DISTILL_ANCHORS_DIFFER', disablesBoxDistillation: true });
    expect(w[0]!.message).toContain('box distillation is disabled');
    // float32 rounding of the teacher's anchors is not a difference.
    const f32 = anchors.map((a) => a.map((v) => Math.fround(v + 0.1)));
    expect(checkCompatibility(teacher({ head: { nc: 3, strides: [8, 16, 32], anchors: f32 } }), { ...student, anchors: f32.map((a) => a.map((v) => v + 1e-7)) })).toEqual([]);
  });

  it('warns when an ONNX teacher\'s anchors were assumed', () => {
    const t = Object.assign(Object.create(OnnxTeacher.prototype) as OnnxTeacher, teacher(), { anchorSource: 'assumed' });
    const w = checkCompatibility(t, student);
    expect(w.map((x) => x.code)).toEqual(['DISTILL_ANCHORS_ASSUMED']);
    expect(w[0]!.disablesBoxDistillation).toBe(false);
  });

  it('needs the student\'s head geometry for a detector', () => {
    expect(() => checkCompatibility(teacher(), { task: 'detect', nc: 3, imgsz: 320 })).toThrow(TypeError);
    expect(checkCompatibility(teacher({ task: 'classify', head: undefined }), { task: 'classify', nc: 3, imgsz: 320 })).toEqual([]);
  });
});
