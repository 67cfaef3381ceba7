import { describe, expect, it } from 'vitest';
import { calibrate, selectCalibrationTensors } from '../src/quant/calibration-run.js';
import { withExtraOutputs } from '../src/quant/ort-run.js';
import { imageBatches, INPUT_SHAPE, runModel, yoloishModel } from './quant-fixtures.js';

function minMax(arrays: Float32Array[]): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (const a of arrays) for (const v of a) (min = Math.min(min, v)), (max = Math.max(max, v));
  return { min, max };
}

describe('selectCalibrationTensors', () => {
  const model = yoloishModel();

  it('takes the float inputs and outputs of the ops that will be quantized, plus the graph input', () => {
    expect(selectCalibrationTensors(model)).toEqual([
      'images', 'c1', 'sig1', 's1', 'c2', 'sig2', 's2', 'mp', 'up', 'cat', 'c3', 'sum', 'flat', 'out', 'c4', 'relu_out',
    ]);
  });

  it('leaves out excluded nodes and unselected op types', () => {
    const t = selectCalibrationTensors(model, { opTypes: ['Conv'], exclude: [/conv[34]/] });
    expect(t).toEqual(['images', 'c1', 's1', 'c2']);
  });
});

describe('calibrate', () => {
  const model = yoloishModel();
  const batches = imageBatches(5);

  it('collects min/max of every selected tensor over all batches, as ORT running them would give', async () => {
    const progress: number[] = [];
    const r = await calibrate(model, batches, { method: 'minmax', inputShape: INPUT_SHAPE, onProgress: (n) => progress.push(n) });
    expect(r.batches).toBe(5);
    expect(progress).toEqual([1, 2, 3, 4, 5]);
    expect(r.collector.method).toBe('minmax');
    expect([...r.ranges.keys()]).toEqual(r.tensors);
    expect(r.ranges.get('images')).toEqual(minMax(batches));
    const probe = withExtraOutputs(model, ['c2', 'cat']);
    const runs = await Promise.all(batches.map((b) => runModel(probe, b, INPUT_SHAPE, { graphOptimizationLevel: 'basic' })));
    for (const t of ['c2', 'cat', 'out', 'relu_out']) expect(r.ranges.get(t), t).toEqual(minMax(runs.map((o) => o[t])));
  });

  it('reads async iterables and honours an explicit tensor list', async () => {
    async function* gen(): AsyncGenerator<Float32Array> {
      for (const b of batches.slice(0, 2)) yield b;
    }
    const r = await calibrate(model, gen(), { method: 'percentile', inputShape: INPUT_SHAPE, tensors: ['s2', 'aux'] });
    expect(r.tensors).toEqual(['s2', 'aux']);
    expect([...r.ranges.keys()]).toEqual(['s2', 'aux']);
    const mm = await calibrate(model, batches.slice(0, 2), { method: 'minmax', inputShape: INPUT_SHAPE, tensors: ['s2'] });
    // percentile ranges are clamped to the observed range
    expect(r.ranges.get('s2')!.max).toBeLessThanOrEqual(mm.ranges.get('s2')!.max);
    expect(r.ranges.get('s2')!.min).toBeGreaterThanOrEqual(mm.ranges.get('s2')!.min);
  });

  it('rejects no batches, batches of the wrong size and unknown inputs', async () => {
    const opts = { method: 'minmax' as const, inputShape: INPUT_SHAPE };
    await expect(calibrate(model, [], opts)).rejects.toMatchObject({ code: 'QUANT_CALIBRATION_EMPTY' });
    await expect(calibrate(model, [new Float32Array(10)], opts)).rejects.toMatchObject({ code: 'QUANT_INPUT_MISMATCH' });
    await expect(calibrate(model, batches, { ...opts, inputName: 'nope' })).rejects.toMatchObject({ code: 'QUANT_INPUT_MISMATCH' });
    await expect(calibrate(model, batches, { ...opts, inputShape: [1, -3] })).rejects.toThrow(TypeError);
    await expect(calibrate(model, batches, { ...opts, method: 'mse' as 'minmax' })).rejects.toThrow(RangeError);
  });
});
