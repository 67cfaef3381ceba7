import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { engineFor, FakeClock, FakeFleet, ids, rolloutDb, spec } from './rollout-helpers.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kd-rollout-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const never = new Promise<void>(() => {});

describe('restart', () => {
  it('a new engine on the same database carries on, and never sends a second deploy to a device', async () => {
    const clock = new FakeClock();
    const fleet = new FakeFleet(clock);
    const file = join(dir, 'fleet.db');
    const devs = ids(10);
    fleet.add(devs);
    fleet.profile('dev-05').stall = true; // answered "accepted" before the crash, never finishes
    const db1 = rolloutDb(file);
    // The process dies while publishing dev-06's command: 'sent' is on disk, the command never left.
    const engine1 = engineFor(db1, clock, fleet, {
      sendCommand: (d, c) => (d === 'dev-06' ? never : fleet.sendCommand(d, c)),
    });
    const id = engine1.start(spec(devs, {
      rate: { perMinute: 7 }, deviceTimeoutSec: 300, successThreshold: 0.5, errorThreshold: 0.5,
      waves: { canary: { count: 2 }, percents: [100] },
    }));
    await engine1.tick();
    fleet.step(engine1);
    clock.advance(1000);
    void engine1.tick(); // wave 1: dev-02..05 sent, then stuck on dev-06
    await new Promise((r) => setTimeout(r, 20));
    fleet.run();
    // dev-04's answers wait in the fleet's own broker session until the fleet is back.
    const held = fleet.published.filter((p) => p.deviceId === 'dev-04');
    fleet.pump(engine1, (p) => p.deviceId !== 'dev-04');
    const before = Object.fromEntries(engine1.executions(id).map((e) => [e.deviceId, e.state]));
    expect(before).toEqual({
      'dev-00': 'succeeded', 'dev-01': 'succeeded', 'dev-02': 'succeeded', 'dev-03': 'succeeded',
      'dev-04': 'sent', 'dev-05': 'downloading', 'dev-06': 'sent', 'dev-07': 'queued', 'dev-08': 'queued', 'dev-09': 'queued',
    });
    db1.close();

    const db2 = rolloutDb(file);
    const engine2 = engineFor(db2, clock, fleet);
    expect(engine2.get(id)).toMatchObject({ state: 'running', currentWave: 1 });
    await engine2.tick();
    // Still inside the first minute's window: the rate allows nothing more yet.
    expect(fleet.sent).toHaveLength(6);
    clock.advance(60_000);
    await engine2.tick();
    expect(fleet.sent.slice(6).map((s) => s.deviceId)).toEqual(['dev-07', 'dev-08', 'dev-09']);
    fleet.published.unshift(...held);
    fleet.step(engine2);
    for (let i = 0; i < 6 && engine2.get(id)!.state === 'running'; i++) {
      clock.advance(60_000);
      await engine2.tick();
      fleet.step(engine2);
    }
    expect(engine2.get(id)!.state).toBe('succeeded');
    const after = Object.fromEntries(engine2.executions(id).map((e) => [e.deviceId, [e.state, e.code]]));
    expect(after['dev-04']).toEqual(['succeeded', null]);
    expect(after['dev-05']).toEqual(['timed_out', 'FLEET_DEVICE_TIMEOUT']);
    expect(after['dev-06']).toEqual(['timed_out', 'FLEET_DEVICE_TIMEOUT']);
    // One deploy per device at most, over both engines; dev-06's never left the first process.
    const count = (d: string) => fleet.sentTo(d, 'deploy').length;
    expect(devs.map(count)).toEqual([1, 1, 1, 1, 1, 1, 0, 1, 1, 1]);
    db2.close();
  });

  it('sends the rollbacks an abort queued before the process stopped', async () => {
    const clock = new FakeClock();
    const fleet = new FakeFleet(clock);
    const file = join(dir, 'fleet.db');
    const devs = ids(4);
    fleet.add(devs);
    const db1 = rolloutDb(file);
    let crashed = false;
    const engine1 = engineFor(db1, clock, fleet, {
      sendCommand: (d, c) => (crashed ? never : fleet.sendCommand(d, c)),
    });
    const id = engine1.start(spec(devs, { waves: { canary: { percent: 100 }, percents: [100] } }));
    await engine1.tick();
    fleet.step(engine1);
    crashed = true;
    void engine1.abort(id, 'bad model'); // the first rollback hangs: 'sent' on disk; the others stay queued
    await new Promise((r) => setTimeout(r, 20));
    db1.close();

    const db2 = rolloutDb(file);
    const engine2 = engineFor(db2, clock, fleet);
    expect(engine2.get(id)).toMatchObject({ state: 'aborted', reason: 'bad model' });
    await engine2.tick();
    await engine2.tick();
    expect(fleet.sent.filter((s) => s.command.command === 'rollback').map((s) => s.deviceId)).toEqual(['dev-01', 'dev-02', 'dev-03']);
    fleet.step(engine2);
    expect(engine2.executions(id).map((e) => [e.state, e.rollback?.state])).toEqual([
      ['succeeded', 'sent'], ['rolled_back', 'rolled_back'], ['rolled_back', 'rolled_back'], ['rolled_back', 'rolled_back'],
    ]);
    db2.close();
  });
});
