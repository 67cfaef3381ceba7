import { beforeAll, describe, expect, it } from 'vitest';
import type { ModelProto } from '../src/onnx/types.js';
import { calibrate } from '../src/quant/calibration-run.js';
import { quantizeQdq } from '../src/quant/qdq.js';
import { formatSensitivityTable, sensitivityReport, type SensitivityRow } from '../src/quant/sensitivity.js';
import { imageBatches, INPUT_SHAPE, runModel, yoloishModel } from './quant-fixtures.js';

describe('sensitivityReport', () => {
  const model = yoloishModel();
  const batches = imageBatches(4);
  let qdq: ModelProto;
  let quantized: string[];
  let rows: SensitivityRow[];
  beforeAll(async () => {
    const { ranges } = await calibrate(model, batches, { method: 'minmax', inputShape: INPUT_SHAPE });
    ({ model: qdq, quantizedTensors: quantized } = quantizeQdq(model, { ranges }));
    rows = await sensitivityReport(model, qdq, batches, { inputShape: INPUT_SHAPE });
  });

  it('has one row per quantized activation, worst SQNR first, named after the float model', () => {
    expect(rows.map((r) => r.tensor).sort()).toEqual([...quantized].sort());
    for (let i = 1; i < rows.length; i++) expect(rows[i].sqnrDb).toBeGreaterThanOrEqual(rows[i - 1].sqnrDb);
    expect(rows.find((r) => r.tensor === 'c1')).toMatchObject({ node: 'conv1', opType: 'Conv' });
    expect(rows.find((r) => r.tensor === 'images')).toMatchObject({ node: '', opType: 'input' });
    expect(rows.find((r) => r.tensor === 'relu_out')).toMatchObject({ node: 'relu', opType: 'Relu' });
    for (const r of rows) {
      expect(r.sqnrDb).toBeGreaterThan(20);
      expect(r.relL2).toBeCloseTo(10 ** (-r.sqnrDb / 20), 10);
      expect(r.maxAbs).toBeGreaterThan(0);
      expect(Number.isFinite(r.qdqSqnrDb)).toBe(true);
    }
  });

  it('matches SQNR, relative L2 and max error computed from the two models outputs by hand', async () => {
    let s = 0;
    let e = 0;
    let maxAbs = 0;
    for (const b of batches) {
      const basic = { graphOptimizationLevel: 'basic' } as const;
      const x = (await runModel(model, b, INPUT_SHAPE, basic)).out;
      const y = (await runModel(qdq, b, INPUT_SHAPE, basic)).out;
      for (let i = 0; i < x.length; i++) {
        s += x[i] * x[i];
        e += (x[i] - y[i]) ** 2;
        maxAbs = Math.max(maxAbs, Math.abs(x[i] - y[i]));
      }
    }
    const row = rows.find((r) => r.tensor === 'out')!;
    expect(row.sqnrDb).toBeCloseTo(10 * Math.log10(s / e), 6);
    expect(row.relL2).toBeCloseTo(Math.sqrt(e / s), 8);
    expect(row.maxAbs).toBeCloseTo(maxAbs, 6);
  });

  it('restricts to given tensors and batches', async () => {
    const few = await sensitivityReport(model, qdq, batches, { inputShape: INPUT_SHAPE, tensors: ['c1', 'sum'], maxBatches: 1 });
    expect(few.map((r) => r.tensor).sort()).toEqual(['c1', 'sum']);
    await expect(sensitivityReport(model, model, batches, { inputShape: INPUT_SHAPE })).rejects.toMatchObject({ code: 'QUANT_MODEL_INVALID' });
    await expect(sensitivityReport(model, qdq, [], { inputShape: INPUT_SHAPE })).rejects.toMatchObject({ code: 'QUANT_CALIBRATION_EMPTY' });
  });

  it('formats a table, worst rows first, with a line for the rows left out', () => {
    const text = formatSensitivityTable(rows, { limit: 3 });
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^tensor\s+op\s+SQNR dB\s+rel L2\s+max \|err\|\s+QDQ SQNR dB$/);
    expect(lines).toHaveLength(2 + 3 + 1);
    expect(lines[2].startsWith(rows[0].tensor)).toBe(true);
    expect(lines[2]).toContain(rows[0].sqnrDb.toFixed(1));
    expect(lines[5]).toBe(`... ${rows.length - 3} more`);
    expect(formatSensitivityTable(rows).split('\n')).toHaveLength(2 + rows.length);
  });
});
