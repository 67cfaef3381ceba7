import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { decodeModel } from '../src/onnx/decode.js';
import { encodeModel } from '../src/onnx/encode.js';
import { makeModel, makeNode, makeValueInfo } from '../src/onnx/graph-utils.js';
import { makeTensor } from '../src/onnx/tensor.js';
import { DataType } from '../src/onnx/types.js';

// x: 1×1×4×4 = 0..15 / 8; w: 2×1×3×3; b: [0.5, -1].
const X = Float32Array.from({ length: 16 }, (_, i) => i / 8);
const W = Float32Array.from([0, 1, 0, 1, -4, 1, 0, 1, 0, /* second filter */ 0.25, 0, -0.25, 0.5, 0, -0.5, 0.25, 0, -0.25]);
const B = [0.5, -1];

function buildModel(opset: number): Uint8Array {
  const graph = {
    name: 'silu_concat',
    node: [
      makeNode('Conv', ['x', 'w', 'b'], ['c'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [1, 1] }, 'conv'),
      makeNode('Sigmoid', ['c'], ['s'], undefined, 'sigmoid'),
      makeNode('Mul', ['c', 's'], ['m'], undefined, 'mul'),
      makeNode('Concat', ['m', 'x'], ['y'], { axis: 1 }, 'concat'),
    ],
    initializer: [makeTensor('w', DataType.FLOAT, [2, 1, 3, 3], W), makeTensor('b', DataType.FLOAT, [2], B)],
    input: [makeValueInfo('x', DataType.FLOAT, ['batch', 1, 4, 4])],
    output: [makeValueInfo('y', DataType.FLOAT, ['batch', 3, 4, 4])],
    valueInfo: [],
  };
  return encodeModel(makeModel({ graph, opset }));
}

/** Conv (pad 1, stride 1) + SiLU, then the input appended as a third channel, by direct loops. */
function reference(): Float64Array {
  const out = new Float64Array(3 * 16);
  for (let o = 0; o < 2; o++) {
    for (let y = 0; y < 4; y++) {
      for (let x = 0; x < 4; x++) {
        let acc = B[o];
        for (let ky = 0; ky < 3; ky++) {
          for (let kx = 0; kx < 3; kx++) {
            const iy = y + ky - 1;
            const ix = x + kx - 1;
            if (iy >= 0 && iy < 4 && ix >= 0 && ix < 4) acc += W[o * 9 + ky * 3 + kx] * X[iy * 4 + ix];
          }
        }
        out[o * 16 + y * 4 + x] = acc / (1 + Math.exp(-acc));
      }
    }
  }
  for (let i = 0; i < 16; i++) out[32 + i] = X[i];
  return out;
}

describe('a model built with makeModel/encodeModel runs in onnxruntime-node', () => {
  it.each([13, 17])('opset %i: Conv + Sigmoid + Mul + Concat match a hand computation', async (opset) => {
    const bytes = buildModel(opset);
    expect(decodeModel(bytes).irVersion).toBe(opset === 13 ? 7 : 8);
    const session = await ort.InferenceSession.create(bytes);
    try {
      expect(session.inputNames).toEqual(['x']);
      expect(session.outputNames).toEqual(['y']);
      const result = await session.run({ x: new ort.Tensor('float32', X, [1, 1, 4, 4]) });
      const y = result.y;
      expect(y.dims).toEqual([1, 3, 4, 4]);
      const got = y.data as Float32Array;
      const want = reference();
      for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i], 5);
      // Spot check one value by hand: centre pixel (1,1) of filter 0 is the Laplacian
      // x[0,1]+x[1,0]+x[1,2]+x[2,1]-4x[1,1] = (1+4+6+9-20)/8 = 0, plus bias 0.5.
      expect(got[5]).toBeCloseTo(0.5 / (1 + Math.exp(-0.5)), 6);
    } finally {
      await session.release();
    }
  });
});
