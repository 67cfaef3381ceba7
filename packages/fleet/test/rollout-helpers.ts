import { makeBench, makeEvent, type BenchMessage, type EventMessage, type EventState } from '@kd-edge/core';
import type Database from 'better-sqlite3';
import { migrate } from '../src/db/migrate.js';
import { openDatabase } from '../src/db/open-database.js';
import { RolloutEngine, type RolloutCommand, type RolloutEngineOptions } from '../src/rollout/rollout-engine.js';
import { ROLLOUT_MIGRATIONS } from '../src/rollout/rollout-migrations.js';
import type { RolloutSpecInput, RolloutTarget } from '../src/rollout/rollout-spec.js';
import type { RolloutInfo } from '../src/rollout/rollout-types.js';

export const SHA = 'a35473855286727311bf64ad7f15f55ea506895378210e8c602704d3b64cd3cd';
export const PKG = { name: 'yolov5n-pets', version: '1.2.0', sha256: SHA };

/** A migrated rollout database (a file when given, else in memory). */
export function rolloutDb(file = ':memory:'): Database.Database {
  const db = openDatabase(file);
  migrate(db, ROLLOUT_MIGRATIONS);
  return db;
}

/** A clock the test moves by hand. */
export class FakeClock {
  t = Date.parse('2026-05-01T12:00:00Z');
  now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

/** How a simulated device behaves. */
export interface DeviceProfile {
  online: boolean;
  /** Bench figures the device measures for any package. */
  p95: number;
  fps: number;
  map50?: number;
  /** Fail the deploy at activation with this code (like the simulator's injected faults). */
  failCode?: string;
  /** Accept and start downloading, then never finish. */
  stall?: boolean;
  /** Publish the bench report after the final event instead of before it. */
  benchLast?: boolean;
}

/** One message a device published, in order. */
export type Published = { kind: 'event'; deviceId: string; msg: EventMessage } | { kind: 'bench'; deviceId: string; msg: BenchMessage };

interface Device {
  id: string;
  profile: DeviceProfile;
  /** Commands the broker holds for the device (its persistent session) until it is online. */
  inbox: RolloutCommand[];
  /** The agent's ledger: last event per command id. */
  ledger: Map<string, EventMessage>;
  active: string | null;
  previous: string | null;
}

/**
 * A fake fleet of kd-agents behind a fake broker: commands queue per device while it is offline (a
 * persistent session), and an online device answers each with the agent's event sequence, a bench
 * report, gates applied from the command, idempotency by id and rollback with fromVersion.
 */
export class FakeFleet {
  readonly devices = new Map<string, Device>();
  /** Every command handed to sendCommand, in order. */
  readonly sent: Array<{ deviceId: string; command: RolloutCommand; at: number }> = [];
  /** Everything the devices published, in order. */
  readonly published: Published[] = [];
  failSends = 0;
  constructor(readonly clock: FakeClock) {}

  add(ids: string[], profile: Partial<DeviceProfile> = {}): void {
    for (const id of ids) {
      this.devices.set(id, { id, profile: { online: true, p95: 10, fps: 80, map50: 0.5, ...profile }, inbox: [], ledger: new Map(), active: '1.1.0', previous: '1.0.0' });
    }
  }

  profile(id: string): DeviceProfile {
    return this.devices.get(id)!.profile;
  }

  sendCommand = async (deviceId: string, command: RolloutCommand): Promise<void> => {
    if (this.failSends > 0) {
      this.failSends--;
      throw new Error('broker unavailable');
    }
    this.sent.push({ deviceId, command, at: this.clock.now() });
    this.devices.get(deviceId)?.inbox.push(structuredClone(command));
  };

  deviceOnline = (id: string): boolean => this.devices.get(id)?.profile.online ?? false;

  resolveTargets = (target: RolloutTarget): string[] => {
    if ('deviceIds' in target) return target.deviceIds;
    return [...this.devices.keys()];
  };

  makeDeployCommand = (rollout: RolloutInfo, deviceId: string, commandId: string): RolloutCommand => ({
    v: 1, type: 'cmd', id: commandId, deviceId, rolloutId: rollout.id, command: 'deploy',
    package: { ...rollout.package, size: 1000, http: { url: `https://fleet.test/packages/${rollout.package.name}/${rollout.package.version}.tar` } },
    gates: rollout.spec.deploy.gates,
  });

  /** Commands of one kind sent to each device. */
  sentTo(deviceId: string, command?: string): RolloutCommand[] {
    return this.sent.filter((s) => s.deviceId === deviceId && (command === undefined || s.command.command === command)).map((s) => s.command);
  }

  /** Devices' messages (all of them, or those that `filter` keeps), handed to the engine in order. */
  pump(engine: RolloutEngine, filter: (p: Published) => boolean = () => true): void {
    const out = this.published.splice(0);
    const kept = out.filter(filter);
    for (const p of kept) {
      if (p.kind === 'event') engine.onEvent(p.deviceId, p.msg);
      else engine.onBench(p.deviceId, p.msg);
    }
  }

  /** Online devices process what their session holds. */
  run(): void {
    for (const d of this.devices.values()) {
      if (!d.profile.online) continue;
      for (const cmd of d.inbox.splice(0)) this.#handle(d, cmd);
    }
  }

  /** run() then pump(): one round of device work. */
  step(engine: RolloutEngine): void {
    this.run();
    this.pump(engine);
  }

  #event(d: Device, cmd: RolloutCommand, state: EventState, extra: Record<string, unknown> = {}): void {
    const msg = makeEvent({ deviceId: d.id, commandId: cmd.id, command: cmd.command, state, ts: new Date(this.clock.now()), ...extra });
    d.ledger.set(cmd.id, msg);
    this.published.push({ kind: 'event', deviceId: d.id, msg });
  }

  #handle(d: Device, cmd: RolloutCommand): void {
    const seen = d.ledger.get(cmd.id);
    if (seen !== undefined) {
      this.published.push({ kind: 'event', deviceId: d.id, msg: { ...seen, repeat: true } });
      return;
    }
    if (cmd.command === 'rollback') {
      const from = cmd.fromVersion as string | undefined;
      if (from !== undefined && d.active !== from) {
        this.#event(d, cmd, 'accepted');
        this.#event(d, cmd, 'failed', { code: 'AGENT_ROLLBACK_STALE', message: `rollback from ${from} refused: the active version is ${d.active}` });
        return;
      }
      this.#event(d, cmd, 'accepted');
      this.#event(d, cmd, 'activating');
      [d.active, d.previous] = [d.previous, null];
      this.#event(d, cmd, 'rolled_back', { result: { version: d.active } });
      return;
    }
    const pkg = cmd.package as { name: string; version: string; sha256: string; size: number };
    const p = d.profile;
    this.#event(d, cmd, 'accepted');
    this.#event(d, cmd, 'downloading', { progress: { bytes: 0, total: pkg.size } });
    if (p.stall) return;
    this.#event(d, cmd, 'downloading', { progress: { bytes: pkg.size, total: pkg.size } });
    this.#event(d, cmd, 'verifying');
    this.#event(d, cmd, 'activating');
    if (p.failCode !== undefined) {
      this.#event(d, cmd, 'failed', { code: p.failCode, message: 'load failure injected' });
      return;
    }
    this.#event(d, cmd, 'benchmarking');
    const bench = makeBench({
      deviceId: d.id, commandId: cmd.id, ts: new Date(this.clock.now()),
      model: { name: pkg.name, version: pkg.version, sha256: pkg.sha256, file: 'model.int8.onnx', precision: 'int8' },
      runtime: 'onnxruntime', executionProvider: 'CPUExecutionProvider', input: { name: 'images', shape: [1, 3, 320, 320] },
      batch: 1, warmup: 2, iterations: 20,
      latencyMs: { min: p.p95 * 0.7, mean: p.p95 * 0.85, p50: p.p95 * 0.8, p90: p.p95 * 0.95, p95: p.p95, p99: p.p95 * 1.1, max: p.p95 * 1.3 },
      throughputFps: p.fps, splitMs: { pre: 1, infer: p.p95 * 0.6, post: 1 }, rssMb: 300, cpuLoadPct: 40,
      ...(p.map50 !== undefined ? { accuracy: { map50: p.map50, map: p.map50 * 0.6, images: 20 } } : {}),
    });
    const benchMsg: Published = { kind: 'bench', deviceId: d.id, msg: bench };
    if (!p.benchLast) this.published.push(benchMsg);
    const gates = (cmd.gates ?? {}) as { maxP95Ms?: number; minFps?: number; minMap50?: number };
    const gateCode = gates.maxP95Ms !== undefined && p.p95 > gates.maxP95Ms ? 'AGENT_GATE_LATENCY'
      : gates.minFps !== undefined && p.fps < gates.minFps ? 'AGENT_GATE_FPS'
      : gates.minMap50 !== undefined && p.map50 !== undefined && p.map50 < gates.minMap50 ? 'AGENT_GATE_ACCURACY' : undefined;
    if (gateCode !== undefined) {
      this.#event(d, cmd, 'failed', { code: gateCode, message: 'gate' });
      this.#event(d, cmd, 'rolled_back', { code: gateCode, message: 'gate; the old version keeps serving' });
    } else {
      [d.previous, d.active] = [d.active, pkg.version];
      this.#event(d, cmd, 'succeeded', { result: { version: pkg.version, p95Ms: p.p95, fps: p.fps } });
    }
    if (p.benchLast) this.published.push(benchMsg);
  }
}

/** An engine wired to a fake fleet. */
export function engineFor(db: Database.Database, clock: FakeClock, fleet: FakeFleet, over: Partial<RolloutEngineOptions> = {}): RolloutEngine {
  let n = 0;
  return new RolloutEngine({
    db, now: clock.now, sendCommand: fleet.sendCommand, deviceOnline: fleet.deviceOnline, resolveTargets: fleet.resolveTargets,
    makeDeployCommand: fleet.makeDeployCommand, newId: () => `r${++n}x${clock.now().toString(36)}`, ...over,
  });
}

/** A spec over `ids` with the given overrides. */
export function spec(ids: string[], over: Partial<RolloutSpecInput> = {}): RolloutSpecInput {
  return { package: PKG, target: { deviceIds: ids }, waves: { canary: { count: 1 }, percents: [100] }, rate: { perMinute: 1000 }, ...over };
}

/** Device ids `dev-00`, `dev-01`… */
export function ids(n: number, prefix = 'dev'): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(2, '0')}`);
}
