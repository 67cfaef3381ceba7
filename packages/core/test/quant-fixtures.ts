// Shared fixtures of the quant-*.test.ts files: small hand-built graphs, seeded data, ORT runs.
import * as ort from 'onnxruntime-node';
import { encodeModel } from '../src/onnx/encode.js';
import { makeModel, makeNode, makeValueInfo } from '../src/onnx/graph-utils.js';
import { makeTensor, tensorValues } from '../src/onnx/tensor.js';
import { DataType, type ModelProto, type NodeProto, type TensorProto } from '../src/onnx/types.js';
import { seededRandom as rng } from '../src/util/seeded-random.js';

export { rng };

/** Uniform values in [lo, hi). */
export function uniform(rand: () => number, n: number, lo = -1, hi = 1): Float32Array {
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * rand());
}

function convWeight(rand: () => number, name: string, cout: number, cin: number, k: number): TensorProto {
  const fanIn = cin * k * k;
  const bound = Math.sqrt(6 / fanIn);
  return makeTensor(name, DataType.FLOAT, [cout, cin, k, k], uniform(rand, cout * fanIn, -bound, bound));
}

export const INPUT_SHAPE = [1, 3, 16, 16] as const;

/**
 * A YOLO-flavoured graph on 1×3×16×16: Conv+SiLU (Sigmoid, Mul) twice, MaxPool, Resize ×2, Concat,
 * a 1×1 Conv with a residual Add, then Reshape → Transpose (output 'out'); a Conv → Relu head
 * (output 'relu_out'); and Pow on the pooled map (output 'aux'; Pow is not in the QDQ registry).
 */
export function yoloishModel(seed = 1, opset = 13): ModelProto {
  const rand = rng(seed);
  const inits: TensorProto[] = [
    convWeight(rand, 'w1', 8, 3, 3),
    makeTensor('b1', DataType.FLOAT, [8], uniform(rand, 8, -0.1, 0.1)),
    convWeight(rand, 'w2', 8, 8, 3),
    makeTensor('b2', DataType.FLOAT, [8], uniform(rand, 8, -0.1, 0.1)),
    convWeight(rand, 'w3', 8, 16, 1),
    makeTensor('b3', DataType.FLOAT, [8], uniform(rand, 8, -0.1, 0.1)),
    convWeight(rand, 'w4', 4, 8, 1),
    makeTensor('b4', DataType.FLOAT, [4], uniform(rand, 4, -0.1, 0.1)),
    makeTensor('scales', DataType.FLOAT, [4], [1, 1, 2, 2]),
    makeTensor('two', DataType.FLOAT, [], [2]),
    makeTensor('shape', DataType.INT64, [3], [1, 8, 256]),
  ];
  const nodes: NodeProto[] = [
    makeNode('Conv', ['images', 'w1', 'b1'], ['c1'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, 'conv1'),
    makeNode('Sigmoid', ['c1'], ['sig1'], {}, 'sig1'),
    makeNode('Mul', ['c1', 'sig1'], ['s1'], {}, 'silu1'),
    makeNode('Conv', ['s1', 'w2', 'b2'], ['c2'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [2, 2] }, 'conv2'),
    makeNode('Sigmoid', ['c2'], ['sig2'], {}, 'sig2'),
    makeNode('Mul', ['c2', 'sig2'], ['s2'], {}, 'silu2'),
    makeNode('MaxPool', ['s2'], ['mp'], { kernel_shape: [5, 5], pads: [2, 2, 2, 2], strides: [1, 1] }, 'pool'),
    makeNode('Resize', ['mp', '', 'scales'], ['up'], { mode: 'nearest' }, 'resize'),
    makeNode('Concat', ['s1', 'up'], ['cat'], { axis: 1 }, 'concat'),
    makeNode('Conv', ['cat', 'w3', 'b3'], ['c3'], { kernel_shape: [1, 1] }, 'conv3'),
    makeNode('Add', ['c3', 's1'], ['sum'], {}, 'add'),
    makeNode('Reshape', ['sum', 'shape'], ['flat'], {}, 'reshape'),
    makeNode('Transpose', ['flat'], ['out'], { perm: [0, 2, 1] }, 'transpose'),
    makeNode('Conv', ['sum', 'w4', 'b4'], ['c4'], { kernel_shape: [1, 1] }, 'conv4'),
    makeNode('Relu', ['c4'], ['relu_out'], {}, 'relu'),
    makeNode('Pow', ['mp', 'two'], ['aux'], {}, 'pow'),
  ];
  return makeModel({
    opset,
    graph: {
      name: 'yoloish',
      node: nodes,
      initializer: inits,
      input: [makeValueInfo('images', DataType.FLOAT, [...INPUT_SHAPE])],
      output: [
        makeValueInfo('out', DataType.FLOAT, [1, 256, 8]),
        makeValueInfo('relu_out', DataType.FLOAT, [1, 4, 16, 16]),
        makeValueInfo('aux', DataType.FLOAT, [1, 8, 8, 8]),
      ],
      valueInfo: [],
    },
  });
}

/** Seeded input batches in [0, 1), like normalised images. */
export function imageBatches(count: number, seed = 7, shape: readonly number[] = INPUT_SHAPE): Float32Array[] {
  const rand = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return Array.from({ length: count }, () => uniform(rand, n, 0, 1));
}

/** Runs a model once in onnxruntime-node and returns every float output by name. */
export async function runModel(
  model: ModelProto,
  input: Float32Array,
  shape: readonly number[] = INPUT_SHAPE,
  options: ort.InferenceSession.SessionOptions = {},
): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(encodeModel(model), { logSeverityLevel: 3, ...options });
  try {
    const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', input, [...shape]) };
    const res = await session.run(feeds);
    const out: Record<string, Float32Array> = {};
    for (const [k, v] of Object.entries(res)) out[k] = Float32Array.from(v.data as Float32Array);
    return out;
  } finally {
    await session.release();
  }
}

/** SQNR in dB of `y` against the reference `x`. */
export function sqnrDb(x: Float32Array, y: Float32Array): number {
  let s = 0;
  let e = 0;
  for (let i = 0; i < x.length; i++) {
    s += x[i] * x[i];
    e += (x[i] - y[i]) ** 2;
  }
  return 10 * Math.log10(s / e);
}

/** ‖x − y‖ / ‖x‖. */
export function relError(x: Float32Array, y: Float32Array): number {
  let s = 0;
  let e = 0;
  for (let i = 0; i < x.length; i++) {
    s += x[i] * x[i];
    e += (x[i] - y[i]) ** 2;
  }
  return Math.sqrt(e / s);
}

/** An initializer's values as plain numbers. */
export function initValues(model: ModelProto, name: string): number[] {
  const t = model.graph!.initializer.find((i) => i.name === name);
  if (!t) throw new Error(`no initializer '${name}'`);
  return Array.from(tensorValues(t) as ArrayLike<number>);
}

/** The initializer called `name`, or undefined. */
export function findInit(model: ModelProto, name: string): TensorProto | undefined {
  return model.graph!.initializer.find((i) => i.name === name);
}
