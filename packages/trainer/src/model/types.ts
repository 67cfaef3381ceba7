import type { ClassifierDescription, ModelDescription, YoloDescription } from '@kd-edge/core';
import type * as tf from '../tf.js';

export type { ClassifierDescription, LayerSpec, ModelDescription, YoloDescription } from '@kd-edge/core';

/** What every trainable model has in common. */
export interface TrainableModel {
  readonly description: ModelDescription;
  /**
   * Trainable variables keyed by ultralytics state_dict names (`model.0.conv.weight`, `model.0.bn.weight`,
   * `model.0.bn.bias`, `model.24.m.0.weight`, `model.24.m.0.bias`). Conv weights are in TensorFlow.js layout
   * [kh, kw, cin, cout].
   */
  readonly params: Map<string, tf.Variable>;
  /** Non-trainable state (BatchNorm running_mean / running_var), same naming. */
  readonly buffers: Map<string, tf.Variable>;
  /** Number of trainable parameters. */
  paramCount(): number;
  dispose(): void;
}

/** A YOLOv5-family detector. */
export interface DetectionModel extends TrainableModel {
  readonly kind: 'detect';
  readonly description: YoloDescription;
  readonly nc: number;
  /** Number of detection levels (3). */
  readonly nl: number;
  /** Anchors per level (3). */
  readonly na: number;
  /** Strides of the levels, [8, 16, 32]. */
  readonly strides: number[];
  /** Per level, pixel anchors flattened [w0, h0, w1, h1, w2, h2]. */
  readonly anchors: number[][];
  /**
   * Raw head outputs (logits) per level, NHWC: [N, ny, nx, na*(5+nc)], channel = a*(5+nc)+k with
   * k = 0..3 box, 4 objectness, 5.. classes. In training mode BatchNorm uses batch statistics and
   * updates its running statistics (momentum 0.03, eps 1e-3, as ultralytics).
   */
  forward(x: tf.Tensor4D, training: boolean): tf.Tensor4D[];
  /** {@link forward} plus the outputs of the given layers (NHWC), e.g. the neck features Detect reads. */
  forwardFeatures(x: tf.Tensor4D, training: boolean, layers: readonly number[]): { levels: tf.Tensor4D[]; features: tf.Tensor4D[] };
}

/** A small image classifier. */
export interface ClassificationModel extends TrainableModel {
  readonly kind: 'classify';
  readonly description: ClassifierDescription;
  readonly nc: number;
  /** Logits [N, nc]. */
  forward(x: tf.Tensor4D, training: boolean): tf.Tensor2D;
}
