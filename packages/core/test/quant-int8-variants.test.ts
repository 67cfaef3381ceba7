// Issue 17: the S8S8 and U8S8 int8 files of an export come from ONE calibration; only the activation type differs.
import { beforeAll, describe, expect, it } from 'vitest';
import { DataType, type ModelProto, type TensorProto } from '../src/onnx/types.js';
import type { TensorRange } from '../src/quant/calibrate/types.js';
import { calibrate } from '../src/quant/calibration-run.js';
import { quantizeQdq, type QdqResult } from '../src/quant/qdq.js';
import { imageBatches, initValues, INPUT_SHAPE, runModel, sqnrDb, yoloishModel } from './quant-fixtures.js';

const inits = (m: ModelProto): Map<string, TensorProto> => new Map(m.graph!.initializer.map((t) => [t.name, t]));

describe('S8S8 and U8S8 from one calibration', () => {
  const model = yoloishModel(3);
  let ranges: Map<string, TensorRange>;
  let s8: QdqResult;
  let u8: QdqResult;
  beforeAll(async () => {
    ({ ranges } = await calibrate(model, imageBatches(6, 11), { method: 'minmax', inputShape: INPUT_SHAPE }));
    s8 = quantizeQdq(model, { ranges, activationType: 'int8' });
    u8 = quantizeQdq(model, { ranges, activationType: 'uint8' });
  });

  it('has the same graph, the same scales and weights; activation zero points are uint8 = int8 + 128', () => {
    expect(u8.model.graph!.node.map((n) => [n.opType, n.name, n.input, n.output])).toEqual(
      s8.model.graph!.node.map((n) => [n.opType, n.name, n.input, n.output]));
    expect(u8.quantizedTensors).toEqual(s8.quantizedTensors);
    const a = inits(s8.model);
    const b = inits(u8.model);
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    let zeroPoints = 0;
    for (const [name, t] of a) {
      const other = b.get(name)!;
      if (s8.quantizedTensors.some((q) => name === `${q}_zero_point`)) {
        zeroPoints++;
        expect(t.dataType, name).toBe(DataType.INT8);
        expect(other.dataType, name).toBe(DataType.UINT8);
        expect(initValues(u8.model, name), name).toEqual(initValues(s8.model, name).map((z) => z + 128));
      } else {
        // scales, int8 weights, int32 biases, float constants: byte for byte the same
        expect(other.dataType, name).toBe(t.dataType);
        expect(initValues(u8.model, name), name).toEqual(initValues(s8.model, name));
      }
    }
    expect(zeroPoints).toBeGreaterThan(5);
    // and the scales really are the calibrated ones, not recomputed differently per type
    expect(initValues(u8.model, 'c1_scale')).toEqual(initValues(s8.model, 'c1_scale'));
  });

  it('both run in ONNX Runtime close to the float model', async () => {
    const input = imageBatches(1, 99)[0]!;
    const ref = await runModel(model, input);
    for (const q of [s8, u8]) {
      const out = await runModel(q.model, input);
      expect(sqnrDb(ref.out!, out.out!)).toBeGreaterThan(25);
      expect(sqnrDb(ref.relu_out!, out.relu_out!)).toBeGreaterThan(25);
    }
    // the two variants dequantize to the same values (x − zp) · scale up to float rounding
    const o8 = await runModel(s8.model, input);
    const ou = await runModel(u8.model, input);
    expect(sqnrDb(o8.out!, ou.out!)).toBeGreaterThan(60);
  });
});
