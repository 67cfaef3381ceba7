import { describe, expect, it } from 'vitest';
import {
  computeScaleZeroPoint,
  qRange,
  quantizeBiasInt32,
  quantizePerTensor,
  quantizeWeightsPerChannel,
  roundHalfEven,
} from '../src/quant/qparams.js';

const f = Math.fround;

describe('roundHalfEven', () => {
  it('rounds ties to the even neighbour as numpy does', () => {
    expect([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, -3.5].map(roundHalfEven)).toEqual([0, 2, 2, 4, -0, -2, -2, -4]);
    expect([2.4999, 2.5001, -2.5001, 7].map(roundHalfEven)).toEqual([2, 3, -3, 7]);
  });
});

describe('qRange', () => {
  it('follows ORT table order: reduce_range, then symmetric, then the full type', () => {
    expect(qRange('int8')).toEqual({ qmin: -128, qmax: 127 });
    expect(qRange('uint8')).toEqual({ qmin: 0, qmax: 255 });
    expect(qRange('int8', { symmetric: true })).toEqual({ qmin: -127, qmax: 127 });
    expect(qRange('uint8', { symmetric: true })).toEqual({ qmin: 0, qmax: 254 });
    expect(qRange('int8', { reduceRange: true })).toEqual({ qmin: -64, qmax: 64 });
    expect(qRange('uint8', { reduceRange: true, symmetric: true })).toEqual({ qmin: 0, qmax: 127 });
  });

  it('rejects other types', () => {
    expect(() => qRange('int4' as 'int8')).toThrow(TypeError);
  });
});

describe('computeScaleZeroPoint', () => {
  it('int8 asymmetric [-1, 1]: scale 2/255, zero point round(-128 + 127.5) = round(-0.5) = 0 (ties to even)', () => {
    expect(computeScaleZeroPoint(-1, 1, { type: 'int8', symmetric: false })).toEqual({ scale: f(2 / 255), zeroPoint: 0 });
  });

  it('uint8 asymmetric [-1, 1]: zero point round(127.5) = 128', () => {
    expect(computeScaleZeroPoint(-1, 1, { type: 'uint8', symmetric: false })).toEqual({ scale: f(2 / 255), zeroPoint: 128 });
  });

  it('symmetric: ±absmax over the symmetric range, zero point (qmin + qmax) / 2', () => {
    // absmax 1.27: float32(1.27)·2 / 254 rounds to the same float32 as 0.01.
    expect(computeScaleZeroPoint(-0.3, 1.27, { type: 'int8', symmetric: true })).toEqual({ scale: f(0.01), zeroPoint: 0 });
    expect(computeScaleZeroPoint(-0.3, 1.27, { type: 'uint8', symmetric: true })).toEqual({ scale: f(0.01), zeroPoint: 127 });
    // reduce_range uint8 is 0..127: (0 + 127) / 2 = 63.5 → 64.
    expect(computeScaleZeroPoint(-1, 1, { type: 'uint8', symmetric: true, reduceRange: true }).zeroPoint).toBe(64);
  });

  it('widens the range to include 0', () => {
    // [0.5, 0.5] → [0, 0.5]: zp = round(-128 - 0 / s) = -128.
    expect(computeScaleZeroPoint(0.5, 0.5, { type: 'int8', symmetric: false })).toEqual({ scale: f(0.5 / 255), zeroPoint: -128 });
    // [-2, -1] → [-2, 0]: zp = round(0 + 2 / (2/255)) = 255.
    expect(computeScaleZeroPoint(-2, -1, { type: 'uint8', symmetric: false })).toEqual({ scale: f(2 / 255), zeroPoint: 255 });
  });

  it('uses scale 1 and zero point 0 below the smallest normal float32', () => {
    expect(computeScaleZeroPoint(0, 0, { type: 'int8', symmetric: false })).toEqual({ scale: 1, zeroPoint: 0 });
    expect(computeScaleZeroPoint(0, 1e-40, { type: 'uint8', symmetric: false })).toEqual({ scale: 1, zeroPoint: 0 });
    // 1e-30 / 255 is still above 2^-126.
    expect(computeScaleZeroPoint(0, 1e-30, { type: 'uint8', symmetric: false }).scale).toBe(f(f(1e-30) / 255));
  });

  it('enforces minRealRange', () => {
    expect(computeScaleZeroPoint(0, 0, { type: 'int8', symmetric: false, minRealRange: 1e-4 })).toEqual({
      scale: f(f(1e-4) / 255),
      zeroPoint: -128,
    });
    // A range already wider than minRealRange is unchanged.
    expect(computeScaleZeroPoint(-1, 1, { type: 'int8', symmetric: false, minRealRange: 1e-4 }).scale).toBe(f(2 / 255));
  });

  it('returns a float32 scale', () => {
    const { scale } = computeScaleZeroPoint(-0.7, 2.3, { type: 'uint8', symmetric: false });
    expect(scale).toBe(f(scale));
  });

  it('rejects non-finite ranges and bad options', () => {
    expect(() => computeScaleZeroPoint(NaN, 1, { type: 'int8', symmetric: false })).toThrow(RangeError);
    expect(() => computeScaleZeroPoint(0, Infinity, { type: 'int8', symmetric: false })).toThrow(RangeError);
    expect(() => computeScaleZeroPoint(0, 1, { type: 'int8', symmetric: false, minRealRange: -1 })).toThrow(/minRealRange/);
    expect(() => computeScaleZeroPoint(0, 1, { type: 'fp8' as 'int8', symmetric: false })).toThrow(TypeError);
  });
});

describe('quantizePerTensor', () => {
  it('symmetric int8: scale 1/127; 0.5 / scale is 63.5 in float32, which rounds to 64', () => {
    const q = quantizePerTensor(Float32Array.of(-1, 0.5, 1, 0), { type: 'int8', symmetric: true });
    expect(q.scale).toBe(f(2 / 254));
    expect(q.zeroPoint).toBe(0);
    expect(q.data).toBeInstanceOf(Int8Array);
    expect([...q.data]).toEqual([-127, 64, 127, 0]);
  });

  it('asymmetric uint8 on [0, 2.55]: scale 0.01, values x / 0.01', () => {
    const q = quantizePerTensor(Float32Array.of(0, 1, 2.55), { type: 'uint8', symmetric: false });
    expect(q.data).toBeInstanceOf(Uint8Array);
    expect(q.zeroPoint).toBe(0);
    expect([...q.data]).toEqual([0, 100, 255]);
  });

  it('gives scale 1, zero point 0 for an empty tensor', () => {
    expect(quantizePerTensor(new Float32Array(0), { type: 'int8', symmetric: true })).toEqual({
      data: new Int8Array(0),
      scale: 1,
      zeroPoint: 0,
    });
  });

  it('rejects NaN', () => {
    expect(() => quantizePerTensor(Float32Array.of(1, NaN), { type: 'int8', symmetric: true })).toThrow(/values\[1\]/);
  });
});

describe('quantizeWeightsPerChannel', () => {
  // Rows [0.5, -1] and [0.25, 0].
  const w = Float32Array.of(0.5, -1, 0.25, 0);

  it('axis 0: one symmetric int8 scale per row (absmax / 127)', () => {
    const q = quantizeWeightsPerChannel(w, [2, 2], 0);
    expect([...q.scales]).toEqual([f(2 / 254), f(0.5 / 254)]);
    expect([...q.zeroPoints]).toEqual([0, 0]);
    // Row 0: 0.5 / (1/127) = 63.5 → 64, -1 → -127. Row 1: 0.25 / (0.25/127) = 127, 0 → 0.
    expect([...q.data]).toEqual([64, -127, 127, 0]);
  });

  it('axis 1 (and -1): one scale per column, data stays in row-major order', () => {
    const q = quantizeWeightsPerChannel(w, [2, 2], 1);
    expect([...q.scales]).toEqual([f(1 / 254), f(2 / 254)]);
    // Column 0 (absmax 0.5): 0.5 → 127, 0.25 → 63.5 → 64. Column 1 (absmax 1): -1 → -127, 0 → 0.
    expect([...q.data]).toEqual([127, -127, 64, 0]);
    expect(quantizeWeightsPerChannel(w, [2, 2], -1)).toEqual(q);
  });

  it('asymmetric uint8 per channel', () => {
    const q = quantizeWeightsPerChannel(Float32Array.of(0, 2.55, -1, 1), [2, 2], 0, { type: 'uint8', symmetric: false });
    expect(q.zeroPoints).toBeInstanceOf(Uint8Array);
    expect([...q.zeroPoints]).toEqual([0, 128]);
    // float32(2/255) is slightly above 2/255, so -1 / scale = -127.49999 in float32 → -127, + 128 = 1 (numpy agrees).
    expect([...q.data]).toEqual([0, 255, 1, 255]);
  });

  it('validates shape and axis', () => {
    expect(() => quantizeWeightsPerChannel(w, [3, 2], 0)).toThrow(/needs 6/);
    expect(() => quantizeWeightsPerChannel(w, [2, 2], 2)).toThrow(/axis/);
    expect(() => quantizeWeightsPerChannel(w, [2, 2], -3)).toThrow(/axis/);
    expect(() => quantizeWeightsPerChannel(w, [2, 2.5], 0)).toThrow(/shape\[1\]/);
  });
});

describe('quantizeBiasInt32', () => {
  it('bias scale = input scale × weight scale (float32); values round half to even', () => {
    // Scale 1 × 0.5: 0.25 → 0.5 → 0, 0.75 → 1.5 → 2, -0.25 → -0.5 → 0, 1.25 → 2.5 → 2.
    const q = quantizeBiasInt32(Float32Array.of(0.25, 0.75, -0.25, 1.25), 1, 0.5);
    expect([...q.data]).toEqual([0, 2, 0, 2]);
    expect([...q.scales]).toEqual([0.5]);
  });

  it('per channel', () => {
    const q = quantizeBiasInt32(Float32Array.of(0.5, -0.5), 0.02, Float32Array.of(0.01, 0.1));
    expect([...q.scales]).toEqual([f(f(0.02) * f(0.01)), f(f(0.02) * f(0.1))]);
    expect([...q.data]).toEqual([2500, -250]);
  });

  it('multiplies by beta (Gemm)', () => {
    expect([...quantizeBiasInt32(Float32Array.of(1), 0.5, 0.5, { beta: 2 }).data]).toEqual([2]);
  });

  it('saturates at the int32 limits, zero scale included; 0 / 0 gives 0', () => {
    expect([...quantizeBiasInt32(Float32Array.of(1e6, -1e6), 1e-6, 1e-6).data]).toEqual([2 ** 31 - 1, -(2 ** 31)]);
    expect([...quantizeBiasInt32(Float32Array.of(1, -1, 0), 0.1, 0).data]).toEqual([2 ** 31 - 1, -(2 ** 31), 0]);
  });

  it('checks the weight scale count', () => {
    expect(() => quantizeBiasInt32(Float32Array.of(1, 2, 3), 1, [1, 2])).toThrow(/1 or 3/);
  });
});
