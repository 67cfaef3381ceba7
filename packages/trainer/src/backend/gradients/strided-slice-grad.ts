import * as tf from '../../tf.js';

/**
 * Gradient of stridedSlice, which tfjs-core 4.22 does not define: each upstream element goes back to
 * the input position it was read from (begin + i·stride per dimension), every other position gets 0.
 */
export const stridedSliceGradConfig: tf.GradConfig = {
  kernelName: tf.StridedSlice,
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => {
    const [x] = saved as [tf.Tensor];
    const a = attrs as unknown as tf.StridedSliceAttrs;
    const dyT = dy as tf.Tensor;
    return {
      x: () => {
        const info = tf.slice_util.sliceInfo(
          x.shape, a.begin, a.end, a.strides, a.beginMask, a.endMask, a.ellipsisMask,
          a.newAxisMask, a.shrinkAxisMask);
        // finalShapeSparse has one entry per input dimension: the count taken along it.
        const counts = info.finalShapeSparse;
        const rank = x.shape.length;
        const total = tf.util.sizeFromShape(counts);
        const idx = new Int32Array(total * rank);
        const pos = new Array<number>(rank).fill(0);
        for (let e = 0; e < total; e++) {
          for (let d = 0; d < rank; d++) idx[e * rank + d] = info.begin[d]! + pos[d]! * info.strides[d]!;
          for (let d = rank - 1; d >= 0; d--) {
            if (++pos[d]! < counts[d]!) break;
            pos[d] = 0;
          }
        }
        return tf.tidy(() => {
          const indices = tf.tensor2d(idx, [total, rank], 'int32');
          return tf.scatterND(indices, tf.reshape(dyT, [total]), x.shape);
        });
      },
    };
  },
};
