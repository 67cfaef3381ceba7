// Times the training kernels that dominate a YOLOv5n step on the wasm backend (SPECS 8: filter
// gradient 55 %, input gradient 22 %, Tile 11 %) at YOLOv5n-128px-batch-16 shapes, ours against
// the alternatives. Run: node --conditions=source --import tsx packages/trainer/bench/kernels.bench.ts [--cpu]
//
// Predictions and outcomes of each version of these kernels are in docs/results.md. Now: the filter
// gradient is im2col + kd-simd's GEMM (native/kd-simd.c); the input gradient is an XNNPACK
// convolution at stride 1 on large images with few channels, and a GEMM + kd-simd col2im otherwise.
import * as tf from '../src/tf.js';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { selectBackend } from '../src/backend/select.js';
import { wasmKernel } from '../src/backend/kernels/wasm-ops.js';

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
interface ConvCase { label: string; x: [number, number, number, number]; k: [number, number, number, number]; s: number; pad: Pad }

const CASES: ConvCase[] = [
  { label: 'stem 6x6 s2 p2 [16,128,128,3]->16', x: [16, 128, 128, 3], k: [6, 6, 3, 16], s: 2, pad: [[0, 0], [2, 2], [2, 2], [0, 0]] },
  { label: '3x3 s1 [16,64,64,16]->16', x: [16, 64, 64, 16], k: [3, 3, 16, 16], s: 1, pad: 'same' },
  { label: '3x3 s2 [16,32,32,32]->64', x: [16, 32, 32, 32], k: [3, 3, 32, 64], s: 2, pad: 'same' },
  { label: '1x1 s1 [16,32,32,32]->32', x: [16, 32, 32, 32], k: [1, 1, 32, 32], s: 1, pad: 'valid' },
  { label: '3x3 s1 [16,8,8,64]->64', x: [16, 8, 8, 64], k: [3, 3, 64, 64], s: 1, pad: 'same' },
  { label: '3x3 s2 [16,8,8,128]->256', x: [16, 8, 8, 128], k: [3, 3, 128, 256], s: 2, pad: 'same' },
];
const withCpu = process.argv.includes('--cpu');
const REPS = 5;

function time(run: () => tf.TensorInfo, backend: tf.KernelBackend, reps = REPS): number {
  backend.disposeData(run().dataId); // warm-up: operator creation, heap growth
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) backend.disposeData(run().dataId);
  return (performance.now() - t0) / reps;
}

function call(name: string, fn: tf.KernelFunc, backend: tf.KernelBackend, inputs: tf.NamedTensorInfoMap, attrs: object) {
  return () => {
    const out = fn({ inputs, backend, attrs: attrs as tf.NamedAttrMap });
    if (Array.isArray(out)) throw new Error(`${name} returned several outputs`);
    return out;
  };
}

function outShape(c: ConvCase): [number, number, number, number] {
  const info = tf.backend_util.computeConv2DInfo(c.x, c.k, c.s, 1, c.pad);
  return info.outShape;
}

const row = (label: string, ms: number, ref?: number) =>
  console.log(`  ${label.padEnd(44)} ${ms.toFixed(1).padStart(9)} ms${ref !== undefined ? `  (${(ms / ref).toFixed(1)}x ours)` : ''}`);

await selectBackend('wasm');
const wasm = tf.backend() as BackendWasm;
console.log(`wasm: SIMD ${String(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'))}, ` +
  `multithread ${String(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'))}, threads ${getThreadsCount()}`);

for (const c of CASES) {
  const convAttrs = { strides: c.s, pad: c.pad, dataFormat: 'NHWC', dilations: 1 };
  const x = tf.randomNormal(c.x);
  const w = tf.randomNormal(c.k);
  const dy = tf.randomNormal(outShape(c));
  console.log(c.label);
  row('forward Conv2D (XNNPACK)', time(call('Conv2D', wasmKernel('Conv2D'), wasm, { x, filter: w }, convAttrs), wasm));

  const ours = time(call('dW', tf.getKernel(tf.Conv2DBackpropFilter, 'wasm')!.kernelFunc, wasm, { x, dy },
    { strides: c.s, pad: c.pad, dataFormat: 'NHWC', filterShape: c.k }), wasm);
  row('dW ours (im2col + kd-simd GEMM)', ours);
  // The route SPECS 8 measured: Conv3DBackpropFilterV2 with depth 1 (explicit pads done by PadV2).
  const p = c.pad;
  const xPadded = Array.isArray(p) ? tf.pad(x, p) : x;
  const x5 = tf.reshape(xPadded, [c.x[0], 1, ...xPadded.shape.slice(1)] as number[]);
  const dy5 = tf.reshape(dy, [dy.shape[0], 1, ...dy.shape.slice(1)] as number[]);
  row('dW Conv3DBackpropFilterV2 route', time(call('dW3', wasmKernel(tf.Conv3DBackpropFilterV2), wasm, { x: x5, dy: dy5 },
    { strides: [1, c.s, c.s], pad: Array.isArray(p) ? 'valid' : p, filterShape: [1, ...c.k] }), wasm, 1), ours);

  const dxAttrs = { strides: c.s, pad: c.pad, dataFormat: 'NHWC', inputShape: c.x };
  const oursDx = time(call('dX', tf.getKernel(tf.Conv2DBackpropInput, 'wasm')!.kernelFunc, wasm, { dy, filter: w }, dxAttrs), wasm);
  row('dX ours (XNNPACK conv or col2im)', oursDx);
  row('dX tfjs-wasm default', time(call('dX0', wasmKernel(tf.Conv2DBackpropInput), wasm, { dy, filter: w }, dxAttrs), wasm, 1), oursDx);
  tf.dispose([x, w, dy, xPadded, x5, dy5]);

  if (withCpu) {
    await tf.setBackend('cpu');
    const cpu = tf.backend();
    const [xc, dyc, wc] = [tf.randomNormal(c.x), tf.randomNormal(outShape(c)), tf.randomNormal(c.k)];
    row('dW cpu backend', time(call('dWc', tf.getKernel(tf.Conv2DBackpropFilter, 'cpu')!.kernelFunc, cpu, { x: xc, dy: dyc },
      { strides: c.s, pad: c.pad, dataFormat: 'NHWC', filterShape: c.k }), cpu, 1), ours);
    row('dX cpu backend', time(call('dXc', tf.getKernel(tf.Conv2DBackpropInput, 'cpu')!.kernelFunc, cpu, { dy: dyc, filter: wc },
      dxAttrs), cpu, 1), oursDx);
    tf.dispose([xc, dyc, wc]);
    await tf.setBackend('wasm');
  }
}

// The BatchNorm gradient (tfjs-core FusedBatchNorm_grad) tiles 1/sqrt(var) from [1,1,1,C] to the
// whole activation; that is the Tile in the step profile.
for (const [h, ch] of [[64, 16], [32, 32], [16, 64]] as const) {
  const v = tf.randomNormal([1, 1, 1, ch]);
  const attrs = { reps: [16, h, h, 1] };
  console.log(`Tile [1,1,1,${ch}] -> [16,${h},${h},${ch}]`);
  const ours = time(call('Tile', tf.getKernel(tf.Tile, 'wasm')!.kernelFunc, wasm, { x: v }, attrs), wasm);
  row('Tile ours (block copies)', ours);
  row('Tile tfjs-wasm default', time(call('Tile0', wasmKernel(tf.Tile), wasm, { x: v }, attrs), wasm), ours);
  const big = tf.randomNormal([16, h, h, ch]);
  row('Multiply same-size (memory-bound reference)', time(call('Mul', wasmKernel(tf.Multiply), wasm, { a: big, b: big }, {}), wasm), ours);
  tf.dispose([v, big]);
}
