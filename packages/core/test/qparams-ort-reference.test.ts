import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  computeScaleZeroPoint,
  quantizeBiasInt32,
  quantizePerTensor,
  quantizeWeightsPerChannel,
  type QuantType,
} from '../src/quant/qparams.js';

// Expected values come from fixtures/qparams/gen.py, a numpy port of ORT's quant_utils.py (run once, committed).
interface Fixture {
  scaleZeroPoint: {
    rmin: number;
    rmax: number;
    type: QuantType;
    symmetric: boolean;
    reduceRange: boolean;
    minRealRange: number | null;
    scale: number;
    zeroPoint: number;
  }[];
  perTensor: { type: QuantType; symmetric: boolean; values: string; data: number[]; scale: number; zeroPoint: number }[];
  perChannel: {
    shape: number[];
    axis: number;
    type: QuantType;
    symmetric: boolean;
    values: string;
    data: number[];
    scales: number[];
    zeroPoints: number[];
  }[];
  bias: { bias: string; inputScale: number; weightScales: number[]; data: number[]; scales: number[] }[];
}
const fixture = JSON.parse(readFileSync(new URL('./fixtures/qparams/expected.json', import.meta.url), 'utf8')) as Fixture;

function decode(b64: string): Float32Array {
  const buf = Buffer.from(b64, 'base64');
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return Float32Array.from({ length: buf.length / 4 }, (_, i) => view.getFloat32(i * 4, true));
}

describe('computeScaleZeroPoint against the ORT port', () => {
  it(`matches all ${fixture.scaleZeroPoint.length} cases exactly`, () => {
    const mismatches = fixture.scaleZeroPoint.filter((c) => {
      const got = computeScaleZeroPoint(c.rmin, c.rmax, {
        type: c.type,
        symmetric: c.symmetric,
        reduceRange: c.reduceRange,
        minRealRange: c.minRealRange ?? undefined,
      });
      return got.scale !== c.scale || got.zeroPoint !== c.zeroPoint;
    });
    expect(mismatches).toEqual([]);
  });
});

describe('quantizePerTensor against the ORT port', () => {
  it.each(fixture.perTensor)('$type symmetric=$symmetric', (c) => {
    const q = quantizePerTensor(decode(c.values), { type: c.type, symmetric: c.symmetric });
    expect(q.scale).toBe(c.scale);
    expect(q.zeroPoint).toBe(c.zeroPoint);
    expect([...q.data]).toEqual(c.data);
  });
});

describe('quantizeWeightsPerChannel against the ORT port', () => {
  it.each(fixture.perChannel)('shape $shape axis $axis $type symmetric=$symmetric', (c) => {
    const q = quantizeWeightsPerChannel(decode(c.values), c.shape, c.axis, { type: c.type, symmetric: c.symmetric });
    expect([...q.scales]).toEqual(c.scales);
    expect([...q.zeroPoints]).toEqual(c.zeroPoints);
    expect([...q.data]).toEqual(c.data);
  });
});

describe('quantizeBiasInt32 against the ORT port', () => {
  it.each(fixture.bias)('$weightScales.length weight scale(s)', (c) => {
    const q = quantizeBiasInt32(decode(c.bias), c.inputScale, c.weightScales);
    expect([...q.scales]).toEqual(c.scales);
    expect([...q.data]).toEqual(c.data);
  });
});
