import { describe, expect, it } from 'vitest';
import { DataType } from '../src/onnx/types.js';
import { quantizeModel } from '../src/quant/quantize.js';
import { findInit, imageBatches, INPUT_SHAPE, runModel, sqnrDb, yoloishModel } from './quant-fixtures.js';

describe('quantizeModel', () => {
  const model = yoloishModel();
  const batches = imageBatches(4);

  it('fp16: converts and reports', async () => {
    const { model: m, report } = await quantizeModel(model, { mode: 'fp16' });
    expect(report.mode).toBe('fp16');
    expect(findInit(m, 'w1')!.dataType).toBe(DataType.FLOAT16);
    expect(report.bytesAfter).toBeLessThan(report.bytesBefore * 0.6);
    expect(report.notes).toEqual([]);
  });

  it('int8-weights: quantizes weights, honouring exclude', async () => {
    const { model: m, report } = await quantizeModel(model, { mode: 'int8-weights', exclude: ['conv1'] });
    expect(report.quantizedWeights).toEqual(['w2', 'w3', 'w4']);
    expect(report.skipped).toEqual([{ node: 'conv1', opType: 'Conv', reason: 'excluded' }]);
    expect(findInit(m, 'w1')!.dataType).toBe(DataType.FLOAT);
    expect(report.bytesAfter).toBeLessThan(report.bytesBefore);
  });

  it('int8: calibrates, quantizes with int8 activations (S8S8) by default, and reports ranges and sensitivity', async () => {
    const stages: string[] = [];
    const { model: m, report } = await quantizeModel(model, {
      mode: 'int8',
      calibration: { batches: () => batches, inputShape: INPUT_SHAPE },
      method: 'minmax',
      exclude: ['pow'],
      sensitivity: { maxBatches: 2 },
      onProgress: (stage, n) => stages.push(`${stage}:${n}`),
    });
    expect(stages).toEqual(['calibrate:1', 'calibrate:2', 'calibrate:3', 'calibrate:4', 'sensitivity:1', 'sensitivity:2']);
    expect(report.method).toBe('minmax');
    expect(report.batches).toBe(4);
    expect(report.ranges!.has('c1')).toBe(true);
    expect(findInit(m, 'c1_zero_point')!.dataType).toBe(DataType.INT8);
    expect(report.quantizedTensors).toContain('s1');
    expect(report.skipped).toEqual([{ node: 'pow', opType: 'Pow', reason: 'excluded' }]);
    expect(report.sensitivity!.length).toBe(report.quantizedTensors.length);
    const ref = await runModel(model, batches[0]);
    const got = await runModel(m, batches[0]);
    expect(sqnrDb(ref.out, got.out)).toBeGreaterThan(20);
  });

  it('int8: activationType uint8 gives U8S8 (what ORT fuses on x86)', async () => {
    const { model: m } = await quantizeModel(model, {
      mode: 'int8',
      calibration: { batches, inputShape: INPUT_SHAPE },
      activationType: 'uint8',
    });
    expect(findInit(m, 'c1_zero_point')!.dataType).toBe(DataType.UINT8);
  });

  it('checks its options', async () => {
    await expect(quantizeModel(model, { mode: 'int4' as 'int8' })).rejects.toThrow(RangeError);
    await expect(quantizeModel(model, { mode: 'int8' })).rejects.toThrow(/calibration is required/);
    function* once(): Generator<Float32Array> {
      yield* batches;
    }
    await expect(
      quantizeModel(model, { mode: 'int8', calibration: { batches: once(), inputShape: INPUT_SHAPE }, sensitivity: true }),
    ).rejects.toThrow(/fresh iterable/);
  });
});
