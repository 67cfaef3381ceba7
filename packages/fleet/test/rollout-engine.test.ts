import { beforeEach, describe, expect, it } from 'vitest';
import type { RolloutEngine } from '../src/rollout/rollout-engine.js';
import { RolloutError } from '../src/rollout/rollout-error.js';
import type { RolloutInfo, WaveInfo } from '../src/rollout/rollout-types.js';
import { engineFor, FakeClock, FakeFleet, ids, rolloutDb, spec } from './rollout-helpers.js';

let clock: FakeClock;
let fleet: FakeFleet;
let engine: RolloutEngine;

beforeEach(() => {
  clock = new FakeClock();
  fleet = new FakeFleet(clock);
  engine = engineFor(rolloutDb(), clock, fleet);
});

/** Ticks and device rounds, a second apart, until `until` holds (or `max` rounds). */
async function drive(until: () => boolean, max = 50): Promise<void> {
  for (let i = 0; i < max && !until(); i++) {
    await engine.tick();
    fleet.step(engine);
    clock.advance(1000);
  }
}

const stateOf = (id: string): string => engine.get(id)!.state;
const exec = (id: string, device: string) => engine.executions(id).find((e) => e.deviceId === device)!;
const sentDevices = (command = 'deploy'): string[] => fleet.sent.filter((s) => s.command.command === command).map((s) => s.deviceId);

describe('waves', () => {
  it('runs the canary, then each percentage wave only after the previous one is over', async () => {
    const devs = ids(20);
    fleet.add(devs);
    const waveEvents: WaveInfo[] = [];
    engine.on('wave', (w) => waveEvents.push(w));
    const id = engine.start(spec(devs, { waves: { canary: { count: 1 }, percents: [10, 50, 100] } }));
    expect(engine.waves(id).map((w) => w.deviceIds.length)).toEqual([1, 1, 8, 10]);
    expect(engine.executions(id).every((e) => e.state === 'queued' && e.commandId === `ro-${id}-${e.deviceId}`)).toBe(true);

    await engine.tick();
    expect(sentDevices()).toEqual(['dev-00']); // only the canary, though the rate allows more
    await engine.tick();
    expect(sentDevices()).toHaveLength(1);
    fleet.step(engine);
    expect(exec(id, 'dev-00')).toMatchObject({ state: 'succeeded', deviceState: 'succeeded', bench: { latencyMs: { p95: 10 } } });

    await engine.tick(); // wave 0 passes, wave 1 is sent
    expect(sentDevices()).toEqual(['dev-00', 'dev-01']);
    fleet.step(engine);
    await engine.tick();
    expect(sentDevices()).toEqual(devs.slice(0, 10));
    expect(engine.get(id)).toMatchObject({ state: 'running', currentWave: 2 });

    await drive(() => stateOf(id) !== 'running');
    expect(stateOf(id)).toBe('succeeded');
    expect(sentDevices()).toEqual(devs);
    expect(engine.waves(id).map((w) => w.state)).toEqual(['passed', 'passed', 'passed', 'passed']);
    expect(engine.waves(id)[2]!.results).toMatchObject({ total: 8, succeeded: 8, successShare: 1, failureShare: 0 });
    expect(waveEvents.filter((w) => w.state === 'running').map((w) => w.index)).toEqual([0, 1, 2, 3]);
    // The command carries the rollout's id, the device and the forwarded gates.
    expect(fleet.sent[0]!.command).toMatchObject({ id: `ro-${id}-dev-00`, deviceId: 'dev-00', rolloutId: id, command: 'deploy' });
  });

  it('waits for approval between waves when approval is manual', async () => {
    const devs = ids(4);
    fleet.add(devs);
    const id = engine.start(spec(devs, { approval: 'manual', waves: { canary: { count: 1 }, percents: [50, 100] } }));
    await drive(() => stateOf(id) !== 'running');
    expect(engine.get(id)).toMatchObject({ state: 'awaiting_approval', currentWave: 0, reason: expect.stringContaining('waiting for approval of wave 1') });
    await engine.tick();
    expect(sentDevices()).toEqual(['dev-00']);
    expect(() => engine.resume(id)).toThrow(RolloutError);
    engine.approve(id);
    expect(engine.get(id)).toMatchObject({ state: 'running', currentWave: 1, reason: null });
    await drive(() => stateOf(id) !== 'running');
    expect(stateOf(id)).toBe('awaiting_approval');
    engine.approve(id);
    await drive(() => stateOf(id) !== 'running');
    expect(stateOf(id)).toBe('succeeded');
    expect(() => engine.approve(id)).toThrow(expect.objectContaining({ code: 'FLEET_ROLLOUT_STATE' }));
  });

  it('refuses a start with no targets, or with devices another rollout holds', () => {
    fleet.add(ids(3));
    engine.start(spec([], { target: { all: true } }));
    expect(() => engine.start(spec(['dev-02']))).toThrow(expect.objectContaining({ code: 'FLEET_ROLLOUT_CONFLICT' }));
    const empty = engineFor(rolloutDb(), clock, fleet, { resolveTargets: () => [] });
    expect(() => empty.start(spec(['x']))).toThrow(expect.objectContaining({ code: 'FLEET_ROLLOUT_NO_TARGETS' }));
    // A resolver that hands back a service account is a bug: nothing is stored or sent.
    const withService = engineFor(rolloutDb(), clock, fleet, { resolveTargets: () => ['dev-01', 'kd-dashboard'] });
    expect(() => withService.start(spec(['x'], { target: { all: true } }))).toThrow(/"kd-dashboard".*service account/);
    expect(withService.list()).toEqual([]);
    expect(() => engine.start({ package: {} } as never)).toThrow(expect.objectContaining({ code: 'FLEET_ROLLOUT_SPEC', field: 'package.name' }));
  });
});

describe('gates', () => {
  it('fails a device whose bench report violates a gate (the device applied it too, and kept its old version)', async () => {
    const devs = ids(4);
    fleet.add(devs);
    fleet.profile('dev-02').p95 = 40;
    const id = engine.start(spec(devs, { gates: { maxP95Ms: 25 }, successThreshold: 0.6, errorThreshold: 0.5, waves: { canary: { count: 1 }, percents: [100] } }));
    await drive(() => stateOf(id) !== 'running');
    expect(exec(id, 'dev-02')).toMatchObject({ state: 'failed', code: 'GATE_P95', deviceState: 'failed', rollback: null });
    expect(exec(id, 'dev-02').message).toContain('p95 latency 40 ms');
    expect(stateOf(id)).toBe('succeeded'); // 2 of 3 in the last wave, over 0.6
    expect(engine.waves(id)[1]!.results).toMatchObject({ succeeded: 2, failed: 1, codes: { GATE_P95: 1 } });
    expect(sentDevices('rollback')).toEqual([]);
  });

  it('fails and rolls back a device that activated a version the fleet gates reject', async () => {
    const devs = ids(3);
    fleet.add(devs);
    fleet.profile('dev-01').fps = 20;
    // The device is not told the fps gate, so it activates; the fleet judges the report and takes it back.
    const id = engine.start(spec(devs, { gates: { minFps: 30 }, deploy: { gates: {} }, successThreshold: 0.5, errorThreshold: 0.9, waves: { canary: { count: 1 }, percents: [100] } }));
    await drive(() => stateOf(id) !== 'running');
    expect(stateOf(id)).toBe('succeeded');
    await engine.tick();
    fleet.step(engine);
    expect(fleet.sentTo('dev-01', 'rollback')).toEqual([expect.objectContaining({ id: `rb-${id}-dev-01`, fromVersion: '1.2.0', rolloutId: id })]);
    expect(exec(id, 'dev-01')).toMatchObject({ state: 'rolled_back', code: 'GATE_FPS', rollback: { state: 'rolled_back' } });
    expect(fleet.devices.get('dev-01')!.active).toBe('1.1.0');
    expect(sentDevices('rollback')).toEqual(['dev-01']);
  });

  it('waits for the bench report when success arrives first, and fails a device whose report never comes', async () => {
    fleet.add(['a', 'b']);
    fleet.profile('a').benchLast = true;
    const id = engine.start(spec(['a', 'b'], { gates: { maxP95Ms: 25 }, deviceTimeoutSec: 60, waves: { canary: { count: 2 }, percents: [100] } }));
    await engine.tick();
    fleet.run();
    // a's success comes before its report: the verdict waits for it.
    fleet.pump(engine, (p) => !(p.deviceId === 'a' && p.kind === 'bench'));
    expect(exec(id, 'a')).toMatchObject({ state: 'benchmarking', deviceState: 'succeeded' });
    expect(exec(id, 'b').state).toBe('succeeded');
    clock.advance(61_000);
    await engine.tick();
    expect(exec(id, 'a')).toMatchObject({ state: 'failed', code: 'GATE_NO_REPORT', rollback: { state: 'sent' } });
  });

  it('judges a report that arrives after the success event', async () => {
    fleet.add(['a']);
    fleet.profile('a').benchLast = true;
    fleet.profile('a').p95 = 30;
    const id = engine.start(spec(['a'], { gates: { maxP95Ms: 25 }, deploy: { gates: {} } }));
    await drive(() => stateOf(id) !== 'running');
    expect(stateOf(id)).toBe('aborted');
    // The device activated 1.2.0 before its report failed the fleet's gate: rolled back by the abort.
    expect(exec(id, 'a')).toMatchObject({ state: 'rolled_back', code: 'GATE_P95', deviceState: 'succeeded', rollback: { state: 'rolled_back' } });
    expect(fleet.devices.get('a')!.active).toBe('1.1.0');
  });
});

describe('thresholds', () => {
  it('aborts past the error threshold and rolls back exactly the devices that may run the version', async () => {
    const devs = ids(10);
    fleet.add(devs);
    for (const d of ['dev-01', 'dev-02', 'dev-03']) fleet.profile(d).failCode = 'AGENT_INJECTED_FAULT';
    fleet.profile('dev-04').stall = true; // in progress when the rollout aborts
    fleet.profile('dev-05').online = false; // online devices go first, so the rate leaves it queued
    const rollouts: RolloutInfo[] = [];
    engine.on('rollout', (r) => rollouts.push(r));
    const id = engine.start(spec(devs, { errorThreshold: 0.3, rate: { perMinute: 9 }, waves: { canary: { count: 1 }, percents: [100] } }));
    await drive(() => stateOf(id) !== 'running');
    expect(engine.get(id)).toMatchObject({ state: 'aborted', reason: expect.stringContaining('wave 1: 3 of 9 device(s) failed') });
    expect(rollouts.map((r) => [r.state, r.currentWave])).toEqual([['running', 0], ['running', 1], ['aborted', 1]]);
    expect(engine.waves(id)[1]).toMatchObject({ state: 'aborted', results: { failed: 3, codes: { AGENT_INJECTED_FAULT: 3 } } });
    // dev-00 (canary) and dev-06..09 succeeded, dev-04 is in progress; dev-05 was never sent (rate 9/min, offline last).
    expect(exec(id, 'dev-05')).toMatchObject({ state: 'queued', sentAt: null });
    await engine.tick();
    const expected = ['dev-00', 'dev-04', 'dev-06', 'dev-07', 'dev-08', 'dev-09'];
    expect(sentDevices('rollback').sort()).toEqual(expected);
    for (const d of expected) expect(fleet.sentTo(d, 'rollback')[0]).toMatchObject({ command: 'rollback', fromVersion: '1.2.0', id: `rb-${id}-${d}` });
    fleet.step(engine);
    expect(exec(id, 'dev-00')).toMatchObject({ state: 'rolled_back', rollback: { state: 'rolled_back' } });
    // dev-04 never activated 1.2.0: its agent refuses the rollback as stale, which changes nothing.
    expect(exec(id, 'dev-04')).toMatchObject({ state: 'downloading', rollback: { state: 'failed', code: 'AGENT_ROLLBACK_STALE' } });
    // Nothing more is deployed, and a second tick sends no second rollback.
    clock.advance(120_000);
    await engine.tick();
    expect(sentDevices()).not.toContain('dev-05');
    expect(sentDevices('rollback')).toHaveLength(expected.length);
    await expect(engine.abort(id)).rejects.toMatchObject({ code: 'FLEET_ROLLOUT_STATE' });
  });

  it('waits for approval below the success threshold; approve goes on', async () => {
    const devs = ids(10);
    fleet.add(devs);
    fleet.profile('dev-01').failCode = 'AGENT_INJECTED_FAULT';
    const id = engine.start(spec(devs, { successThreshold: 0.9, errorThreshold: 0.5, waves: { canary: { count: 4 }, percents: [100] } }));
    await drive(() => stateOf(id) !== 'running');
    expect(engine.get(id)).toMatchObject({ state: 'awaiting_approval', reason: expect.stringContaining('3 of 4 device(s) succeeded') });
    expect(engine.waves(id)[0]).toMatchObject({ state: 'below_threshold', results: { succeeded: 3, failed: 1, successShare: 0.75 } });
    await engine.tick();
    expect(sentDevices()).toHaveLength(4);
    engine.approve(id);
    await drive(() => stateOf(id) !== 'running');
    expect(stateOf(id)).toBe('succeeded');
    expect(sentDevices()).toHaveLength(10);
  });

  it('aborts below the success threshold when told to, and fails a last wave below it otherwise', async () => {
    fleet.add(ids(6));
    fleet.profile('dev-01').failCode = 'AGENT_INJECTED_FAULT';
    fleet.profile('dev-04').failCode = 'AGENT_INJECTED_FAULT';
    const waves = { canary: { count: 1 }, percents: [100] };
    const a = engine.start(spec(ids(3), { successThreshold: 1, onBelowThreshold: 'abort', errorThreshold: 1, waves }));
    const b = engine.start(spec(['dev-03', 'dev-04', 'dev-05'], { successThreshold: 1, errorThreshold: 1, waves }));
    await drive(() => stateOf(a) !== 'running' && stateOf(b) !== 'running');
    expect(engine.get(a)).toMatchObject({ state: 'aborted', reason: 'wave 1: 1 of 2 device(s) succeeded (50 %, success threshold 100 %)' });
    expect(engine.get(b)).toMatchObject({ state: 'failed', reason: 'wave 1: 1 of 2 device(s) succeeded (50 %, success threshold 100 %)' });
    expect(engine.waves(b)[1]!.state).toBe('below_threshold');
    await engine.tick();
    expect(sentDevices('rollback').sort()).toEqual(['dev-00', 'dev-02']); // from the aborted rollout only
  });
});

describe('operator controls', () => {
  it('pause stops sending, resume carries on; abort of a paused rollout rolls back', async () => {
    const devs = ids(6);
    fleet.add(devs);
    const id = engine.start(spec(devs, { rate: { perMinute: 2 }, waves: { canary: { percent: 100 }, percents: [100] } }));
    await engine.tick();
    fleet.step(engine);
    expect(sentDevices()).toHaveLength(2);
    engine.pause(id, 'looking at the canary');
    expect(engine.get(id)).toMatchObject({ state: 'paused', reason: 'looking at the canary' });
    expect(() => engine.pause(id)).toThrow(RolloutError);
    clock.advance(10 * 60_000);
    await engine.tick();
    expect(sentDevices()).toHaveLength(2);
    engine.resume(id);
    await engine.tick();
    expect(sentDevices()).toHaveLength(4);
    engine.pause(id);
    await engine.abort(id, 'wrong package');
    expect(engine.get(id)).toMatchObject({ state: 'aborted', reason: 'wrong package' });
    // dev-02/03 were sent but have not run yet: both get a rollback behind the deploy.
    expect(sentDevices('rollback').sort()).toEqual(ids(4));
    fleet.step(engine);
    expect(engine.executions(id).map((e) => e.state)).toEqual(['rolled_back', 'rolled_back', 'rolled_back', 'rolled_back', 'queued', 'queued']);
  });

  it('stops a tick that is sending when the rollout is paused meanwhile', async () => {
    const devs = ids(5);
    fleet.add(devs);
    const eng = engineFor(rolloutDb(), clock, fleet, {
      sendCommand: async (d, c) => {
        await fleet.sendCommand(d, c);
        if (fleet.sent.length === 2) eng.pause(rid);
      },
    });
    const rid = eng.start(spec(devs, { waves: { canary: { count: 5 }, percents: [100] } }));
    await eng.tick();
    expect(sentDevices()).toEqual(['dev-00', 'dev-01']);
    expect(eng.executions(rid).map((e) => e.state)).toEqual(['sent', 'sent', 'queued', 'queued', 'queued']);
  });
});
