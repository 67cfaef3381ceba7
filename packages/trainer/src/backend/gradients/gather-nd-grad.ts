import * as tf from '../../tf.js';

/**
 * Gradient of gatherND, which tfjs-core 4.22 does not define: the upstream gradient scattered back
 * to the gathered positions, duplicates summed (scatterND adds them).
 */
export const gatherNdGradConfig: tf.GradConfig = {
  kernelName: tf.GatherNd,
  inputsToSave: ['params', 'indices'],
  gradFunc: (dy, saved) => {
    const [params, indices] = saved as [tf.Tensor, tf.Tensor];
    const dyT = dy as tf.Tensor;
    return {
      params: () => tf.scatterND(indices, dyT, params.shape),
      indices: () => tf.zerosLike(indices),
    };
  },
};
