import * as tf from '../src/tf.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.js';
import { silentLogger } from '../src/util/logger.js';
import { channelWiseLoss } from '../src/distill/losses/channel-wise.js';
import { createFeatureAdapters } from '../src/distill/losses/feature-adapters.js';
import { parseKdLosses } from '../src/distill/losses/registry.js';
import type { FeatureMap } from '../src/distill/types.js';

beforeAll(async () => { await selectBackend('cpu', silentLogger); });

/** NHWC values as the NCHW map a teacher gives. */
function nchw(nhwc: number[], [n, h, w, c]: [number, number, number, number]): FeatureMap {
  const data = new Float32Array(nhwc.length);
  for (let b = 0; b < n; b++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) {
    data[((b * c + k) * h + y) * w + x] = nhwc[((b * h + y) * w + x) * c + k]!;
  }
  return { data, shape: [n, c, h, w] };
}

function identityAdapters(c: number) {
  const adapters = createFeatureAdapters([{ name: 'p3', studentC: c, teacherC: c }], 0);
  const a = adapters.get('p3')!;
  a.weight.assign(tf.eye(c).reshape([1, 1, c, c]) as tf.Tensor4D);
  a.bias.assign(tf.zeros([c]));
  return adapters;
}

describe('channelWiseLoss (Shu et al. 2021)', () => {
  it('is τ²·KL(softmax(t/τ) ‖ softmax(s/τ)) over each channel\'s positions, by hand on 2×2', () => {
    const shape: [number, number, number, number] = [1, 2, 2, 1];
    const adapters = identityAdapters(1);
    for (const tau of [1, 2]) {
      const l = channelWiseLoss(new Map([['p3', tf.zeros(shape) as tf.Tensor4D]]), new Map([['p3', nchw([0, 1, 2, 3], shape)]]), adapters, { temperature: tau });
      const z = [0, 1, 2, 3].map((v) => Math.exp(v / tau));
      const sum = z.reduce((a, b) => a + b, 0);
      const kl = z.map((v) => v / sum).reduce((a, p) => a + p * Math.log(p / 0.25), 0);
      expect(l.total.dataSync()[0]).toBeCloseTo(tau * tau * kl, 5);
    }
    adapters.dispose();
  });

  it('is zero when each student channel differs from the teacher\'s by a constant (only where a channel fires counts)', () => {
    const shape: [number, number, number, number] = [2, 3, 4, 2];
    const t = Array.from({ length: 48 }, (_, i) => Math.sin(i * 1.7) * 3);
    const s = t.map((v, i) => v + (i % 2 === 0 ? 5 : -2));
    const adapters = identityAdapters(2);
    const same = channelWiseLoss(new Map([['p3', tf.tensor4d(s, shape)]]), new Map([['p3', nchw(t, shape)]]), adapters);
    expect(Math.abs(same.total.dataSync()[0]!)).toBeLessThan(1e-5);
    // Moving one position of one channel is not free.
    const moved = s.slice();
    moved[0]! += 4;
    const diff = channelWiseLoss(new Map([['p3', tf.tensor4d(moved, shape)]]), new Map([['p3', nchw(t, shape)]]), adapters);
    expect(diff.total.dataSync()[0]).toBeGreaterThan(1e-3);
    adapters.dispose();
  });

  it('trains the adapter: its gradient is not zero, and a mismatched teacher shape is named', () => {
    const shape: [number, number, number, number] = [1, 4, 4, 3];
    const adapters = createFeatureAdapters([{ name: 'p4', studentC: 3, teacherC: 5 }], 1);
    const s = tf.randomNormal(shape, 0, 1, 'float32', 3) as tf.Tensor4D;
    const t = nchw(Array.from(tf.randomNormal([1, 4, 4, 5], 0, 1, 'float32', 4).dataSync()), [1, 4, 4, 5]);
    const { grads } = tf.variableGrads(() => channelWiseLoss(new Map([['p4', s]]), new Map([['p4', t]]), adapters).total, adapters.variables());
    expect(Object.values(grads).some((g) => g.abs().max().dataSync()[0]! > 0)).toBe(true);
    expect(() => channelWiseLoss(new Map([['p4', s]]), new Map([['p4', { data: t.data, shape: [1, 5, 2, 8] }]]), adapters)).toThrow(/teacher feature 'p4'/);
    expect(() => channelWiseLoss(new Map([['p4', s]]), new Map([['p4', t]]), adapters, { temperature: 0 })).toThrow(RangeError);
    adapters.dispose();
  });

  it("is the registry's 'cwd', for detectors", () => {
    expect(parseKdLosses('yolo-kd+cwd', 'detect')).toEqual(['yolo-kd', 'cwd']);
    expect(() => parseKdLosses('kd+cwd', 'classify')).toThrow(/'cwd' applies to detect/);
  });
});
