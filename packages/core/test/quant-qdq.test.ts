import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeModel } from '../src/onnx/decode.js';
import { encodeModel } from '../src/onnx/encode.js';
import { makeModel, makeNode, makeValueInfo } from '../src/onnx/graph-utils.js';
import { makeTensor } from '../src/onnx/tensor.js';
import { DataType, type ModelProto, type NodeProto } from '../src/onnx/types.js';
import type { TensorRange } from '../src/quant/calibrate/types.js';
import { calibrate } from '../src/quant/calibration-run.js';
import { quantizeQdq, type QdqResult } from '../src/quant/qdq.js';
import { computeScaleZeroPoint, quantizeWeightsPerChannel, roundHalfEven } from '../src/quant/qparams.js';
import { QuantError } from '../src/quant/quant-error.js';
import { findInit, imageBatches, initValues, INPUT_SHAPE, rng, runModel, sqnrDb, uniform, yoloishModel } from './quant-fixtures.js';

const nodesOf = (m: ModelProto, op: string): NodeProto[] => m.graph!.node.filter((n) => n.opType === op);
const producerOf = (m: ModelProto, t: string): NodeProto | undefined => m.graph!.node.find((n) => n.output.includes(t));
const readersOf = (m: ModelProto, t: string): NodeProto[] => m.graph!.node.filter((n) => n.input.includes(t));

/** Op types (with domain) of the model ORT actually runs after its graph optimizations. */
async function optimizedOps(model: ModelProto): Promise<string[]> {
  const path = join(tmpdir(), `kd-quant-opt-${process.pid}-${Math.random().toString(36).slice(2)}.onnx`);
  const s = await ort.InferenceSession.create(encodeModel(model), { optimizedModelFilePath: path, graphOptimizationLevel: 'all', logSeverityLevel: 3 });
  await s.release();
  try {
    return decodeModel(new Uint8Array(await readFile(path))).graph!.node.map((n) => n.opType);
  } finally {
    await rm(path, { force: true });
  }
}

describe('quantizeQdq on a YOLO-like graph', () => {
  const model = yoloishModel();
  const batches = imageBatches(8);
  let ranges: Map<string, TensorRange>;
  let q: QdqResult;
  beforeAll(async () => {
    ({ ranges } = await calibrate(model, batches, { method: 'minmax', inputShape: INPUT_SHAPE }));
    q = quantizeQdq(model, { ranges });
  });

  it('quantizes every activation of the registry ops and reports Pow as unsupported', () => {
    expect(q.quantizedTensors).toEqual(['images', 'c1', 'sig1', 's1', 'c2', 'sig2', 's2', 'mp', 'up', 'cat', 'c3', 'sum', 'flat', 'out', 'relu_out']);
    expect(q.quantizedWeights).toEqual(['w1', 'w2', 'w3', 'w4', 'b1', 'b2', 'b3', 'b4']);
    expect(q.skipped).toEqual([{ node: 'pow', opType: 'Pow', reason: 'op type not in the QDQ registry' }]);
    expect(q.warnings).toEqual([]);
    expect(producerOf(q.model, 'aux')!.opType).toBe('Pow');
  });

  it('puts one QuantizeLinear → DequantizeLinear pair on each activation, read by all its readers', () => {
    for (const t of q.quantizedTensors.filter((x) => x !== 'out' && x !== 'relu_out')) {
      const qs = nodesOf(q.model, 'QuantizeLinear').filter((n) => n.input[0] === t);
      expect(qs, t).toHaveLength(1);
      expect(qs[0].name).toBe(`${t}_QuantizeLinear`);
      const dqs = readersOf(q.model, qs[0].output[0]);
      expect(dqs.map((n) => n.opType)).toEqual(['DequantizeLinear']);
      expect(dqs[0].output).toEqual([`${t}_DequantizeLinear_Output`]);
      // the float tensor now feeds only its QuantizeLinear
      expect(readersOf(q.model, t)).toEqual(qs);
    }
    expect(readersOf(q.model, 's1_DequantizeLinear_Output').map((n) => n.name).sort()).toEqual(['add', 'concat', 'conv2']);
  });

  it('derives activation scales and zero points from the ranges with computeScaleZeroPoint (int8, asymmetric)', () => {
    for (const t of ['images', 'c1', 'sig1', 'cat', 'sum', 'relu_out']) {
      const r = ranges.get(t)!;
      const want = computeScaleZeroPoint(r.min, r.max, { type: 'int8', symmetric: false });
      expect(initValues(q.model, `${t}_scale`), t).toEqual([want.scale]);
      expect(findInit(q.model, `${t}_zero_point`)!.dataType).toBe(DataType.INT8);
      expect(initValues(q.model, `${t}_zero_point`), t).toEqual([want.zeroPoint]);
    }
    expect(initValues(q.model, 'images_zero_point')).toEqual([-128]); // inputs in [0, 1)
  });

  it("lets MaxPool, Resize, Reshape and Transpose outputs reuse their input's parameters", () => {
    const params = (t: string): string[] => nodesOf(q.model, 'QuantizeLinear').find((n) => n.name === `${t}_QuantizeLinear`)!.input.slice(1);
    expect(params('mp')).toEqual(['s2_scale', 's2_zero_point']);
    expect(params('up')).toEqual(['s2_scale', 's2_zero_point']);
    expect(params('flat')).toEqual(['sum_scale', 'sum_zero_point']);
    expect(params('out')).toEqual(['sum_scale', 'sum_zero_point']);
    expect(findInit(q.model, 'mp_scale')).toBeUndefined();
  });

  it('stores weights as int8, symmetric, one scale per output channel (axis 0)', () => {
    const want = quantizeWeightsPerChannel(Float32Array.from(initValues(model, 'w2')), [8, 8, 3, 3], 0);
    expect(findInit(q.model, 'w2_quantized')!.dataType).toBe(DataType.INT8);
    expect(initValues(q.model, 'w2_quantized')).toEqual(Array.from(want.data));
    expect(initValues(q.model, 'w2_scale')).toEqual(Array.from(want.scales));
    // Symmetric: every zero point is 0, which DequantizeLinear assumes when the input is left out.
    expect(want.zeroPoints.every((z) => z === 0)).toBe(true);
    expect(findInit(q.model, 'w2_zero_point')).toBeUndefined();
    const dq = q.model.graph!.node.find((n) => n.name === 'w2_DequantizeLinear')!;
    expect(dq.input).toEqual(['w2_quantized', 'w2_scale']);
    expect(Number(dq.attribute.find((a) => a.name === 'axis')!.i)).toBe(0);
    expect(findInit(q.model, 'w2')).toBeUndefined();
    expect(q.model.graph!.node.find((n) => n.name === 'conv2')!.input[1]).toBe('w2_DequantizeLinear_Output');
  });

  it('stores biases as int32 round(bias / (input_scale · weight_scale)) per channel with zero point 0', () => {
    const b = initValues(model, 'b2');
    const inScale = initValues(q.model, 's1_scale')[0];
    const wScale = initValues(q.model, 'w2_scale');
    const scale = wScale.map((s) => Math.fround(inScale * s));
    expect(findInit(q.model, 'b2_quantized')!.dataType).toBe(DataType.INT32);
    expect(initValues(q.model, 'b2_quantized_scale')).toEqual(scale);
    expect(initValues(q.model, 'b2_quantized')).toEqual(b.map((v, c) => roundHalfEven(v / scale[c])));
    // Zero point 0 by leaving the input out (DequantizeLinear-13 on int32), not an array of zeros.
    expect(findInit(q.model, 'b2_quantized_zero_point')).toBeUndefined();
    const dq = q.model.graph!.node.find((n) => n.name === 'b2_DequantizeLinear')!;
    expect(dq.input).toEqual(['b2_quantized', 'b2_quantized_scale']);
    expect(Number(dq.attribute.find((a) => a.name === 'axis')!.i)).toBe(0);
    expect(q.model.graph!.node.find((n) => n.name === 'conv2')!.input[2]).toBe(dq.output[0]);
  });

  it('keeps graph output names on the DequantizeLinear and folds the Relu into the Conv output', () => {
    expect(producerOf(q.model, 'out')!.opType).toBe('DequantizeLinear');
    expect(producerOf(q.model, 'relu_out')!.opType).toBe('DequantizeLinear');
    expect(nodesOf(q.model, 'Relu')).toHaveLength(0);
    expect(q.model.graph!.node.find((n) => n.name === 'conv4')!.output).toEqual(['relu_out_QuantizeLinear_Input']);
    expect(producerOf(q.model, 'relu_out_QuantizeLinear_Input')!.name).toBe('conv4');
    expect(q.model.graph!.output.map((o) => o.name)).toEqual(['out', 'relu_out', 'aux']);
  });

  it('runs in onnxruntime-node with SQNR above 20 dB on every output', async () => {
    for (const x of batches.slice(0, 3)) {
      const ref = await runModel(model, x);
      const got = await runModel(q.model, x);
      for (const o of ['out', 'relu_out', 'aux']) expect(sqnrDb(ref[o], got[o]), o).toBeGreaterThan(20);
      // the Relu folded into the quantization range still clamps at zero
      expect(Math.min(...got.relu_out)).toBe(0);
    }
  });

  it('is fused by onnxruntime into QLinearConv: all four with uint8 activations, some with int8', async () => {
    const u8 = quantizeQdq(model, { ranges, activationType: 'uint8' });
    expect(findInit(u8.model, 'c1_zero_point')!.dataType).toBe(DataType.UINT8);
    const opsU8 = await optimizedOps(u8.model);
    expect(opsU8.filter((o) => o === 'QLinearConv')).toHaveLength(4);
    expect(opsU8).not.toContain('Conv');
    expect(opsU8).toContain('QLinearSigmoid');
    // x86 ORT fuses int8 activations only where its S8→U8 rewrite applies (tensors with a single reader)
    expect((await optimizedOps(q.model)).filter((o) => o === 'QLinearConv').length).toBeGreaterThanOrEqual(1);
  });

  it('leaves excluded nodes float: float weights and bias, no Q/DQ of their own', () => {
    const e = quantizeQdq(model, { ranges, exclude: ['conv4'] });
    const conv4 = e.model.graph!.node.find((n) => n.name === 'conv4')!;
    expect(conv4.input.slice(1)).toEqual(['w4', 'b4']);
    expect(findInit(e.model, 'w4')!.dataType).toBe(DataType.FLOAT);
    expect(conv4.output).toEqual(['c4']);
    expect(nodesOf(e.model, 'Relu')).toHaveLength(1);
    expect(producerOf(e.model, 'relu_out')!.opType).toBe('Relu');
    expect(e.quantizedTensors).not.toContain('relu_out');
    expect(e.skipped).toContainEqual({ node: 'conv4', opType: 'Conv', reason: 'excluded' });
    expect(e.skipped).toContainEqual({ node: 'relu', opType: 'Relu', reason: 'input not quantized' });
    // 'sum' is quantized for Add's other readers; like ORT, the excluded Conv reads it dequantized...
    expect(conv4.input[0]).toBe('sum_DequantizeLinear_Output');
    // ...unless asked to read the float value
    const f = quantizeQdq(model, { ranges, exclude: [/^conv4$/], excludedReadFloat: true });
    expect(f.model.graph!.node.find((n) => n.name === 'conv4')!.input[0]).toBe('sum');
  });

  it('throws QUANT_RANGE_MISSING when a tensor to quantize has no range', () => {
    const partial = new Map(ranges);
    partial.delete('c2');
    expect(() => quantizeQdq(model, { ranges: partial })).toThrow(expect.objectContaining({ code: 'QUANT_RANGE_MISSING' }));
    expect(() => quantizeQdq(model, { ranges: partial })).toThrow(QuantError);
    expect(() => quantizeQdq(model, { ranges: partial, opTypes: ['Conv'] })).toThrow(/'c2'/);
  });

  it('quantizes only the selected op types', () => {
    const convOnly = quantizeQdq(model, { ranges, opTypes: ['Conv'] });
    expect(convOnly.quantizedTensors).toEqual(['images', 'c1', 's1', 'c2', 'cat', 'c3', 'sum', 'c4']);
    expect(convOnly.skipped.find((s) => s.node === 'sig1')!.reason).toBe('op type not selected');
  });

  it('makes activations symmetric on request and then keeps the Relu', () => {
    const s = quantizeQdq(model, { ranges, activationSymmetric: true });
    expect(initValues(s.model, 'c1_zero_point')).toEqual([0]);
    const r = ranges.get('c1')!;
    expect(initValues(s.model, 'c1_scale')).toEqual([computeScaleZeroPoint(r.min, r.max, { type: 'int8', symmetric: true }).scale]);
    expect(nodesOf(s.model, 'Relu')).toHaveLength(1);
  });

  it('falls back to per-tensor weights below opset 13, with a warning', () => {
    const old = yoloishModel(1, 12);
    const r = quantizeQdq(old, { ranges });
    expect(findInit(r.model, 'w1_scale')!.dims).toEqual([]);
    expect(findInit(r.model, 'b1_quantized_scale')!.dims).toEqual([]);
    expect(r.warnings).toEqual(['opset 12 has no per-axis DequantizeLinear (needs 13); weights are quantized per tensor']);
  });
});

describe('quantizeQdq on Gemm, MatMul, Softmax and tiny weights', () => {
  // x[2,6] → Gemm(transB, beta 0.5) → MatMul → Softmax
  function denseModel(): ModelProto {
    const rand = rng(11);
    return makeModel({
      opset: 13,
      graph: {
        name: 'dense',
        node: [
          makeNode('Gemm', ['x', 'W', 'B'], ['h'], { transB: 1, beta: { float: 0.5 } }, 'gemm'),
          makeNode('MatMul', ['h', 'M'], ['z'], {}, 'matmul'),
          makeNode('Softmax', ['z'], ['p'], { axis: 1 }, 'softmax'),
        ],
        initializer: [
          makeTensor('W', DataType.FLOAT, [5, 6], uniform(rand, 30)),
          makeTensor('B', DataType.FLOAT, [5], uniform(rand, 5)),
          makeTensor('M', DataType.FLOAT, [5, 4], uniform(rand, 20)),
        ],
        input: [makeValueInfo('x', DataType.FLOAT, [2, 6])],
        output: [makeValueInfo('p', DataType.FLOAT, [2, 4])],
        valueInfo: [],
      },
    });
  }

  it('uses ORT axes, folds Gemm beta into the int32 bias and pins Softmax to [0, 1]', async () => {
    const model = denseModel();
    const xs = Array.from({ length: 4 }, (_, i) => uniform(rng(20 + i), 12));
    const { ranges } = await calibrate(model, xs, { method: 'minmax', inputShape: [2, 6] });
    const q = quantizeQdq(model, { ranges });
    const axis = (n: string): number => Number(q.model.graph!.node.find((x) => x.name === n)!.attribute[0].i);
    expect(axis('W_DequantizeLinear')).toBe(0);
    expect(axis('M_DequantizeLinear')).toBe(1);
    const inScale = initValues(q.model, 'x_scale')[0];
    const wScale = initValues(q.model, 'W_scale');
    const bScale = wScale.map((s) => Math.fround(inScale * s));
    expect(initValues(q.model, 'B_quantized_scale')).toEqual(bScale);
    const B = initValues(model, 'B');
    expect(initValues(q.model, 'B_quantized')).toEqual(B.map((v, c) => roundHalfEven(Math.fround(v * 0.5) / bScale[c])));
    expect(q.model.graph!.node.find((n) => n.name === 'gemm')!.attribute.find((a) => a.name === 'beta')!.f).toBe(1);
    expect(initValues(q.model, 'p_scale')).toEqual([computeScaleZeroPoint(0, 1, { type: 'int8', symmetric: false }).scale]);
    const ref = await runModel(model, xs[0], [2, 6]);
    const got = await runModel(q.model, xs[0], [2, 6]);
    expect(sqnrDb(ref.p, got.p)).toBeGreaterThan(20);
  });

  it('widens a weight scale when the int32 bias would overflow (ORT _adjust_weight_scale_for_int32_bias)', async () => {
    // Weights ~1e-9 give weight scales ~1e-11: bias 5 / (input_scale · 1e-11) is far beyond int32.
    const model = makeModel({
      opset: 13,
      graph: {
        name: 'tiny',
        node: [makeNode('Conv', ['x', 'w', 'b'], ['y'], { kernel_shape: [1, 1] }, 'conv')],
        initializer: [
          makeTensor('w', DataType.FLOAT, [2, 1, 1, 1], [1e-9, -2e-9]),
          makeTensor('b', DataType.FLOAT, [2], [5, -4.5]),
        ],
        input: [makeValueInfo('x', DataType.FLOAT, [1, 1, 4, 4])],
        output: [makeValueInfo('y', DataType.FLOAT, [1, 2, 4, 4])],
        valueInfo: [],
      },
    });
    const ranges = new Map([['x', { min: 0, max: 1 }], ['y', { min: -5, max: 5 }]]);
    const q = quantizeQdq(model, { ranges });
    const bias = initValues(q.model, 'b_quantized');
    for (const v of bias) expect(Math.abs(v)).toBeLessThan(2 ** 31 - 1);
    const bScale = initValues(q.model, 'b_quantized_scale');
    expect(bias[0] * bScale[0]).toBeCloseTo(5, 5);
    expect(bias[1] * bScale[1]).toBeCloseTo(-4.5, 5);
    expect(initValues(q.model, 'w_scale')[0]).toBeGreaterThan(1e-9 / 127);
    const x = Float32Array.from({ length: 16 }, (_, i) => i / 16);
    const got = await runModel(q.model, x, [1, 1, 4, 4]);
    expect(got.y[0]).toBeCloseTo(5, 1);
  });

  it('checks its arguments', () => {
    expect(() => quantizeQdq(denseModel(), {} as never)).toThrow(TypeError);
    expect(() => quantizeQdq(denseModel(), { ranges: new Map(), activationType: 'int4' as 'int8' })).toThrow(RangeError);
  });
});
