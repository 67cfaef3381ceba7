import * as path from 'node:path';
import type { Teacher } from '../types.js';
import { OnnxTeacher, type OnnxTeacherOptions } from './onnx-teacher.js';
import { TeacherError } from './teacher-error.js';
import { requireTeacherFile } from './teacher-file.js';
import { featuresUnsupported, TfjsTeacher } from './tfjs-teacher.js';

/** Options of {@link openTeacher}: the ONNX ones (a .kdw teacher takes no features and ignores the rest). */
export type OpenTeacherOptions = OnnxTeacherOptions;

/**
 * Opens a frozen teacher by file extension: `.onnx` → {@link OnnxTeacher} (kd-edge or ultralytics
 * export), `.kdw` → {@link TfjsTeacher} (a kd-trainer checkpoint), `.pt` → {@link TfjsTeacher} (an
 * ultralytics YOLOv5 checkpoint, imported). Throws TeacherError
 * 'DISTILL_TEACHER_NOT_FOUND' for a missing file and 'DISTILL_TEACHER_FORMAT' for any other extension.
 * @example
 * const teacher = await openTeacher('yolov5s.onnx', { features: ['/model.17/cv3/act/Mul_output_0'] });
 */
export async function openTeacher(file: string, opts: OpenTeacherOptions = {}): Promise<Teacher> {
  if (typeof file !== 'string' || file.length === 0) throw new TypeError('file: expected a teacher path (.onnx or .kdw)');
  const ext = path.extname(file).toLowerCase();
  const tfjs = ext === '.kdw' || ext === '.pt';
  if (tfjs && (opts.features?.length ?? 0) > 0) throw featuresUnsupported(file, opts.features!);
  await requireTeacherFile(file);
  if (ext === '.onnx') return OnnxTeacher.open(file, opts);
  if (tfjs) return TfjsTeacher.open(file);
  const hint = ext === '.pth' ? '; an ultralytics YOLOv5 checkpoint is read as .pt, other PyTorch models through their ONNX export' : '';
  throw new TeacherError('DISTILL_TEACHER_FORMAT', `teacher ${file}: unsupported file type '${ext || '(none)'}'; expected .onnx (ONNX Runtime), .kdw (kd-trainer weights) or .pt (ultralytics YOLOv5)${hint}`);
}
