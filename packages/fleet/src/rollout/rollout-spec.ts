import { DEVICE_ID_RE, SHA256_RE, isModelName, isModelVersion, isReservedDeviceId, RESERVED_DEVICE_IDS } from '@kd-edge/core/protocol';
import { RolloutError } from './rollout-error.js';

/** Which devices a rollout targets; the caller's `resolveTargets` turns it into device ids once, at start. */
export type RolloutTarget = { deviceIds: string[] } | { tags: string[] } | { all: true };

/** Limits on a device's own benchmark report; a report outside them fails the device with a `GATE_*` code. */
export interface RolloutGates {
  /** Largest p95 latency, in ms (`GATE_P95`). */
  maxP95Ms?: number;
  /** Smallest throughput, in frames per second (`GATE_FPS`). */
  minFps?: number;
  /** Smallest on-device mAP50 in [0, 1] (`GATE_MAP50`); a report without on-device accuracy fails it. */
  minMap50?: number;
}

/** The first wave: a number of devices, or a share of the targets (rounded up, at least one device). */
export type CanarySpec = { count: number } | { percent: number };

/**
 * AWS IoT Jobs-style exponential ramp: the rate starts at `rate.perMinute` and is multiplied by `factor`
 * each time another `every` devices have succeeded (or, with `on: 'notified'`, been sent the command),
 * up to `maxPerMinute`.
 */
export interface RampSpec {
  factor: number;
  every: number;
  on: 'succeeded' | 'notified';
  maxPerMinute: number;
}

/** A validated rollout spec with every default filled in; see {@link parseRolloutSpec}. */
export interface RolloutSpec {
  /** The registry package to deploy. */
  package: { name: string; version: string; sha256: string };
  target: RolloutTarget;
  /**
   * Canary first, then cumulative percentages of all targets: `[10, 50, 100]` means waves that bring the
   * rollout to 10 %, 50 % and 100 % of the targets. Strictly increasing, ending at 100; waves that
   * would be empty (the canary already covers them) are dropped.
   */
  waves: { canary: CanarySpec; percents: number[] };
  /** Share in [0, 1] of a wave's devices that must succeed for the rollout to go on without an operator. */
  successThreshold: number;
  /** Share in (0, 1] of a wave's devices whose failure (failed or timed out) aborts the rollout, checked as results arrive. */
  errorThreshold: number;
  /** What a finished wave below `successThreshold` does: wait for approval, or abort. */
  onBelowThreshold: 'pause' | 'abort';
  /** Judged by the fleet on each device's bench report for the deploy. */
  gates: RolloutGates;
  /** `manual`: wait for approve() after every passed wave but the last. */
  approval: 'auto' | 'manual';
  /** Time a device has from the moment its command is sent to finish, in seconds. */
  deviceTimeoutSec: number;
  /** Devices sent their command per minute (sliding window), optionally ramping up. */
  rate: { perMinute: number; ramp?: RampSpec };
  /** What goes into each deploy command (the caller's makeDeployCommand reads it). */
  deploy: {
    /** Gates the device applies before activating; by default the rollout's own gates. */
    gates: RolloutGates;
    benchmark?: { warmup?: number; iterations?: number };
    transport: 'http' | 'mqtt';
  };
}

/** What an operator writes: a {@link RolloutSpec} in which everything but the package, target and waves may be left out. */
export interface RolloutSpecInput {
  package: { name: string; version: string; sha256: string };
  target: RolloutTarget;
  waves: { canary: CanarySpec; percents?: number[] };
  successThreshold?: number;
  errorThreshold?: number;
  onBelowThreshold?: 'pause' | 'abort';
  gates?: RolloutGates;
  approval?: 'auto' | 'manual';
  deviceTimeoutSec?: number;
  rate?: { perMinute: number; ramp?: { factor: number; every: number; on?: 'succeeded' | 'notified'; maxPerMinute?: number } };
  deploy?: { gates?: RolloutGates; benchmark?: { warmup?: number; iterations?: number }; transport?: 'http' | 'mqtt' };
}

/** Defaults of the optional fields. */
export const ROLLOUT_SPEC_DEFAULTS = {
  percents: [100],
  successThreshold: 1,
  errorThreshold: 0.5,
  onBelowThreshold: 'pause',
  approval: 'auto',
  deviceTimeoutSec: 1800,
  perMinute: 60,
  transport: 'http',
  rampOn: 'succeeded',
} as const;

/** Largest rate (devices per minute), ramp included. */
const MAX_PER_MINUTE = 1_000_000;

function fail(field: string, value: unknown, expected: string): never {
  const shown = value === undefined ? 'nothing' : JSON.stringify(value);
  throw new RolloutError('FLEET_ROLLOUT_SPEC', `rollout spec ${field}: expected ${expected}, got ${shown}`, { field });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function object(value: unknown, field: string): Record<string, unknown> {
  if (!isObject(value)) fail(field, value, 'an object');
  return value;
}

function noExtraKeys(value: Record<string, unknown>, field: string, allowed: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) fail(field === '' ? key : `${field}.${key}`, value[key], `no such field (allowed: ${allowed.join(', ')})`);
  }
}

function number(value: unknown, field: string, min: number, max: number, opts: { integer?: boolean; minExclusive?: boolean } = {}): number {
  const range = `${opts.minExclusive ? '(' : '['}${min}, ${max}]`;
  const what = opts.integer ? `an integer in ${range}` : `a number in ${range}`;
  if (typeof value !== 'number' || !Number.isFinite(value)) fail(field, value, what);
  if (opts.integer && !Number.isInteger(value)) fail(field, value, what);
  if (value > max || (opts.minExclusive ? value <= min : value < min)) fail(field, value, what);
  return value;
}

function oneOf<T extends string>(value: unknown, field: string, choices: readonly T[]): T {
  if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) fail(field, value, `one of ${choices.map((c) => `"${c}"`).join(', ')}`);
  return value as T;
}

function gates(value: unknown, field: string): RolloutGates {
  const g = object(value, field);
  noExtraKeys(g, field, ['maxP95Ms', 'minFps', 'minMap50']);
  const out: RolloutGates = {};
  if (g.maxP95Ms !== undefined) out.maxP95Ms = number(g.maxP95Ms, `${field}.maxP95Ms`, 0, Number.MAX_VALUE, { minExclusive: true });
  if (g.minFps !== undefined) out.minFps = number(g.minFps, `${field}.minFps`, 0, Number.MAX_VALUE);
  if (g.minMap50 !== undefined) out.minMap50 = number(g.minMap50, `${field}.minMap50`, 0, 1);
  return out;
}

function target(value: unknown): RolloutTarget {
  const t = object(value, 'target');
  const keys = Object.keys(t);
  if (keys.length !== 1 || !['deviceIds', 'tags', 'all'].includes(keys[0]!)) {
    fail('target', value, 'exactly one of {deviceIds: [...]}, {tags: [...]}, {all: true}');
  }
  if (t.all !== undefined) {
    if (t.all !== true) fail('target.all', t.all, 'true');
    return { all: true };
  }
  const key = keys[0] as 'deviceIds' | 'tags';
  const list = t[key];
  if (!Array.isArray(list) || list.length === 0) fail(`target.${key}`, list, 'a non-empty array');
  list.forEach((item, i) => {
    if (key === 'deviceIds' && (typeof item !== 'string' || !DEVICE_ID_RE.test(item))) fail(`target.deviceIds[${i}]`, item, 'a device id');
    if (key === 'deviceIds' && isReservedDeviceId(item as string)) {
      fail(`target.deviceIds[${i}]`, item, `a device id, not a service account (${RESERVED_DEVICE_IDS.join(', ')})`);
    }
    if (key === 'tags' && (typeof item !== 'string' || item.length === 0 || item.length > 64)) fail(`target.tags[${i}]`, item, 'a tag of 1-64 characters');
  });
  return key === 'deviceIds' ? { deviceIds: [...new Set(list as string[])] } : { tags: [...new Set(list as string[])] };
}

function waves(value: unknown): RolloutSpec['waves'] {
  const w = object(value, 'waves');
  noExtraKeys(w, 'waves', ['canary', 'percents']);
  const c = object(w.canary, 'waves.canary');
  let canary: CanarySpec;
  if (Object.keys(c).length !== 1) fail('waves.canary', c, 'exactly one of {count} or {percent}');
  if (c.count !== undefined) canary = { count: number(c.count, 'waves.canary.count', 1, Number.MAX_SAFE_INTEGER, { integer: true }) };
  else if (c.percent !== undefined) canary = { percent: number(c.percent, 'waves.canary.percent', 0, 100, { minExclusive: true }) };
  else fail('waves.canary', c, 'exactly one of {count} or {percent}');
  const raw = w.percents ?? ROLLOUT_SPEC_DEFAULTS.percents;
  if (!Array.isArray(raw) || raw.length === 0) fail('waves.percents', raw, 'a non-empty array of cumulative percentages ending at 100');
  const percents = raw.map((p, i) => {
    const v = number(p, `waves.percents[${i}]`, 0, 100, { minExclusive: true });
    if (i > 0 && v <= (raw[i - 1] as number)) fail(`waves.percents[${i}]`, p, `a percentage above the previous one (${String(raw[i - 1])}); percentages are cumulative`);
    return v;
  });
  if (percents[percents.length - 1] !== 100) fail(`waves.percents[${percents.length - 1}]`, percents[percents.length - 1], '100 (the last wave reaches every target)');
  return { canary, percents };
}

function rate(value: unknown): RolloutSpec['rate'] {
  if (value === undefined) return { perMinute: ROLLOUT_SPEC_DEFAULTS.perMinute };
  const r = object(value, 'rate');
  noExtraKeys(r, 'rate', ['perMinute', 'ramp']);
  const perMinute = number(r.perMinute, 'rate.perMinute', 1, MAX_PER_MINUTE, { integer: true });
  if (r.ramp === undefined) return { perMinute };
  const ramp = object(r.ramp, 'rate.ramp');
  noExtraKeys(ramp, 'rate.ramp', ['factor', 'every', 'on', 'maxPerMinute']);
  return {
    perMinute,
    ramp: {
      factor: number(ramp.factor, 'rate.ramp.factor', 1, 5, { minExclusive: true }),
      every: number(ramp.every, 'rate.ramp.every', 1, Number.MAX_SAFE_INTEGER, { integer: true }),
      on: ramp.on === undefined ? ROLLOUT_SPEC_DEFAULTS.rampOn : oneOf(ramp.on, 'rate.ramp.on', ['succeeded', 'notified'] as const),
      maxPerMinute: ramp.maxPerMinute === undefined ? MAX_PER_MINUTE : number(ramp.maxPerMinute, 'rate.ramp.maxPerMinute', perMinute, MAX_PER_MINUTE, { integer: true }),
    },
  };
}

function deploy(value: unknown, fleetGates: RolloutGates): RolloutSpec['deploy'] {
  if (value === undefined) return { gates: { ...fleetGates }, transport: ROLLOUT_SPEC_DEFAULTS.transport };
  const d = object(value, 'deploy');
  noExtraKeys(d, 'deploy', ['gates', 'benchmark', 'transport']);
  const out: RolloutSpec['deploy'] = {
    gates: d.gates === undefined ? { ...fleetGates } : gates(d.gates, 'deploy.gates'),
    transport: d.transport === undefined ? ROLLOUT_SPEC_DEFAULTS.transport : oneOf(d.transport, 'deploy.transport', ['http', 'mqtt'] as const),
  };
  if (d.benchmark !== undefined) {
    const b = object(d.benchmark, 'deploy.benchmark');
    noExtraKeys(b, 'deploy.benchmark', ['warmup', 'iterations']);
    out.benchmark = {};
    // The protocol's own bounds (MAX_BENCH_ITERATIONS), so a spec cannot produce a command the device refuses.
    if (b.warmup !== undefined) out.benchmark.warmup = number(b.warmup, 'deploy.benchmark.warmup', 0, 100_000, { integer: true });
    if (b.iterations !== undefined) out.benchmark.iterations = number(b.iterations, 'deploy.benchmark.iterations', 1, 100_000, { integer: true });
  }
  return out;
}

/**
 * Validate a rollout spec (from JSON, YAML or code) and fill in the defaults. Throws a RolloutError
 * `FLEET_ROLLOUT_SPEC` whose `field` names the first path at fault.
 * @example
 * const spec = parseRolloutSpec({
 *   package: { name: 'yolov5n-pets', version: '1.2.0', sha256 },
 *   target: { tags: ['lab'] },
 *   waves: { canary: { count: 1 }, percents: [10, 50, 100] },
 *   gates: { maxP95Ms: 25 },
 *   rate: { perMinute: 10, ramp: { factor: 2, every: 10 } },
 * });
 */
export function parseRolloutSpec(input: unknown): RolloutSpec {
  const s = object(input, 'spec');
  noExtraKeys(s, '', [
    'package', 'target', 'waves', 'successThreshold', 'errorThreshold', 'onBelowThreshold', 'gates', 'approval',
    'deviceTimeoutSec', 'rate', 'deploy',
  ]);
  const p = object(s.package, 'package');
  noExtraKeys(p, 'package', ['name', 'version', 'sha256']);
  if (!isModelName(p.name)) fail('package.name', p.name, 'a model name ([a-z0-9][a-z0-9._-]{0,63})');
  if (!isModelVersion(p.version)) fail('package.version', p.version, 'a semver version');
  if (typeof p.sha256 !== 'string' || !SHA256_RE.test(p.sha256)) fail('package.sha256', p.sha256, '64 lower-case hex characters');
  const fleetGates = s.gates === undefined ? {} : gates(s.gates, 'gates');
  return {
    package: { name: p.name, version: p.version, sha256: p.sha256 },
    target: target(s.target),
    waves: waves(s.waves),
    successThreshold: s.successThreshold === undefined ? ROLLOUT_SPEC_DEFAULTS.successThreshold : number(s.successThreshold, 'successThreshold', 0, 1),
    errorThreshold: s.errorThreshold === undefined ? ROLLOUT_SPEC_DEFAULTS.errorThreshold : number(s.errorThreshold, 'errorThreshold', 0, 1, { minExclusive: true }),
    onBelowThreshold: s.onBelowThreshold === undefined ? ROLLOUT_SPEC_DEFAULTS.onBelowThreshold : oneOf(s.onBelowThreshold, 'onBelowThreshold', ['pause', 'abort'] as const),
    gates: fleetGates,
    approval: s.approval === undefined ? ROLLOUT_SPEC_DEFAULTS.approval : oneOf(s.approval, 'approval', ['auto', 'manual'] as const),
    deviceTimeoutSec: s.deviceTimeoutSec === undefined
      ? ROLLOUT_SPEC_DEFAULTS.deviceTimeoutSec
      : number(s.deviceTimeoutSec, 'deviceTimeoutSec', 1, 30 * 24 * 3600, { integer: true }),
    rate: rate(s.rate),
    deploy: deploy(s.deploy, fleetGates),
  };
}
