import * as tf from '../../tf.js';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { KernelArgs } from './wasm-ops.js';

/**
 * Nearest-neighbour resize gradient for the 'cpu' backend, as the exact adjoint of tfjs's forward
 * mapping: each dy element is added to the source pixel the forward pass read. tfjs-backend-cpu
 * 4.22's kernel offsets dy by the image's batch stride, so it is wrong for batch > 1; the cpu
 * backend is our reference in tests, so it has to be right.
 */
export function resizeNearestNeighborGradCpu(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as MathBackendCPU;
  const { images, dy } = args.inputs as { images: tf.TensorInfo; dy: tf.TensorInfo };
  const { alignCorners, halfPixelCenters } = args.attrs as unknown as tf.ResizeNearestNeighborGradAttrs;
  const [batch, inH, inW, ch] = images.shape as [number, number, number, number];
  const [, outH, outW] = dy.shape as [number, number, number, number];
  const g = backend.readSync(dy.dataId) as Float32Array;
  const dx = new Float32Array(batch * inH * inW * ch);
  const source = (i: number, inSize: number, outSize: number): number => {
    const corners = alignCorners && outSize > 1;
    const ratio = (corners ? inSize - 1 : inSize) / (corners ? outSize - 1 : outSize);
    const frac = halfPixelCenters ? ratio * (i + 0.5) : ratio * i;
    const nearest = Math.min(inSize - 1, alignCorners ? Math.round(frac) : Math.floor(frac));
    return halfPixelCenters ? Math.max(0, nearest) : nearest;
  };
  const rows = Array.from({ length: outH }, (_, r) => source(r, inH, outH));
  const cols = Array.from({ length: outW }, (_, c) => source(c, inW, outW));
  let o = 0;
  for (let b = 0; b < batch; b++) {
    for (let r = 0; r < outH; r++) {
      for (let c = 0; c < outW; c++) {
        const at = ((b * inH + rows[r]!) * inW + cols[c]!) * ch;
        for (let d = 0; d < ch; d++) dx[at + d]! += g[o++]!;
      }
    }
  }
  return backend.makeTensorInfo(images.shape, 'float32', dx);
}

/** Kernel config that replaces tfjs-backend-cpu's ResizeNearestNeighborGrad (wrong for batch > 1). */
export const resizeNearestNeighborGradCpuConfig: tf.KernelConfig = {
  kernelName: tf.ResizeNearestNeighborGrad,
  backendName: 'cpu',
  kernelFunc: resizeNearestNeighborGradCpu as tf.KernelFunc,
};
