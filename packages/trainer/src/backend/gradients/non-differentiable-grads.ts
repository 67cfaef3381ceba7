import * as tf from '../../tf.js';

/**
 * Comparison and logical kernels have zero gradient, but tfjs-core 4.22 registers none for most of
 * them, so `tf.where(tf.greater(a, b), …)` with `a` depending on a variable fails to differentiate.
 */
const NAMES = [
  tf.Greater, tf.Less, tf.LessEqual, tf.Equal, tf.NotEqual,
  tf.LogicalAnd, tf.LogicalOr, tf.LogicalNot,
] as const;

/** Zero gradients for every input of the comparison/logical kernels that lack one. */
export const nonDifferentiableGradConfigs: readonly tf.GradConfig[] = NAMES.map((kernelName): tf.GradConfig => ({
  kernelName,
  inputsToSave: kernelName === tf.LogicalNot ? ['x'] : ['a', 'b'],
  gradFunc: (_dy, saved): Record<string, () => tf.Tensor> => {
    if (saved.length === 1) return { x: () => tf.zerosLike(saved[0]!) };
    return { a: () => tf.zerosLike(saved[0]!), b: () => tf.zerosLike(saved[1]!) };
  },
}));
