import * as tf from '../../tf.js';
import { KdSilu } from '../kernels/batch-norm-act.js';

/** Gradient of the fused SiLU kernel: dy·σ(x)·(1 + x·(1 − σ(x))). */
export const siluGradConfig: tf.GradConfig = {
  kernelName: KdSilu,
  inputsToSave: ['x'],
  gradFunc: (dy, saved): Record<string, () => tf.Tensor> => {
    const x = saved[0]!;
    return {
      x: () => {
        const s = tf.sigmoid(x);
        return tf.mul(dy as tf.Tensor, tf.mul(s, tf.add(tf.mul(x, tf.sub(1, s)), 1)));
      },
    };
  },
};
