import { makeEvent, type EventMessage } from '@kd-edge/core';
import { beforeEach, describe, expect, it } from 'vitest';
import type { RolloutEngine } from '../src/rollout/rollout-engine.js';
import type { ExecutionInfo } from '../src/rollout/rollout-types.js';
import { engineFor, FakeClock, FakeFleet, ids, rolloutDb, spec, type Published } from './rollout-helpers.js';

let clock: FakeClock;
let fleet: FakeFleet;
let engine: RolloutEngine;
let changes: ExecutionInfo[];

beforeEach(() => {
  clock = new FakeClock();
  fleet = new FakeFleet(clock);
  engine = engineFor(rolloutDb(), clock, fleet);
  changes = [];
  engine.on('execution', (e) => changes.push(e));
});

const exec = (id: string, device: string) => engine.executions(id).find((e) => e.deviceId === device)!;

/** Start a one-wave rollout over `devs`, send every command, and let the devices run without delivering their messages. */
async function started(devs: string[], over: Parameters<typeof spec>[1] = {}): Promise<{ id: string; out: Published[] }> {
  fleet.add(devs);
  const id = engine.start(spec(devs, { waves: { canary: { percent: 100 }, percents: [100] }, ...over }));
  await engine.tick();
  fleet.run();
  return { id, out: fleet.published.splice(0) };
}

function deliver(messages: Published[]): boolean[] {
  return messages.map((p) => (p.kind === 'event' ? engine.onEvent(p.deviceId, p.msg) : engine.onBench(p.deviceId, p.msg)));
}

describe('device events', () => {
  it('follows the agent sequence, then ignores the same messages delivered again', async () => {
    const { id, out } = await started(['a']);
    changes.length = 0;
    // Download progress within the same state is not a change of state.
    expect(deliver(out)).toEqual([true, true, false, true, true, true, true, true]);
    expect(changes.map((c) => c.state)).toEqual(['accepted', 'downloading', 'verifying', 'activating', 'benchmarking', 'benchmarking', 'succeeded']);
    expect(changes[5]!.bench).not.toBeNull();
    changes.length = 0;
    expect(deliver(out).some(Boolean)).toBe(false); // QoS 1 duplicates
    expect(changes).toEqual([]);
    expect(exec(id, 'a')).toMatchObject({ state: 'succeeded', deviceState: 'succeeded' });
  });

  it('never moves a device backwards when events arrive out of order, and keeps the first final state', async () => {
    const { id, out } = await started(['a']);
    const events = out.filter((p) => p.kind === 'event');
    const final = events[events.length - 1]!;
    expect(deliver([final])).toEqual([true]);
    expect(exec(id, 'a').state).toBe('succeeded');
    // Everything earlier arrives late: nothing changes.
    expect(deliver(events.slice(0, -1))).toEqual(events.slice(0, -1).map(() => false));
    const failed = makeEvent({ deviceId: 'a', commandId: `ro-${id}-a`, command: 'deploy', state: 'failed', code: 'X_LATE' });
    expect(engine.onEvent('a', failed)).toBe(false);
    expect(exec(id, 'a')).toMatchObject({ state: 'succeeded', code: null });
    // A skipped step is fine; a step back is not.
    const b = (await started(['b'])).id;
    const ev = (state: EventMessage['state']) => makeEvent({ deviceId: 'b', commandId: `ro-${b}-b`, command: 'deploy', state });
    expect(engine.onEvent('b', ev('verifying'))).toBe(true);
    expect(engine.onEvent('b', ev('downloading'))).toBe(false);
    expect(engine.onEvent('b', ev('accepted'))).toBe(false);
    expect(exec(b, 'b').state).toBe('verifying');
  });

  it('answers repeats of a redelivered command with no change', async () => {
    const { id, out } = await started(['a']);
    deliver(out);
    // The broker delivers the command again; the agent re-publishes its recorded outcome with repeat: true.
    fleet.devices.get('a')!.inbox.push(fleet.sent[0]!.command);
    fleet.run();
    const again = fleet.published.splice(0);
    expect(again).toHaveLength(1);
    expect(again[0]!.kind === 'event' && again[0]!.msg.repeat).toBe(true);
    changes.length = 0;
    expect(deliver(again)).toEqual([false]);
    expect(changes).toEqual([]);
    expect(exec(id, 'a').state).toBe('succeeded');
  });

  it('counts a device-side gate failure as failed whichever of failed and rolled_back comes first', async () => {
    const { id, out } = await started(['a', 'b'], { gates: { maxP95Ms: 5 }, errorThreshold: 1 });
    const last2 = (d: string) => out.filter((p) => p.deviceId === d && p.kind === 'event').slice(-2);
    const [aFailed, aRolled] = last2('a');
    const [bFailed, bRolled] = last2('b');
    deliver([aFailed!, aRolled!, bRolled!, bFailed!]);
    for (const d of ['a', 'b']) expect(exec(id, d)).toMatchObject({ state: 'failed', code: 'AGENT_GATE_LATENCY', rollback: null });
    expect(exec(id, 'b').deviceState).toBe('rolled_back');
  });

  it('ignores events and reports for unknown command ids, from the wrong device, or not tied to a command', async () => {
    const { id, out } = await started(['a', 'b']);
    const aEvents = out.filter((p) => p.deviceId === 'a');
    changes.length = 0;
    const wrong = aEvents.map((p) => (p.kind === 'event' ? engine.onEvent('b', p.msg) : engine.onBench('b', p.msg)));
    expect(wrong.some(Boolean)).toBe(false);
    expect(engine.onEvent('a', makeEvent({ deviceId: 'a', commandId: 'c-0001', command: 'ping', state: 'succeeded' }))).toBe(false);
    expect(engine.onEvent('a', makeEvent({ deviceId: 'a', state: 'failed', code: 'PROTOCOL_JSON' }))).toBe(false);
    expect(engine.onEvent('a', makeEvent({ deviceId: 'a', commandId: `rb-${id}-a`, command: 'rollback', state: 'rolled_back' }))).toBe(false);
    const bench = aEvents.find((p) => p.kind === 'bench')!.msg;
    expect(engine.onBench('a', { ...bench, commandId: 'c-0003' } as typeof bench)).toBe(false);
    expect(engine.onBench('a', { ...bench, commandId: null } as typeof bench)).toBe(false);
    expect(changes).toEqual([]);
    // The first report for the deploy is the one kept and judged.
    expect(engine.onBench('a', bench)).toBe(true);
    expect(engine.onBench('a', { ...bench, latencyMs: { ...bench.latencyMs, p95: 999 } } as typeof bench)).toBe(false);
    expect(exec(id, 'a').bench!.latencyMs.p95).toBe(10);
  });
});

describe('sending', () => {
  it('queues a command again when the publish fails, and sends it at the next tick', async () => {
    const devs = ids(3);
    fleet.add(devs);
    const errors: Error[] = [];
    engine.on('error', (e) => errors.push(e));
    const id = engine.start(spec(devs, { waves: { canary: { percent: 100 }, percents: [100] } }));
    fleet.failSends = 2;
    await engine.tick();
    expect(errors.map((e) => e.message)).toEqual([
      expect.stringContaining('sending the deploy to dev-00 failed: broker unavailable'),
      expect.stringContaining('sending the deploy to dev-01 failed'),
    ]);
    expect(engine.executions(id).map((e) => [e.state, e.sentAt === null])).toEqual([['queued', true], ['queued', true], ['sent', false]]);
    await engine.tick();
    expect(fleet.sent.map((s) => s.deviceId)).toEqual(['dev-02', 'dev-00', 'dev-01']);
    expect(engine.executions(id).every((e) => e.state === 'sent')).toBe(true);
  });

  it('fails a device whose command cannot be built, without sending anything to it', async () => {
    fleet.add(['a', 'b', 'c']);
    const eng = engineFor(rolloutDb(), clock, fleet, {
      makeDeployCommand: (r, d, cid) => {
        if (d === 'a') throw new Error('package not in the registry');
        return { ...fleet.makeDeployCommand(r, d, cid), ...(d === 'b' ? { id: 'other' } : {}) };
      },
    });
    eng.on('error', () => undefined);
    const id = eng.start(spec(['a', 'b', 'c'], { errorThreshold: 1, waves: { canary: { percent: 100 }, percents: [100] } }));
    await eng.tick();
    expect(eng.executions(id).map((e) => [e.deviceId, e.state, e.code])).toEqual([
      ['a', 'failed', 'FLEET_DEPLOY_COMMAND'], ['b', 'failed', 'FLEET_DEPLOY_COMMAND'], ['c', 'sent', null],
    ]);
    expect(fleet.sent.map((s) => s.deviceId)).toEqual(['c']);
    await eng.abort(id, 'stop');
    expect(fleet.sent.map((s) => `${s.deviceId}:${s.command.command}`)).toEqual(['c:deploy', 'c:rollback']);
  });
});
