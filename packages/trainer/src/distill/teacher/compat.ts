import type { Teacher } from '../types.js';
import { OnnxTeacher } from './onnx-teacher.js';
import { TeacherError } from './teacher-error.js';

/** What {@link checkCompatibility} needs to know about the student. */
export interface StudentGeometry {
  task: 'detect' | 'classify';
  nc: number;
  /** Training image size, one side or [height, width]. */
  imgsz: number | [number, number];
  /** Detectors: strides per level. */
  strides?: readonly number[];
  /** Detectors: pixel anchors per level [w0, h0, w1, h1, …]. */
  anchors?: readonly (readonly number[])[];
  /** Detectors: anchors per level. */
  na?: number;
  /**
   * Class names: when given and the teacher records names too, they must be the same, in the same order
   * (`kd-trainer adapt`, whose labels are the teacher's class ids). `class0`, `class1`… stand for no names.
   */
  names?: readonly string[];
}

/** A soft teacher/student difference: distillation can go on, with what `message` says. */
export interface CompatibilityWarning {
  code: 'DISTILL_ANCHORS_DIFFER' | 'DISTILL_ANCHORS_ASSUMED';
  message: string;
  /** True when box-logit distillation must be turned off (objectness and class logits still compare). */
  disablesBoxDistillation: boolean;
}

const list = (v: readonly number[]): string => `[${v.join(', ')}]`;

function sameAnchors(a: readonly number[], b: readonly number[]): boolean {
  // ONNX keeps anchors in float32, descriptions in float64: compare at float32 precision.
  return a.length === b.length && a.every((v, i) => Math.abs(v - b[i]!) <= 1e-6 * Math.max(1, Math.abs(v)));
}

/** Names that say something: not absent, and not the `class0`, `class1`… that files without names get. */
function knownNames(names: readonly string[] | undefined): boolean {
  return names !== undefined && names.length > 0 && !names.every((n, i) => n === `class${i}`);
}

/**
 * Checks that `teacher`'s outputs can be compared with `student`'s. Throws TeacherError
 * 'DISTILL_INCOMPATIBLE' listing every hard mismatch with both sides' values (output layout, class
 * count, class names when the student's are given, image size of a static teacher, strides, anchors per level);
 * returns warnings for soft ones,
 * e.g. anchors of equal count but different values, where box logits parametrise different boxes and
 * box distillation is disabled.
 * @example
 * const warnings = checkCompatibility(teacher, { task: 'detect', nc: 3, imgsz: 320, strides: [8, 16, 32], anchors, na: 3 });
 * const boxKd = !warnings.some((w) => w.disablesBoxDistillation);
 */
export function checkCompatibility(teacher: Teacher, student: StudentGeometry): CompatibilityWarning[] {
  const [sh, sw] = typeof student.imgsz === 'number' ? [student.imgsz, student.imgsz] : student.imgsz;
  const problems: string[] = [];
  const warnings: CompatibilityWarning[] = [];
  const layout = (task: string): string => (task === 'detect' ? 'per-level detection heads' : 'class logits [N, nc]');
  if (teacher.task !== student.task) {
    problems.push(`output layout: teacher is a ${teacher.task} model (${layout(teacher.task)}), student is a ${student.task} model (${layout(student.task)})`);
  }
  if (teacher.nc !== student.nc) problems.push(`class count: teacher ${teacher.nc}, student ${student.nc}`);
  else if (knownNames(student.names) && knownNames(teacher.names) && student.names!.some((n, i) => n !== teacher.names![i])) {
    problems.push(`class names: teacher ${JSON.stringify(teacher.names)}, student ${JSON.stringify(student.names)}`);
  }
  if (teacher.imgsz !== undefined && (teacher.imgsz[0] !== sh || teacher.imgsz[1] !== sw)) {
    problems.push(`image size: teacher takes only ${teacher.imgsz[0]}×${teacher.imgsz[1]} (static input), student trains at ${sh}×${sw}`);
  }
  const head = teacher.head;
  if (teacher.task === 'detect' && student.task === 'detect' && head !== undefined) {
    const { strides, anchors, na } = student;
    if (strides === undefined || anchors === undefined || na === undefined) {
      throw new TypeError('student: a detector needs strides, anchors and na');
    }
    const tNa = head.anchors.map((a) => a.length / 2);
    const sNa = anchors.map((a) => a.length / 2);
    if (head.strides.length !== strides.length || head.strides.some((s, l) => s !== strides[l])) {
      problems.push(`strides: teacher ${list(head.strides)}, student ${list(strides)}`);
    }
    if (tNa.length !== sNa.length || tNa.some((v, l) => v !== sNa[l]) || sNa.some((v) => v !== na)) {
      problems.push(`anchors per level: teacher ${list(tNa)}, student ${list(sNa.length > 0 ? sNa : [na])}`);
    } else if (head.anchors.some((a, l) => !sameAnchors(a, anchors[l]!))) {
      warnings.push({
        code: 'DISTILL_ANCHORS_DIFFER',
        message: `anchors differ (teacher ${JSON.stringify(head.anchors)}, student ${JSON.stringify(anchors)}): box logits would compare `
          + 'different parametrisations, so box distillation is disabled; objectness and class logits are still distilled',
        disablesBoxDistillation: true,
      });
    }
    if (teacher instanceof OnnxTeacher && teacher.anchorSource === 'assumed') {
      warnings.push({
        code: 'DISTILL_ANCHORS_ASSUMED',
        message: `teacher ${teacher.source} has no anchors in its metadata or graph; YOLOv5's default anchors were assumed to recover `
          + 'its box logits (wrong if the teacher was trained with other or autoanchor-tuned anchors)',
        disablesBoxDistillation: false,
      });
    }
  }
  if (problems.length > 0) {
    throw new TeacherError('DISTILL_INCOMPATIBLE', `teacher ${teacher.source} and the student do not match:\n  - ${problems.join('\n  - ')}`);
  }
  return warnings;
}
