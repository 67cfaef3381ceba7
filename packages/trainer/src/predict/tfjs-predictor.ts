import { decodeYoloOutputs } from '@kd-edge/core';
import * as tf from '../tf.js';
import type { Shard } from '../data/types.js';
import type { DetectionModel } from '../model/types.js';
import type { DetectionPredictor } from '../val/validator.js';

/**
 * A {@link DetectionPredictor} on a TensorFlow.js detector: one forward pass per shard, the heads
 * decoded to the ultralytics `output0` rows as `validate` does.
 */
export class TfjsDetectionPredictor implements DetectionPredictor {
  readonly nc: number;

  constructor(private readonly model: DetectionModel) {
    this.nc = model.nc;
  }

  async predict(part: Shard): Promise<{ decoded: Float32Array; preMs: number; inferMs: number }> {
    const t1 = performance.now();
    const x = tf.tensor4d(part.images, [part.n, part.height, part.width, 3]);
    const t2 = performance.now();
    const outs = this.model.forward(x, false);
    let raw: Float32Array[];
    try {
      raw = await Promise.all(outs.map((o) => o.data() as Promise<Float32Array>));
    } finally {
      tf.dispose([x, ...outs]);
    }
    const decoded = decodeYoloOutputs(
      raw.map((data, i) => ({ data, ny: outs[i]!.shape[1], nx: outs[i]!.shape[2], stride: this.model.strides[i]!, anchors: this.model.anchors[i]! })),
      part.n,
      this.model.nc,
    );
    // Decoding is part of the model's output stage (ONNX exports do it in the graph): count it as inference.
    return { decoded, preMs: t2 - t1, inferMs: performance.now() - t2 };
  }
}
