import { describe, expect, it } from 'vitest';
import { RolloutError } from '../src/rollout/rollout-error.js';
import { gateViolation } from '../src/rollout/rollout-gates.js';
import { planWaves } from '../src/rollout/rollout-plan.js';
import { currentRate } from '../src/rollout/rollout-rate.js';
import { parseRolloutSpec } from '../src/rollout/rollout-spec.js';
import { ids, PKG } from './rollout-helpers.js';

const base = { package: PKG, target: { tags: ['lab'] }, waves: { canary: { count: 1 } } };

function specError(input: unknown): RolloutError {
  try {
    parseRolloutSpec(input);
  } catch (err) {
    expect(err).toBeInstanceOf(RolloutError);
    expect((err as RolloutError).code).toBe('FLEET_ROLLOUT_SPEC');
    return err as RolloutError;
  }
  throw new Error('the spec was accepted');
}

describe('parseRolloutSpec', () => {
  it('fills the defaults, and deploy gates default to the rollout gates', () => {
    const s = parseRolloutSpec({ ...base, gates: { maxP95Ms: 25, minMap50: 0.4 } });
    expect(s).toMatchObject({
      waves: { canary: { count: 1 }, percents: [100] }, successThreshold: 1, errorThreshold: 0.5, onBelowThreshold: 'pause',
      approval: 'auto', deviceTimeoutSec: 1800, rate: { perMinute: 60 }, deploy: { gates: { maxP95Ms: 25, minMap50: 0.4 }, transport: 'http' },
    });
    expect(parseRolloutSpec({ ...base, gates: { maxP95Ms: 25 }, deploy: { gates: {}, transport: 'mqtt' } }).deploy).toEqual({ gates: {}, transport: 'mqtt' });
  });

  it('fills a ramp and keeps the target', () => {
    const s = parseRolloutSpec({ ...base, target: { deviceIds: ['a', 'b', 'a'] }, rate: { perMinute: 5, ramp: { factor: 2, every: 10 } } });
    expect(s.target).toEqual({ deviceIds: ['a', 'b'] });
    expect(s.rate).toEqual({ perMinute: 5, ramp: { factor: 2, every: 10, on: 'succeeded', maxPerMinute: 1_000_000 } });
  });

  it.each([
    [{ ...base, package: { ...PKG, sha256: 'abc' } }, 'package.sha256'],
    [{ ...base, package: { ...PKG, version: '1.2' } }, 'package.version'],
    [{ ...base, target: { tags: ['a'], all: true } }, 'target'],
    [{ ...base, target: { deviceIds: ['ok', 'not ok'] } }, 'target.deviceIds[1]'],
    [{ ...base, target: { deviceIds: ['ok', 'kd-dashboard'] } }, 'target.deviceIds[1]'],
    [{ ...base, target: { deviceIds: ['kd-fleet'] } }, 'target.deviceIds[0]'],
    [{ ...base, target: { all: false } }, 'target.all'],
    [{ ...base, waves: { canary: { count: 0 } } }, 'waves.canary.count'],
    [{ ...base, waves: { canary: { percent: 5 }, percents: [10, 10, 100] } }, 'waves.percents[1]'],
    [{ ...base, waves: { canary: { percent: 5 }, percents: [10, 50] } }, 'waves.percents[1]'],
    [{ ...base, waves: { canary: { size: 1 } } }, 'waves.canary'],
    [{ ...base, successThreshold: 1.5 }, 'successThreshold'],
    [{ ...base, errorThreshold: 0 }, 'errorThreshold'],
    [{ ...base, onBelowThreshold: 'ignore' }, 'onBelowThreshold'],
    [{ ...base, gates: { maxP95Ms: -1 } }, 'gates.maxP95Ms'],
    [{ ...base, gates: { minMap50: 2 } }, 'gates.minMap50'],
    [{ ...base, gates: { p95: 3 } }, 'gates.p95'],
    [{ ...base, approval: 'sometimes' }, 'approval'],
    [{ ...base, deviceTimeoutSec: 0.5 }, 'deviceTimeoutSec'],
    [{ ...base, rate: { perMinute: 0 } }, 'rate.perMinute'],
    [{ ...base, rate: { perMinute: 10, ramp: { factor: 1, every: 5 } } }, 'rate.ramp.factor'],
    [{ ...base, rate: { perMinute: 10, ramp: { factor: 2, every: 5, maxPerMinute: 5 } } }, 'rate.ramp.maxPerMinute'],
    [{ ...base, deploy: { transport: 'ftp' } }, 'deploy.transport'],
    [{ ...base, deploy: { benchmark: { iterations: 0 } } }, 'deploy.benchmark.iterations'],
    [{ ...base, extra: 1 }, 'extra'],
  ])('names the field at fault (%#: %s)', (input, field) => {
    const err = specError(input);
    expect(err.field).toBe(field);
    expect(err.message).toContain(field);
  });

  it('refuses a service account named as a target, naming it', () => {
    const message = specError({ ...base, target: { deviceIds: ['cam-1', 'kd-dashboard'] } }).message;
    expect(message).toContain('"kd-dashboard"');
    expect(message).toMatch(/service account/);
  });
});

describe('planWaves', () => {
  it('plans a canary count, then cumulative percentages', () => {
    const waves = planWaves(ids(20), { canary: { count: 1 }, percents: [10, 50, 100] });
    expect(waves.map((w) => w.length)).toEqual([1, 1, 8, 10]);
    expect(waves.flat()).toEqual(ids(20));
  });

  it('rounds a canary share up and drops waves the canary already covers', () => {
    expect(planWaves(ids(20), { canary: { percent: 12 }, percents: [10, 50, 100] }).map((w) => w.length)).toEqual([3, 7, 10]);
    expect(planWaves(ids(3), { canary: { count: 5 }, percents: [50, 100] }).map((w) => w.length)).toEqual([3]);
    expect(planWaves(ids(1), { canary: { percent: 1 }, percents: [100] }).map((w) => w.length)).toEqual([1]);
    expect(planWaves([], { canary: { count: 1 }, percents: [100] })).toEqual([]);
  });
});

describe('currentRate', () => {
  it('ramps by the factor every N succeeded (or notified) devices, up to the cap', () => {
    const rate = { perMinute: 10, ramp: { factor: 2, every: 10, on: 'succeeded' as const, maxPerMinute: 50 } };
    expect(currentRate(rate, { succeeded: 9, notified: 100 })).toBe(10);
    expect(currentRate(rate, { succeeded: 10, notified: 100 })).toBe(20);
    expect(currentRate(rate, { succeeded: 25, notified: 100 })).toBe(40);
    expect(currentRate(rate, { succeeded: 1e9, notified: 100 })).toBe(50);
    expect(currentRate({ ...rate, ramp: { ...rate.ramp, on: 'notified' } }, { succeeded: 0, notified: 10 })).toBe(20);
    expect(currentRate({ perMinute: 7 }, { succeeded: 100, notified: 100 })).toBe(7);
  });
});

describe('gateViolation', () => {
  const bench = { latencyMs: { min: 1, mean: 2, p50: 2, p90: 3, p95: 20, p99: 4, max: 5 }, throughputFps: 50, accuracy: { map50: 0.4, map: 0.2, images: 10 } };
  it('names the first gate violated', () => {
    expect(gateViolation(bench, { maxP95Ms: 25, minFps: 30, minMap50: 0.3 })).toBeUndefined();
    expect(gateViolation(bench, { maxP95Ms: 19 })?.code).toBe('GATE_P95');
    expect(gateViolation(bench, { minFps: 60 })?.code).toBe('GATE_FPS');
    expect(gateViolation(bench, { minMap50: 0.45 })?.code).toBe('GATE_MAP50');
  });
  it('fails a mAP gate when the report has no on-device accuracy', () => {
    expect(gateViolation({ ...bench, accuracy: undefined }, { minMap50: 0.1 })).toMatchObject({ code: 'GATE_MAP50', message: expect.stringContaining('no on-device accuracy') });
  });
});
