import { afterEach, describe, expect, it } from 'vitest';
import { ADAPT_MIGRATIONS } from '../src/adapt/adapt-migrations.js';
import { coreMigrations } from '../src/db/core-migrations.js';
import { migrate } from '../src/db/migrate.js';
import { ROLLOUT_MIGRATIONS } from '../src/rollout/rollout-migrations.js';
import type { ExecutionInfo } from '../src/rollout/rollout-types.js';
import { ROLLOUT_WARNING_MIGRATIONS, RolloutWarningStore, type RolloutWarning } from '../src/rollout/rollout-warnings.js';
import { call, openEvents, startApi, waitFor, type ApiFixture, type SseClient } from './http-helpers.js';

let fx: ApiFixture;
const clients: SseClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await fx.close();
});

async function connect(): Promise<SseClient> {
  const before = fx.api.events.clientCount;
  const c = await openEvents(fx);
  clients.push(c);
  await waitFor('the client to be registered', () => fx.api.events.clientCount === before + 1);
  return c;
}

describe('GET /api/events', () => {
  it('streams device, bench, rollout, wave and execution events as they happen', async () => {
    fx = await startApi();
    fx.status('cam-1');
    await fx.ctx.pushPackage((await fx.makePackage('pets', '1.0.0')).tar);
    const sse = await connect();
    expect(sse.status).toBe(200);
    expect(sse.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(sse.headers['cache-control']).toContain('no-store');

    fx.status('cam-2');
    await waitFor('device event', () => sse.of('device').length === 1);
    expect(sse.of('device')[0]).toMatchObject({ kind: 'online', kinds: ['online'], deviceId: 'cam-2', device: { id: 'cam-2', online: true } });

    const started = await call(fx, 'POST', '/api/rollouts', {
      body: { package: { name: 'pets', version: '1.0.0' }, target: { deviceIds: ['cam-1'] }, waves: { canary: { count: 1 } } },
    });
    const id = started.body.id as string;
    await waitFor('rollout and wave events', () => sse.of('rollout').length === 1 && sse.of('wave').length === 1);
    expect(sse.of('rollout')[0]).toMatchObject({ id, state: 'running', package: { name: 'pets', version: '1.0.0' } });
    expect(sse.of('wave')[0]).toMatchObject({ rolloutId: id, index: 0, deviceIds: ['cam-1'], state: 'running' });

    await fx.ctx.rollouts.tick();
    await waitFor('sent execution', () => sse.of('execution').some((e) => e.state === 'sent'));
    const commandId = fx.sent[0]!.command.id;
    fx.event('cam-1', commandId, 'accepted');
    fx.event('cam-1', commandId, 'activating');
    fx.event('cam-1', commandId, 'succeeded');
    await waitFor('succeeded execution', () => sse.of('execution').some((e) => e.state === 'succeeded'));
    expect(sse.of('execution').map((e: ExecutionInfo) => e.state)).toEqual(['sent', 'accepted', 'activating', 'succeeded']);
    expect(sse.of('execution').every((e: ExecutionInfo) => e.rolloutId === id && e.deviceId === 'cam-1')).toBe(true);

    fx.bench('cam-2', 20, '2026-05-01T12:00:05Z');
    await waitFor('bench event', () => sse.of('bench').length === 1);
    expect(sse.of('bench')[0]).toEqual({ deviceId: 'cam-2', p50: 10, p95: 20, fps: 50, ts: Date.parse('2026-05-01T12:00:05Z'), powerMw: null, tempC: null });
    // with tegrastats figures: the total power and the hottest zone
    fx.bench('cam-2', 20, '2026-05-01T12:00:06Z', null, { tegrastats: { samples: 4, totalPowerMw: 5200, powerMw: { VDD_IN: 5200 }, tempC: { cpu: 48.5, gpu: 51 } } });
    await waitFor('second bench event', () => sse.of('bench').length === 2);
    expect(sse.of('bench')[1]).toMatchObject({ deviceId: 'cam-2', powerMw: 5200, tempC: 51 });

    await fx.ctx.rollouts.tick(); // the wave ends, the rollout succeeds
    await waitFor('rollout succeeded', () => sse.of('rollout').some((r) => r.state === 'succeeded'));

    // Several clients get the same events.
    const second = await connect();
    await call(fx, 'PUT', '/api/devices/cam-1/tags', { body: { tags: ['orin'] } });
    await waitFor('tags on both', () => [sse, second].every((c) => c.of('device').some((d) => d.kind === 'tags')));
    expect(second.of('device').find((d) => d.kind === 'tags').device.tags).toEqual(['orin']);
  });

  it('carries each rollout\'s warnings, and sends the rollout again once they are recorded', async () => {
    fx = await startApi();
    // As FleetServer has it: the warnings found when a rollout starts are kept beside it.
    migrate(fx.db, [...coreMigrations, ...ROLLOUT_MIGRATIONS, ...ROLLOUT_WARNING_MIGRATIONS, ...ADAPT_MIGRATIONS]);
    const store = new RolloutWarningStore(fx.db);
    fx.ctx.rolloutWarnings = store;
    fx.status('cam-1');
    fx.status('cam-2');
    await fx.ctx.pushPackage((await fx.makePackage('pets', '1.0.0')).tar);
    const sse = await connect();
    expect(store.listenerCount('set')).toBe(1);

    // A package without TensorRT files: the check at the start records no warning, and the stream says so twice.
    const started = await call(fx, 'POST', '/api/rollouts', {
      body: { package: { name: 'pets', version: '1.0.0' }, target: { deviceIds: ['cam-1', 'cam-2'] }, waves: { canary: { count: 1 } }, approval: 'manual' },
    });
    expect([started.status, started.body.warnings]).toEqual([201, []]);
    const id = started.body.id as string;
    await waitFor('the rollout and its (empty) warnings', () => sse.of('rollout').length === 2);
    expect(sse.of('rollout')).toEqual([expect.objectContaining({ id, state: 'running', warnings: [] }), expect.objectContaining({ id, state: 'running', warnings: [] })]);

    // Recorded warnings go out at once with the rollout, and every later rollout event carries them.
    const warning: RolloutWarning = {
      code: 'FLEET_TRT_NO_CACHE', tensorrt: '8.2.1', devices: ['cam-2'],
      message: '1 target device reports TensorRT 8.2.1 (cam-2), for which pets@1.0.0 has no int8 calibration cache (it has 10.3.0): its engine will build fp16',
    };
    store.set(id, [warning]);
    await waitFor('the rollout with its warning', () => sse.of('rollout').length === 3);
    expect(sse.of('rollout')[2]).toMatchObject({ id, state: 'running', package: { name: 'pets', version: '1.0.0' }, warnings: [warning] });
    const paused = await call(fx, 'POST', `/api/rollouts/${id}/pause`, { body: { reason: 'lab closed' } });
    // The action's answer carries them too: the dashboard keeps it in place of the rollout it had.
    expect(paused.body).toMatchObject({ id, state: 'paused', warnings: [warning] });
    await waitFor('the paused rollout', () => sse.of('rollout').some((r) => r.state === 'paused'));
    expect(sse.of('rollout').find((r) => r.state === 'paused')).toMatchObject({ reason: 'lab closed', warnings: [warning] });
    expect((await call(fx, 'GET', `/api/rollouts/${id}`)).body.rollout.warnings).toEqual([warning]);

    clients.splice(0)[0]!.close();
    await waitFor('no client left', () => fx.api.events.clientCount === 0);
    expect(store.listenerCount('set')).toBe(0);
  });

  it('sends a heartbeat comment while idle', async () => {
    fx = await startApi({ api: { events: { heartbeatMs: 30 } } });
    const sse = await connect();
    await waitFor('two pings', () => sse.comments.filter((c) => c === 'ping').length >= 2);
    expect(sse.events).toEqual([]);
  });

  it('coalesces a burst of device changes to one event at once and one with the latest state per device per window', async () => {
    // The hub's clock stands still during the burst, so however slow the machine, the burst is inside one window.
    const clock = { t: 1_000_000 };
    fx = await startApi({ api: { events: { coalesceMs: 300, now: () => clock.t } } });
    const sse = await connect();
    const ids = Array.from({ length: 50 }, (_, i) => `cam-${String(i).padStart(2, '0')}`);
    // Ten reports per device, alternating online and offline, the last one offline.
    for (let round = 0; round < 10; round++) for (const id of ids) fx.status(id, round % 2 === 0);
    clock.t += 300;
    await waitFor('the trailing events', () => ids.every((id) => sse.of('device').filter((d) => d.deviceId === id).length === 2));
    for (const id of ids) {
      const events = sse.of('device').filter((d) => d.deviceId === id);
      expect(events[0]).toMatchObject({ kind: 'online', kinds: ['online'], device: { online: true } });
      expect(events[1]).toMatchObject({ kind: 'offline', kinds: ['offline', 'online'], device: { online: false } });
    }
    expect(fx.api.events.stats()).toMatchObject({ coalesced: 50 * 9, events: 100 });

    // Within the window after the trailing event a change waits; after it, the next change goes out at once.
    fx.status('cam-00');
    expect(fx.api.events.stats().coalesced).toBe(50 * 9 + 1);
    clock.t += 300;
    await waitFor('the held change', () => sse.of('device').filter((d) => d.deviceId === 'cam-00').length === 3);
    clock.t += 300;
    fx.status('cam-01');
    await waitFor('a change at once', () => sse.of('device').filter((d) => d.deviceId === 'cam-01').length === 3);
    expect(fx.api.events.stats().coalesced).toBe(50 * 9 + 1);
  });

  it('drops a client that stops reading once its buffer passes the limit, and keeps serving the others', async () => {
    fx = await startApi({ api: { events: { maxBufferBytes: 64 * 1024 } } });
    const reader = await connect();
    const stalled = await connect();
    stalled.pause();
    const big = 'x'.repeat(8 * 1024);
    let sent = 0;
    // Small batches, each read by the live client before the next: only the stalled one falls behind.
    while (fx.api.events.stats().dropped === 0 && sent < 20_000) {
      for (let i = 0; i < 4; i++) {
        fx.ctx.rollouts.emit('execution', { rolloutId: 'r1', deviceId: 'cam-1', wave: 0, state: 'sent', message: big, seq: sent++ } as unknown as ExecutionInfo);
      }
      await waitFor('the reader to keep up', () => reader.events.length === sent);
    }
    expect(fx.api.events.stats()).toMatchObject({ dropped: 1, clients: 1 });
    expect(fx.logger.lines.some((l) => l.level === 'warn' && l.message.includes('dropped'))).toBe(true);
    fx.ctx.rollouts.emit('execution', { rolloutId: 'r1', deviceId: 'cam-1', wave: 0, state: 'sent', message: 'after', seq: sent++ } as unknown as ExecutionInfo);
    await waitFor('the reader still served', () => reader.events.length === sent);
    expect(reader.events.map((e) => e.data.seq)).toEqual(Array.from({ length: sent }, (_, i) => i));
  });

  it('forgets a client that disconnects and stops listening to the fleet when none is left; close() ends the streams', async () => {
    fx = await startApi();
    const before = { change: fx.ctx.devices.listenerCount('change'), execution: fx.ctx.rollouts.listenerCount('execution') };
    const a = await connect();
    await connect();
    expect(fx.ctx.devices.listenerCount('change')).toBe(before.change + 1);
    a.close();
    await waitFor('one client left', () => fx.api.events.clientCount === 1);
    expect(fx.ctx.devices.listenerCount('change')).toBe(before.change + 1);
    clients[1]!.close();
    await waitFor('no client left', () => fx.api.events.clientCount === 0);
    expect(fx.ctx.devices.listenerCount('change')).toBe(before.change);
    expect(fx.ctx.rollouts.listenerCount('execution')).toBe(before.execution);

    const c = await connect();
    fx.api.close();
    await waitFor('the stream ended', () => c.ended);
    expect(fx.api.events.clientCount).toBe(0);
    const late = await fetch(`${fx.url}/api/events`);
    expect(late.status).toBe(503);
    await late.body?.cancel();
  });
});
