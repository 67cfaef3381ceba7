import { describe, expect, it } from 'vitest';
import { engineFor, FakeClock, FakeFleet, ids, rolloutDb, spec } from './rollout-helpers.js';

/** Deploys sent in each whole simulated minute since `start`. */
function perMinute(fleet: FakeFleet, start: number): number[] {
  const out: number[] = [];
  for (const s of fleet.sent) {
    if (s.command.command !== 'deploy') continue;
    const m = Math.floor((s.at - start) / 60_000);
    while (out.length <= m) out.push(0);
    out[m]!++;
  }
  return out;
}

describe('rate limit', () => {
  it('sends at most perMinute commands in any minute', async () => {
    const clock = new FakeClock();
    const fleet = new FakeFleet(clock);
    const engine = engineFor(rolloutDb(), clock, fleet);
    fleet.add(ids(45));
    const start = clock.now();
    const id = engine.start(spec(ids(45), { rate: { perMinute: 10 }, waves: { canary: { percent: 100 }, percents: [100] } }));
    for (let t = 0; t < 6 * 60 && engine.get(id)!.state === 'running'; t += 5) {
      await engine.tick();
      fleet.step(engine);
      clock.advance(5000);
    }
    expect(engine.get(id)!.state).toBe('succeeded');
    expect(perMinute(fleet, start)).toEqual([10, 10, 10, 10, 5]);
    // Sliding window: no 60 s span holds more than 10 sends either.
    const times = fleet.sent.map((s) => s.at);
    for (const t of times) expect(times.filter((u) => u >= t && u < t + 60_000).length).toBeLessThanOrEqual(10);
  });

  it('ramps up exponentially with the devices that succeeded, up to the cap', async () => {
    const clock = new FakeClock();
    const fleet = new FakeFleet(clock);
    const engine = engineFor(rolloutDb(), clock, fleet);
    fleet.add(ids(100));
    const start = clock.now();
    const id = engine.start(spec(ids(100), {
      rate: { perMinute: 5, ramp: { factor: 2, every: 5, maxPerMinute: 20 } },
      waves: { canary: { percent: 100 }, percents: [100] },
    }));
    // Devices answer once a minute, so the rate each minute follows the successes before it:
    // 0 → 5/min, 5 → 10/min, 15 → 40 capped at 20/min.
    for (let t = 0; t < 10 * 60 && engine.get(id)!.state === 'running'; t += 5) {
      await engine.tick();
      if (t % 60 === 55) fleet.step(engine);
      clock.advance(5000);
    }
    expect(engine.get(id)!.state).toBe('succeeded');
    expect(perMinute(fleet, start)).toEqual([5, 10, 20, 20, 20, 20, 5]);
  });

  it('ramps with the devices notified when told to', async () => {
    const clock = new FakeClock();
    const fleet = new FakeFleet(clock);
    const engine = engineFor(rolloutDb(), clock, fleet);
    fleet.add(ids(30), { stall: true });
    const start = clock.now();
    engine.start(spec(ids(30), {
      rate: { perMinute: 4, ramp: { factor: 2, every: 4, on: 'notified', maxPerMinute: 16 } },
      waves: { canary: { percent: 100 }, percents: [100] }, errorThreshold: 1,
    }));
    for (let t = 0; t < 3 * 60; t += 5) {
      await engine.tick();
      clock.advance(5000);
    }
    // Nobody succeeds; notifications alone raise the rate: 4 → (4 notified) 8 → (8) 16.
    expect(perMinute(fleet, start)).toEqual([16, 14]);
    expect(fleet.sent.slice(0, 16).map((s) => (s.at - start) / 1000)).toEqual([0, 0, 0, 0, 5, 5, 5, 5, 10, 10, 10, 10, 10, 10, 10, 10]);
  });
});

describe('time-outs and offline devices', () => {
  it('sends to offline devices anyway, and times out those that never finish', async () => {
    const clock = new FakeClock();
    const fleet = new FakeFleet(clock);
    const engine = engineFor(rolloutDb(), clock, fleet);
    fleet.add(['ok', 'gone', 'late', 'stuck']);
    fleet.profile('gone').online = false;
    fleet.profile('late').online = false;
    fleet.profile('stuck').stall = true;
    const id = engine.start(spec(['ok', 'gone', 'late', 'stuck'], {
      deviceTimeoutSec: 120, successThreshold: 0.5, errorThreshold: 1, waves: { canary: { percent: 100 }, percents: [100] },
    }));
    await engine.tick();
    expect(fleet.sent.map((s) => s.deviceId).sort()).toEqual(['gone', 'late', 'ok', 'stuck']);
    fleet.step(engine);
    clock.advance(60_000);
    fleet.profile('late').online = true; // back: the broker's session delivers the command
    fleet.step(engine);
    expect(engine.executions(id).map((e) => [e.deviceId, e.state])).toEqual([['ok', 'succeeded'], ['gone', 'sent'], ['late', 'succeeded'], ['stuck', 'downloading']]);
    clock.advance(59_000);
    await engine.tick();
    expect(engine.get(id)!.state).toBe('running');
    clock.advance(1_000); // 120 s after sending
    await engine.tick();
    const byId = Object.fromEntries(engine.executions(id).map((e) => [e.deviceId, e]));
    expect(byId.gone).toMatchObject({ state: 'timed_out', code: 'FLEET_DEVICE_TIMEOUT', message: expect.stringContaining('last state: sent') });
    expect(byId.stuck).toMatchObject({ state: 'timed_out', message: expect.stringContaining('last state: downloading') });
    await engine.tick();
    expect(engine.get(id)!.state).toBe('succeeded');
    expect(engine.waves(id)[0]!.results).toMatchObject({ succeeded: 2, timedOut: 2, codes: { FLEET_DEVICE_TIMEOUT: 2 } });
    // A device that comes back after its time-out is recorded, but the verdict stands.
    fleet.profile('gone').online = true;
    fleet.step(engine);
    expect(engine.executions(id).find((e) => e.deviceId === 'gone')).toMatchObject({ state: 'timed_out', deviceState: 'succeeded' });
    expect(fleet.sent).toHaveLength(4);
  });
});
