import { describe, expect, it } from 'vitest';
import { float16BitsToFloat32 } from '../src/onnx/float16.js';
import { makeModel, makeNode, makeValueInfo } from '../src/onnx/graph-utils.js';
import { makeTensor, tensorValues } from '../src/onnx/tensor.js';
import { DataType, type ModelProto } from '../src/onnx/types.js';
import { convertToFloat16 } from '../src/quant/fp16.js';
import { findInit, imageBatches, relError, runModel, yoloishModel } from './quant-fixtures.js';

const castTargets = (m: ModelProto): number[] =>
  m.graph!.node.filter((n) => n.opType === 'Cast').map((n) => Number(n.attribute.find((a) => a.name === 'to')!.i));

describe('convertToFloat16', () => {
  const model = yoloishModel();
  const { model: half, notes } = convertToFloat16(model);

  it('stores float weights as float16 and keeps the Resize scales and int64 shapes as they were', () => {
    for (const name of ['w1', 'b1', 'w2', 'w3', 'b4', 'two']) expect(findInit(half, name)!.dataType).toBe(DataType.FLOAT16);
    expect(findInit(half, 'scales')!.dataType).toBe(DataType.FLOAT);
    expect(findInit(half, 'shape')!.dataType).toBe(DataType.INT64);
    const w1 = tensorValues(findInit(model, 'w1')!) as Float32Array;
    const w1h = float16BitsToFloat32(tensorValues(findInit(half, 'w1')!) as Uint16Array);
    expect(relError(w1, w1h)).toBeLessThan(1e-3);
    expect(notes).toEqual([]);
  });

  it('keeps float32 graph inputs and outputs behind Cast nodes', () => {
    const g = half.graph!;
    expect(g.input.map((v) => v.type!.tensorType!.elemType)).toEqual([DataType.FLOAT]);
    expect(g.output.map((v) => v.type!.tensorType!.elemType)).toEqual([DataType.FLOAT, DataType.FLOAT, DataType.FLOAT]);
    // one cast in, one out per output
    expect(castTargets(half).filter((t) => t === DataType.FLOAT16)).toHaveLength(1);
    expect(castTargets(half).filter((t) => t === DataType.FLOAT)).toHaveLength(3);
    expect(g.node.find((n) => n.opType === 'Conv')!.input[0]).not.toBe('images');
    // graph outputs keep their names, written by the Casts
    for (const o of ['out', 'relu_out', 'aux']) expect(g.node.find((n) => n.output.includes(o))!.opType).toBe('Cast');
  });

  it('runs in onnxruntime-node within 1e-2 of the float model', async () => {
    const [x] = imageBatches(1);
    const ref = await runModel(model, x);
    const got = await runModel(half, x);
    for (const name of ['out', 'relu_out', 'aux']) expect(relError(ref[name], got[name])).toBeLessThan(1e-2);
  });

  it('leaves the input float16 when keepIoTypes is false', async () => {
    const { model: m } = convertToFloat16(model, { keepIoTypes: false });
    expect(m.graph!.input[0].type!.tensorType!.elemType).toBe(DataType.FLOAT16);
    expect(m.graph!.output.map((v) => v.type!.tensorType!.elemType)).toEqual([DataType.FLOAT16, DataType.FLOAT16, DataType.FLOAT16]);
    expect(castTargets(m)).toEqual([]);
  });

  it('does not touch the caller model', () => {
    expect(findInit(model, 'w1')!.dataType).toBe(DataType.FLOAT);
    expect(model.graph!.node.some((n) => n.opType === 'Cast')).toBe(false);
  });
});

describe('convertToFloat16 rules', () => {
  // x → Mul(big) → Range-free shape path: Constant value_float, Cast(to float), a blocked Max, ConstantOfShape.
  function rulesModel(): ModelProto {
    return makeModel({
      opset: 13,
      graph: {
        name: 'rules',
        node: [
          makeNode('Constant', [], ['k'], { value_float: { float: 0.5 } }, 'const_k'),
          makeNode('Mul', ['x', 'big'], ['m'], {}, 'mul_big'),
          makeNode('Mul', ['m', 'k'], ['mk'], {}, 'mul_k'),
          makeNode('Shape', ['x'], ['shp'], {}, 'shape'),
          makeNode('Cast', ['shp'], ['shp_f'], { to: DataType.FLOAT }, 'cast_shape'),
          makeNode('ConstantOfShape', ['shp'], ['ones'], { value: makeTensor('', DataType.FLOAT, [1], [1]) }, 'ones'),
          makeNode('Max', ['mk', 'ones'], ['mx'], {}, 'max'),
          makeNode('ReduceSum', ['shp_f'], ['n'], { keepdims: 0 }, 'numel'),
          makeNode('Add', ['mx', 'n'], ['y'], {}, 'add_n'),
        ],
        initializer: [makeTensor('big', DataType.FLOAT, [2], [1e6, 1e-9])],
        input: [makeValueInfo('x', DataType.FLOAT, [2])],
        output: [makeValueInfo('y', DataType.FLOAT, [2])],
        valueInfo: [],
      },
    });
  }

  it('clamps out-of-range values and reports them', () => {
    const { model, notes } = convertToFloat16(rulesModel());
    const big = float16BitsToFloat32(tensorValues(findInit(model, 'big')!) as Uint16Array);
    expect(big[0]).toBe(65504);
    expect(big[1]).toBeGreaterThan(0);
    expect(notes.some((n) => n.includes("initializer 'big'") && n.includes('1 value(s) beyond ±65504'))).toBe(true);
  });

  it('converts Constant value_float, Cast targets and ConstantOfShape values; blocked Max gets casts', () => {
    const { model } = convertToFloat16(rulesModel());
    const g = model.graph!;
    const k = g.node.find((n) => n.name === 'const_k')!;
    expect(k.attribute[0].name).toBe('value');
    expect(k.attribute[0].t!.dataType).toBe(DataType.FLOAT16);
    expect(Number(g.node.find((n) => n.name === 'cast_shape')!.attribute[0].i)).toBe(DataType.FLOAT16);
    expect(g.node.find((n) => n.name === 'ones')!.attribute[0].t!.dataType).toBe(DataType.FLOAT16);
    const max = g.node.find((n) => n.name === 'max')!;
    for (const i of max.input) expect(g.node.find((n) => n.output.includes(i))!.opType).toBe('Cast');
  });

  it('runs in onnxruntime-node with the same results', async () => {
    const x = Float32Array.of(1e-3, -2e-3);
    const ref = await runModel(rulesModel(), x, [2]);
    const got = await runModel(convertToFloat16(rulesModel()).model, x, [2]);
    // big[0] = 1e6 became 65504: x0 · 65504 · 0.5 vs x0 · 1e6 · 0.5 (then max with 1, plus 2)
    expect(got.y[0]).toBeCloseTo(Math.max(1e-3 * 65504 * 0.5, 1) + 2, 1);
    expect(got.y[1]).toBeCloseTo(ref.y[1], 3);
  });

  it('keeps any op type listed in blockOps in float32', async () => {
    const model = yoloishModel();
    const { model: half, notes } = convertToFloat16(model, { blockOps: ['Sigmoid'] });
    const sig = half.graph!.node.find((n) => n.name === 'sig1')!;
    const src = half.graph!.node.find((n) => n.output.includes(sig.input[0]))!;
    expect(src.opType).toBe('Cast');
    expect(notes.some((n) => n.includes('kept in float32 (Sigmoid)'))).toBe(true);
    const [x] = imageBatches(1);
    const ref = await runModel(model, x);
    const got = await runModel(half, x);
    expect(relError(ref.out, got.out)).toBeLessThan(1e-2);
  });
});
