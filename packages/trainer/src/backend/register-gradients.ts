import * as tf from '../tf.js';
import { gatherNdGradConfig } from './gradients/gather-nd-grad.js';
import { nonDifferentiableGradConfigs } from './gradients/non-differentiable-grads.js';
import { siluGradConfig } from './gradients/silu-grad.js';
import { stridedSliceGradConfig } from './gradients/strided-slice-grad.js';

let registered = false;

/**
 * Adds the gradients TensorFlow.js 4.22 lacks and training needs: gatherND, stridedSlice, kd-simd's fused SiLU, and zero
 * gradients for comparisons (so `tf.where(tf.greater(…))` can sit inside a tape). The standard
 * gradients come with `@tensorflow/tfjs` (src/tf.ts). Safe to call more than once.
 */
export async function ensureTrainingGradients(): Promise<void> {
  if (registered) return;
  for (const config of [gatherNdGradConfig, stridedSliceGradConfig, siluGradConfig, ...nonDifferentiableGradConfigs]) {
    if (tf.getGradient(config.kernelName) === undefined) tf.registerGradient(config);
  }
  registered = true;
}
