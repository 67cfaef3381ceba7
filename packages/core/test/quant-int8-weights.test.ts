import { describe, expect, it } from 'vitest';
import { makeModel, makeNode, makeValueInfo } from '../src/onnx/graph-utils.js';
import { makeTensor, tensorValues } from '../src/onnx/tensor.js';
import { DataType, type ModelProto } from '../src/onnx/types.js';
import { quantizeWeightsInt8 } from '../src/quant/int8-weights.js';
import { findInit, imageBatches, initValues, rng, runModel, sqnrDb, uniform, yoloishModel } from './quant-fixtures.js';

const axisOf = (m: ModelProto, dq: string): number | undefined => {
  const a = m.graph!.node.find((n) => n.name === dq)!.attribute.find((x) => x.name === 'axis');
  return a === undefined ? undefined : Number(a.i);
};

describe('quantizeWeightsInt8', () => {
  const model = yoloishModel();
  const r = quantizeWeightsInt8(model);

  it('replaces every Conv weight by int8 per output channel behind a DequantizeLinear', () => {
    expect(r.quantizedWeights).toEqual(['w1', 'w2', 'w3', 'w4']);
    const g = r.model.graph!;
    for (const w of r.quantizedWeights) {
      expect(findInit(r.model, w)).toBeUndefined();
      const q = findInit(r.model, `${w}_quantized`)!;
      expect(q.dataType).toBe(DataType.INT8);
      expect(q.dims).toEqual(findInit(model, w)!.dims);
      expect(findInit(r.model, `${w}_scale`)!.dims).toEqual([q.dims[0]]);
      // Symmetric int8: zero point 0, written by leaving the DequantizeLinear input out.
      expect(findInit(r.model, `${w}_zero_point`)).toBeUndefined();
      expect(g.node.find((n) => n.name === `${w}_DequantizeLinear`)!.input).toHaveLength(2);
      expect(axisOf(r.model, `${w}_DequantizeLinear`)).toBe(0);
      const conv = g.node.find((n) => n.opType === 'Conv' && n.input[1] === `${w}_DequantizeLinear_Output`);
      expect(conv).toBeDefined();
    }
    // biases and activations stay float
    expect(findInit(r.model, 'b1')!.dataType).toBe(DataType.FLOAT);
    expect(g.node.filter((n) => n.opType === 'QuantizeLinear')).toHaveLength(0);
  });

  it('uses symmetric scales: absmax / 127 per channel, values round(w / scale)', () => {
    const w = initValues(model, 'w2');
    const scales = initValues(r.model, 'w2_scale');
    const q = initValues(r.model, 'w2_quantized');
    const per = w.length / 8;
    for (let c = 0; c < 8; c++) {
      const ch = w.slice(c * per, (c + 1) * per);
      const absmax = Math.max(...ch.map(Math.abs));
      expect(scales[c]).toBeCloseTo(Math.fround(absmax / 127), 9);
      expect(Math.max(...q.slice(c * per, (c + 1) * per).map(Math.abs))).toBe(127);
      for (let i = 0; i < per; i++) expect(Math.abs(q[c * per + i] * scales[c] - ch[i])).toBeLessThanOrEqual(scales[c] / 2 + 1e-7);
    }
  });

  it('is about 4x smaller and runs in onnxruntime-node close to the float model', async () => {
    // weights dominate; biases and the Resize scales stay float32
    expect(r.bytesAfter).toBeLessThan(r.bytesBefore / 3);
    const [x] = imageBatches(1);
    const ref = await runModel(model, x);
    const got = await runModel(r.model, x);
    for (const o of ['out', 'relu_out', 'aux']) expect(sqnrDb(ref[o], got[o])).toBeGreaterThan(30);
  });

  it('leaves excluded nodes and unselected op types alone', () => {
    const e = quantizeWeightsInt8(model, { exclude: ['conv1', /conv[34]/] });
    expect(e.quantizedWeights).toEqual(['w2']);
    expect(e.skipped.map((s) => [s.node, s.reason])).toEqual([
      ['conv1', 'excluded'],
      ['conv3', 'excluded'],
      ['conv4', 'excluded'],
    ]);
    expect(findInit(e.model, 'w1')!.dataType).toBe(DataType.FLOAT);
    expect(quantizeWeightsInt8(model, { opTypes: ['MatMul'] }).quantizedWeights).toEqual([]);
    expect(() => quantizeWeightsInt8(model, { opTypes: ['Add' as 'MatMul'] })).toThrow(RangeError);
  });

  it('falls back to one scale per tensor below opset 13 (no DequantizeLinear axis)', () => {
    const old = quantizeWeightsInt8(yoloishModel(1, 12));
    expect(findInit(old.model, 'w1_scale')!.dims).toEqual([]);
    expect(axisOf(old.model, 'w1_DequantizeLinear')).toBeUndefined();
  });
});

describe('quantizeWeightsInt8 on Gemm and MatMul', () => {
  // x[2,6] → Gemm(transB=1, W[5,6]) → MatMul(M[5,4]) → y[2,4]
  function denseModel(): ModelProto {
    const rand = rng(3);
    return makeModel({
      opset: 13,
      graph: {
        name: 'dense',
        node: [
          makeNode('Gemm', ['x', 'W', 'B'], ['h'], { transB: 1 }, 'gemm'),
          makeNode('MatMul', ['h', 'M'], ['y'], {}, 'matmul'),
        ],
        initializer: [
          makeTensor('W', DataType.FLOAT, [5, 6], uniform(rand, 30)),
          makeTensor('B', DataType.FLOAT, [5], uniform(rand, 5)),
          makeTensor('M', DataType.FLOAT, [5, 4], uniform(rand, 20)),
        ],
        input: [makeValueInfo('x', DataType.FLOAT, [2, 6])],
        output: [makeValueInfo('y', DataType.FLOAT, [2, 4])],
        valueInfo: [],
      },
    });
  }

  it('takes axis 0 for Gemm with transB and axis 1 for MatMul, as ORT', async () => {
    const r = quantizeWeightsInt8(denseModel());
    expect(axisOf(r.model, 'W_DequantizeLinear')).toBe(0);
    expect(findInit(r.model, 'W_scale')!.dims).toEqual([5]);
    expect(axisOf(r.model, 'M_DequantizeLinear')).toBe(1);
    expect(findInit(r.model, 'M_scale')!.dims).toEqual([4]);
    const x = uniform(rng(9), 12);
    const ref = await runModel(denseModel(), x, [2, 6]);
    const got = await runModel(r.model, x, [2, 6]);
    expect(sqnrDb(ref.y, got.y)).toBeGreaterThan(30);
    expect(Array.from(tensorValues(findInit(r.model, 'B')!) as Float32Array)).toEqual(Array.from(tensorValues(findInit(denseModel(), 'B')!) as Float32Array));
  });
});
