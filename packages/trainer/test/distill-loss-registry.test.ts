import * as tf from '../src/tf.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.js';
import { silentLogger } from '../src/util/logger.js';
import { KdLossError } from '../src/distill/losses/kd-loss-error.js';
import { KD_LOSSES, alphaAt, combineLosses, parseKdLosses } from '../src/distill/losses/registry.js';

beforeAll(async () => { await selectBackend('cpu', silentLogger); });

function thrown(fn: () => unknown): KdLossError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(KdLossError);
    return err as KdLossError;
  }
  throw new Error('expected a throw');
}

describe('parseKdLosses', () => {
  it('parses +-separated names in order', () => {
    expect(parseKdLosses('yolo-kd+feature')).toEqual(['yolo-kd', 'feature']);
    expect(parseKdLosses(' kd ')).toEqual(['kd']);
    expect(parseKdLosses('feature + yolo-kd', 'detect')).toEqual(['feature', 'yolo-kd']);
    expect(Object.keys(KD_LOSSES)).toEqual(['kd', 'yolo-kd', 'feature', 'cwd']);
  });

  it('names the bad name and the allowed ones', () => {
    const e = thrown(() => parseKdLosses('yolo-kd+yolokd'));
    expect(e.code).toBe('KD_LOSS_UNKNOWN');
    expect(e.message).toContain("'yolokd'");
    expect(e.message).toContain('kd, yolo-kd, feature');
    expect(thrown(() => parseKdLosses('')).code).toBe('KD_LOSS_UNKNOWN');
    expect(thrown(() => parseKdLosses('kd+')).message).toContain('empty name');
    expect(thrown(() => parseKdLosses('toString')).code).toBe('KD_LOSS_UNKNOWN');
  });

  it('rejects repeats and losses of the other task', () => {
    expect(thrown(() => parseKdLosses('feature+feature')).code).toBe('KD_LOSS_DUPLICATE');
    const e = thrown(() => parseKdLosses('kd', 'detect'));
    expect(e.code).toBe('KD_LOSS_TASK');
    expect(e.message).toContain('yolo-kd, feature');
    expect(thrown(() => parseKdLosses('yolo-kd', 'classify')).code).toBe('KD_LOSS_TASK');
  });
});

describe('alphaAt', () => {
  const schedule = { alpha: 0.7, warmup: 2, ramp: 4 };
  it('is 0 during warmup, ramps linearly, then holds α', () => {
    expect(alphaAt(0, schedule)).toBe(0);
    expect(alphaAt(1.99, schedule)).toBe(0);
    expect(alphaAt(2, schedule)).toBe(0);
    expect(alphaAt(3, schedule)).toBeCloseTo(0.175, 12);
    expect(alphaAt(4.5, schedule)).toBeCloseTo(0.4375, 12);
    expect(alphaAt(6, schedule)).toBeCloseTo(0.7, 12);
    expect(alphaAt(40, schedule)).toBeCloseTo(0.7, 12);
  });

  it('with decayTo, falls linearly from α after the ramp to 0 at that epoch', () => {
    const decay = { ...schedule, decayTo: 16 };
    expect(alphaAt(4.5, decay)).toBeCloseTo(0.4375, 12);
    expect(alphaAt(6, decay)).toBeCloseTo(0.7, 12);
    expect(alphaAt(11, decay)).toBeCloseTo(0.35, 12);
    expect(alphaAt(15.5, decay)).toBeCloseTo(0.035, 12);
    expect(alphaAt(16, decay)).toBe(0);
    expect(alphaAt(0.5, { alpha: 0.5, warmup: 0, ramp: 0, decayTo: 2 })).toBeCloseTo(0.375, 12);
    expect(() => alphaAt(1, { ...schedule, decayTo: 6 })).toThrow(/decayTo/);
  });

  it('jumps to α without a ramp, and checks its arguments', () => {
    expect(alphaAt(0, { alpha: 0.5, warmup: 0, ramp: 0 })).toBe(0.5);
    expect(alphaAt(0.5, { alpha: 0.5, warmup: 1, ramp: 0 })).toBe(0);
    expect(alphaAt(1, { alpha: 0.5, warmup: 1, ramp: 0 })).toBe(0.5);
    expect(() => alphaAt(1, { alpha: 1.2, warmup: 0, ramp: 0 })).toThrow(/alpha/);
    expect(() => alphaAt(1, { alpha: 0.5, warmup: -1, ramp: 0 })).toThrow(/warmup/);
    expect(() => alphaAt(Number.NaN, schedule)).toThrow(/epoch/);
  });
});

describe('combineLosses', () => {
  it('is (1−α)·hard + α·λ·kd', () => {
    expect(combineLosses(tf.scalar(2), tf.scalar(3), 0.25, 4).dataSync()[0]).toBeCloseTo(0.75 * 2 + 0.25 * 4 * 3, 5);
    expect(combineLosses(tf.scalar(2), tf.scalar(3), 0, 4).dataSync()[0]).toBeCloseTo(2, 6);
    expect(() => combineLosses(tf.scalar(2), tf.scalar(3), 0.5, -1)).toThrow(/lambda/);
  });

  it('passes gradients to both terms', () => {
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => combineLosses(a as tf.Scalar, b as tf.Scalar, 0.25, 2))([tf.scalar(1), tf.scalar(1)]);
    expect(g[0].dataSync()[0]).toBeCloseTo(0.75, 6);
    expect(g[1].dataSync()[0]).toBeCloseTo(0.5, 6);
  });
});
