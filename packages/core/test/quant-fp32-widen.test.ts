import { describe, expect, it } from 'vitest';
import { tensorValues } from '../src/onnx/tensor.js';
import { DataType, type ModelProto } from '../src/onnx/types.js';
import { float16BitsToFloat32 } from '../src/onnx/float16.js';
import { convertToFloat16 } from '../src/quant/fp16.js';
import { hasFloat16Weights, widenFloat16 } from '../src/quant/fp32-widen.js';
import { findInit, imageBatches, relError, runModel, yoloishModel } from './quant-fixtures.js';

const float16Places = (m: ModelProto): string[] => {
  const g = m.graph!;
  return [
    ...g.initializer.filter((t) => t.dataType === DataType.FLOAT16).map((t) => `init ${t.name}`),
    ...[...g.input, ...g.output, ...g.valueInfo].filter((v) => v.type?.tensorType?.elemType === DataType.FLOAT16).map((v) => `value ${v.name}`),
    ...g.node.filter((n) => n.opType === 'Cast' && n.attribute.some((a) => a.name === 'to' && a.i === BigInt(DataType.FLOAT16))).map((n) => `cast ${n.name}`),
  ];
};

describe('widenFloat16', () => {
  const model = yoloishModel();
  const { model: half } = convertToFloat16(model);

  it('leaves no float16 tensor, value or Cast target, and keeps the float16-rounded weights exactly', () => {
    expect(hasFloat16Weights(half)).toBe(true);
    expect(float16Places(half).length).toBeGreaterThan(0);
    const { model: wide, tensors, casts } = widenFloat16(half);
    expect(float16Places(wide)).toEqual([]);
    expect(hasFloat16Weights(wide)).toBe(false);
    expect(tensors).toBe(half.graph!.initializer.filter((t) => t.dataType === DataType.FLOAT16).length);
    expect(casts).toBe(1);
    const w1Half = float16BitsToFloat32(tensorValues(findInit(half, 'w1')!) as Uint16Array);
    expect(Array.from(tensorValues(findInit(wide, 'w1')!) as Float32Array)).toEqual(Array.from(w1Half));
    // the caller's model is untouched
    expect(findInit(half, 'w1')!.dataType).toBe(DataType.FLOAT16);
  });

  it('runs in onnxruntime-node and gives the float16 model’s answer', async () => {
    const [x] = imageBatches(1);
    const ref = await runModel(model, x);
    const got = await runModel(widenFloat16(half).model, x);
    const viaHalf = await runModel(half, x);
    for (const name of ['out', 'relu_out', 'aux']) {
      expect(relError(ref[name], got[name])).toBeLessThan(1e-2);
      // float32 arithmetic on float16 weights: closer to the float16 model than to nothing at all
      expect(relError(viaHalf[name], got[name])).toBeLessThan(1e-2);
    }
  });

  it('changes nothing in a float32 model', () => {
    const { tensors, casts, values } = widenFloat16(model);
    expect([tensors, casts, values]).toEqual([0, 0, 0]);
  });
});
