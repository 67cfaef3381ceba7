import * as tf from '../../tf.js';
import { loadDetectionModel } from '../../import/load-weights.js';
import { loadModel } from '../../model/weights-io.js';
import type { ClassificationModel, DetectionModel } from '../../model/types.js';
import type { HeadGeometry, Teacher, TeacherOutput } from '../types.js';
import { TeacherError } from './teacher-error.js';
import { requireTeacherFile, sha256File } from './teacher-file.js';

/** Options of {@link TfjsTeacher.open}. */
export interface TfjsTeacherOptions {
  /**
   * Feature maps to return (layer indices or tensor names). Not supported yet: the model's forward
   * pass exposes only its head, so any entry throws 'DISTILL_FEATURES_UNSUPPORTED'.
   */
  features?: readonly (number | string)[];
}

/** The error for asking a kd-trainer checkpoint teacher for feature maps. */
export function featuresUnsupported(file: string, features: readonly (number | string)[]): TeacherError {
  return new TeacherError(
    'DISTILL_FEATURES_UNSUPPORTED',
    `teacher ${file}: feature distillation (${features.map((f) => JSON.stringify(f)).join(', ')}) needs an ONNX teacher; `
      + 'a .kdw teacher gives head logits only. export it with `kd-trainer export --weights <file> --imgsz <size> --formats onnx` and pass the .onnx file',
  );
}

/**
 * A frozen teacher from a kd-trainer weights file (.kdw): the model runs in eval mode on the active
 * TensorFlow.js backend, inside tf.tidy. Its variables are marked non-trainable, so a gradient over
 * "all trainable variables" never reaches them; call predict outside the student's gradient closure.
 * @example
 * const teacher = await TfjsTeacher.open('runs/exp/weights/best.kdw');
 */
export class TfjsTeacher implements Teacher {
  readonly kind = 'tfjs' as const;
  readonly imgsz = undefined;
  readonly batch = undefined;

  private constructor(
    readonly source: string,
    private readonly model: DetectionModel | ClassificationModel,
    readonly fileHash: string,
  ) {}

  /** Loads `file` (kd-trainer weights, or an ultralytics `.pt` checkpoint imported) and hashes it. */
  static async open(file: string, opts: TfjsTeacherOptions = {}): Promise<TfjsTeacher> {
    const features = opts.features ?? [];
    if (features.length > 0) throw featuresUnsupported(file, features);
    await requireTeacherFile(file);
    const load = /\.pt$/i.test(file) ? loadDetectionModel(file) : loadModel(file);
    const [{ model }, hash] = await Promise.all([load, sha256File(file)]);
    for (const v of model.params.values()) v.trainable = false;
    return new TfjsTeacher(file, model, hash);
  }

  get task(): 'detect' | 'classify' {
    return this.model.kind;
  }

  get nc(): number {
    return this.model.nc;
  }

  /** Class names from the weights' description, when it has one per class. */
  get names(): string[] | undefined {
    const names = this.model.description.names;
    return Array.isArray(names) && names.length === this.model.nc ? [...names] : undefined;
  }

  get head(): HeadGeometry | undefined {
    const m = this.model;
    return m.kind === 'detect' ? { nc: m.nc, strides: [...m.strides], anchors: m.anchors.map((a) => [...a]) } : undefined;
  }

  /** The detector itself (frozen), for validating the teacher; undefined for a classifier. */
  get detector(): DetectionModel | undefined {
    return this.model.kind === 'detect' ? this.model : undefined;
  }

  /** Trainable parameters of the model (BatchNorm unfolded, so more than its ONNX export counts). */
  get paramCount(): number {
    return this.model.paramCount();
  }

  async predict(images: Float32Array, n: number, height: number, width: number): Promise<TeacherOutput> {
    const t0 = performance.now();
    if (!(images instanceof Float32Array)) throw new TypeError('images: expected a Float32Array (NHWC, 0..1)');
    if (images.length !== n * height * width * 3) {
      throw new RangeError(`images: ${images.length} values, but ${n}×${height}×${width}×3 needs ${n * height * width * 3}`);
    }
    const model = this.model;
    const outs = tf.tidy(() => {
      const x = tf.tensor4d(images, [n, height, width, 3]);
      return model.kind === 'detect' ? model.forward(x, false) : [model.forward(x, false)];
    });
    try {
      const values = await Promise.all(outs.map((t) => t.data<'float32'>()));
      if (model.kind === 'classify') return { logits: values[0]!, ms: performance.now() - t0 };
      const levels = outs.map((t, l) => ({ data: values[l]!, ny: t.shape[1]!, nx: t.shape[2]! }));
      return { levels, ms: performance.now() - t0 };
    } finally {
      tf.dispose(outs);
    }
  }

  async dispose(): Promise<void> {
    this.model.dispose();
  }
}
