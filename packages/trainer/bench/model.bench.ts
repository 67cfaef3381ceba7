// Model-only timings on the wasm backend: yolov5n (nc=80), 128 px, batch 16, eval forward, training
// forward and one forward+backward via tf.variableGrads (no loss, no optimizer). Also checks that
// wasm and cpu agree on a small input. Prints figures; asserts nothing.
// Run: node --conditions=source --import tsx packages/trainer/bench/model.bench.ts
import * as tf from '../src/tf.js';
import { selectBackend } from '../src/backend/select.js';
import { createYoloModel } from '../src/model/yolo.js';
import { yoloDescription } from '@kd-edge/core';

const REPS = Number(process.env.BENCH_REPS ?? 3);

function maxAbsDiff(a: Float32Array[], b: tf.Tensor[]): number {
  let m = 0;
  b.forEach((t, i) => t.dataSync().forEach((v, j) => { m = Math.max(m, Math.abs(v - a[i]![j]!)); }));
  return m;
}

await selectBackend('cpu');
const small = createYoloModel(yoloDescription('n', 3), { seed: 3 });
const xs = tf.randomUniform([2, 64, 96, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
const xsData = xs.dataSync().slice();
const refEval = tf.tidy(() => small.forward(xs, false).map((t) => Float32Array.from(t.dataSync())));
const refTrain = tf.tidy(() => small.forward(xs, true).map((t) => Float32Array.from(t.dataSync())));
small.dispose();

await selectBackend('wasm');
const small2 = createYoloModel(yoloDescription('n', 3), { seed: 3 });
const xw = tf.tensor4d(xsData, [2, 64, 96, 3]);
tf.tidy(() => {
  console.log(`max |wasm − cpu|: eval ${maxAbsDiff(refEval, small2.forward(xw, false)).toExponential(2)}, ` +
    `training ${maxAbsDiff(refTrain, small2.forward(xw, true)).toExponential(2)}`);
});
small2.dispose();

const model = createYoloModel(yoloDescription('n', 80));
const x = tf.randomUniform([16, 128, 128, 3]) as tf.Tensor4D;
const vars = [...model.params.values()];
function time(label: string, f: () => void): void {
  f(); // warm-up: XNNPACK operator creation, lazy kernels
  const t0 = performance.now();
  for (let i = 0; i < REPS; i++) f();
  console.log(`${label}: ${((performance.now() - t0) / REPS).toFixed(0)} ms`);
}
time('yolov5n 128 px b16 eval forward', () => tf.tidy(() => { model.forward(x, false).forEach((t) => t.dataSync()); }));
time('yolov5n 128 px b16 training forward', () => tf.tidy(() => { model.forward(x, true).forEach((t) => t.dataSync()); }));
time('yolov5n 128 px b16 forward+backward (variableGrads)', () => {
  const { value, grads } = tf.variableGrads(() => tf.addN(model.forward(x, true).map((o) => tf.mean(o))) as tf.Scalar, vars);
  value.dataSync();
  tf.dispose(grads);
  value.dispose();
});
