import type * as tf from '../tf.js';

/**
 * Head geometry a teacher and a student must share for logit distillation: class count, strides and
 * anchors per level (pixels, flattened [w0, h0, w1, h1, …]).
 */
export interface HeadGeometry {
  nc: number;
  strides: number[];
  anchors: number[][];
}

/** One intermediate feature map of the teacher, NCHW float32 (as ONNX produces it). */
export interface FeatureMap {
  data: Float32Array;
  /** [N, C, H, W] */
  shape: [number, number, number, number];
}

/**
 * What a frozen teacher gives for one batch: per level, raw head logits in the student's layout
 * (NHWC [N, ny, nx, na·(5+nc)], channel = anchor·(5+nc) + k; k = 0..3 box, 4 objectness, 5.. classes),
 * so losses compare like with like; for a classifier, class logits [N, nc]; optionally named feature
 * maps for feature distillation.
 */
export interface TeacherOutput {
  /** Detection: one entry per level. Classification: absent. */
  levels?: { data: Float32Array; ny: number; nx: number }[];
  /** Classification logits [N, nc], row-major. */
  logits?: Float32Array;
  features?: Map<string, FeatureMap>;
  /** Milliseconds the teacher's forward pass took. */
  ms: number;
}

/** A frozen teacher: runs without a gradient tape, on its own runtime. */
export interface Teacher {
  /** 'onnx' (onnxruntime-node) or 'tfjs' (a kd-trainer checkpoint). */
  readonly kind: 'onnx' | 'tfjs';
  /** Where it came from (file path), for messages. */
  readonly source: string;
  readonly task: 'detect' | 'classify';
  /** Detection head geometry (detectors only). */
  readonly head?: HeadGeometry;
  readonly nc: number;
  /** Class names, when the file records them (`class0`, `class1`… stand for none). */
  readonly names?: readonly string[];
  /** Static input size [h, w] when the teacher has one. */
  readonly imgsz?: [number, number];
  /** Static batch when the teacher has one (batches are then run in chunks of it). */
  readonly batch?: number;
  /** sha256 of the teacher file (the teacher-output cache key). */
  readonly fileHash: string;
  /** Teacher parameter count (for the --compare table). */
  readonly paramCount: number;
  /**
   * Runs the teacher on a batch of images, NHWC float32 in 0..1 (the loader's layout), and returns
   * its outputs. May run concurrently with the student's step (ONNX Runtime uses its own threads).
   */
  predict(images: Float32Array, n: number, height: number, width: number): Promise<TeacherOutput>;
  dispose(): Promise<void>;
}

/** Student outputs a distillation loss sees. */
export interface StudentOutput {
  /** Detection: raw logits per level NHWC [N, ny, nx, na·(5+nc)]. */
  levels?: tf.Tensor4D[];
  /** Classification logits [N, nc]. */
  logits?: tf.Tensor2D;
  /** Named student feature maps NHWC (for feature distillation). */
  features?: Map<string, tf.Tensor4D>;
}
