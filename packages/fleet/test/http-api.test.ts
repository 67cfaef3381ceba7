import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { call, startApi, TOKEN, type ApiFixture } from './http-helpers.js';

let fx: ApiFixture;
afterEach(async () => {
  await fx.close();
});

const WRONG = 'not-the-token';

describe('REST API reads (no token needed)', () => {
  it('GET /api/info gives the fleet, the server facts and whether controls are possible', async () => {
    fx = await startApi();
    fx.status('cam-1');
    const r = await call(fx, 'GET', '/api/info', { token: null });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    expect(r.body).toMatchObject({ fleet: 'lab', version: '0.1.0-test', counts: { devices: 1, online: 1, packages: 0, rollouts: 0 }, auth: { controls: true } });
  });

  it('lists devices with the tag and online filters, shows one with its latest bench, and its latency history', async () => {
    fx = await startApi();
    fx.status('cam-1');
    fx.status('cam-2');
    fx.status('cam-3');
    fx.status('cam-3', false);
    fx.ctx.devices.setTags('cam-2', ['orin']);

    const all = await call(fx, 'GET', '/api/devices', { token: null });
    expect(all.status).toBe(200);
    expect(all.body.map((d: { id: string }) => d.id)).toEqual(['cam-1', 'cam-2', 'cam-3']);
    expect((await call(fx, 'GET', '/api/devices?online=true', { token: null })).body.map((d: { id: string }) => d.id)).toEqual(['cam-1', 'cam-2']);
    expect((await call(fx, 'GET', '/api/devices?online=false', { token: null })).body.map((d: { id: string }) => d.id)).toEqual(['cam-3']);
    expect((await call(fx, 'GET', '/api/devices?tag=orin', { token: null })).body.map((d: { id: string }) => d.id)).toEqual(['cam-2']);
    expect((await call(fx, 'GET', '/api/devices?tag=&online=', { token: null })).body).toHaveLength(3);
    const bad = await call(fx, 'GET', '/api/devices?online=maybe', { token: null });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'FLEET_BAD_REQUEST' });
    expect(bad.body.error.message).toContain('online');

    const before = await call(fx, 'GET', '/api/devices/cam-1', { token: null });
    expect(before.status).toBe(200);
    expect(before.body).toMatchObject({ device: { id: 'cam-1', online: true, agentVersion: '0.1.0' }, bench: null });

    fx.bench('cam-1', 20, '2026-05-01T12:00:01Z');
    fx.bench('cam-1', 30, '2026-05-01T12:00:02Z');
    fx.bench('cam-1', 40, '2026-05-01T12:00:03Z');
    const after = await call(fx, 'GET', '/api/devices/cam-1', { token: null });
    expect(after.body.bench).toMatchObject({ deviceId: 'cam-1', p95: 40, ts: Date.parse('2026-05-01T12:00:03Z') });
    // the list carries each device's latest figures (a late report dated earlier does not replace them), or null
    fx.bench('cam-2', 25, '2026-05-01T12:00:04Z', null, { tegrastats: { samples: 2, totalPowerMw: 4100, powerMw: {}, tempC: { soc: 40 } } });
    fx.bench('cam-1', 90, '2026-05-01T12:00:00Z');
    const list = await call(fx, 'GET', '/api/devices', { token: null });
    expect(Object.fromEntries(list.body.map((d: { id: string; bench: unknown }) => [d.id, d.bench]))).toEqual({
      'cam-1': { ts: Date.parse('2026-05-01T12:00:03Z'), p50: 20, p95: 40, fps: 25, powerMw: null, tempC: null },
      'cam-2': { ts: Date.parse('2026-05-01T12:00:04Z'), p50: 12.5, p95: 25, fps: 40, powerMw: 4100, tempC: 40 },
      'cam-3': null,
    });

    const latency = await call(fx, 'GET', '/api/devices/cam-1/latency?limit=2', { token: null });
    expect(latency.status).toBe(200);
    expect(latency.body).toEqual([
      { ts: Date.parse('2026-05-01T12:00:02Z'), p50: 15, p95: 30, fps: 1000 / 30 },
      { ts: Date.parse('2026-05-01T12:00:03Z'), p50: 20, p95: 40, fps: 1000 / 40 },
    ]);
    expect((await call(fx, 'GET', '/api/devices/cam-1/latency', { token: null })).body).toHaveLength(4); // with the late one
    expect((await call(fx, 'GET', '/api/devices/cam-1/latency?limit=0', { token: null })).status).toBe(400);
    expect((await call(fx, 'GET', '/api/devices/cam-1/latency?limit=1.5', { token: null })).status).toBe(400);

    for (const path of ['/api/devices/nope', '/api/devices/nope/latency']) {
      const missing = await call(fx, 'GET', path, { token: null });
      expect(missing.status).toBe(404);
      expect(missing.body.error.code).toBe('FLEET_NOT_FOUND');
    }
  });
});

describe('REST API controls', () => {
  it('PUT /api/devices/:id/tags needs the token: refused without it or with a wrong one, nothing changed', async () => {
    fx = await startApi();
    fx.status('cam-1');
    for (const token of [null, WRONG, '']) {
      const r = await call(fx, 'PUT', '/api/devices/cam-1/tags', { token, body: { tags: ['lab'] } });
      expect(r.status).toBe(401);
      expect(r.body.error.code).toBe('FLEET_UNAUTHORIZED');
      expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
    // A token that differs only in length or case is still wrong.
    expect((await call(fx, 'PUT', '/api/devices/cam-1/tags', { token: `${TOKEN}x`, body: { tags: ['lab'] } })).status).toBe(401);
    expect((await call(fx, 'PUT', '/api/devices/cam-1/tags', { token: TOKEN.toUpperCase(), body: { tags: ['lab'] } })).status).toBe(401);
    expect(fx.ctx.devices.get('cam-1')!.tags).toEqual([]);

    const ok = await call(fx, 'PUT', '/api/devices/cam-1/tags', { body: { tags: ['site:north', 'orin', 'orin'] } });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ id: 'cam-1', tags: ['orin', 'site:north'] });
    expect(fx.ctx.devices.get('cam-1')!.tags).toEqual(['orin', 'site:north']);
    // The scheme is case-insensitive (RFC 7235).
    const lower = await call(fx, 'PUT', '/api/devices/cam-1/tags', { token: null, headers: { authorization: `bearer ${TOKEN}` }, body: { tags: [] } });
    expect(lower.status).toBe(200);

    const badTag = await call(fx, 'PUT', '/api/devices/cam-1/tags', { body: { tags: ['ok', 'no spaces'] } });
    expect(badTag.status).toBe(400);
    expect(badTag.body.error.message).toContain('tags[1]');
    const noTags = await call(fx, 'PUT', '/api/devices/cam-1/tags', { body: { labels: ['x'] } });
    expect(noTags.status).toBe(400);
    expect(noTags.body.error.message).toContain('tags');
    const unknown = await call(fx, 'PUT', '/api/devices/ghost/tags', { body: { tags: ['x'] } });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('FLEET_DEVICE_NOT_FOUND');
    expect(fx.ctx.devices.get('cam-1')!.tags).toEqual([]);
  });

  it('POST /api/models stores a signed package sent as the body; lists and shows it; refuses an unsigned, a clashing and an unauthorised one', async () => {
    fx = await startApi();
    const pkg = await fx.makePackage('pets', '1.0.0');
    const bytes = await readFile(pkg.tar);
    const upload = (token: string | null, raw: Buffer = bytes) =>
      call(fx, 'POST', '/api/models', { token, raw, headers: { 'content-type': 'application/x-tar' } });

    for (const token of [null, WRONG]) expect((await upload(token)).status).toBe(401);
    expect(fx.ctx.registry.list()).toEqual([]);

    const pushed = await upload(TOKEN);
    expect(pushed.status).toBe(201);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    expect(pushed.body).toMatchObject({ name: 'pets', version: '1.0.0', sha256, size: bytes.length, url: '/artifacts/pets/1.0.0.tar' });
    expect(pushed.body.manifest.name).toBe('pets');
    expect(pushed.body.path).toBeUndefined(); // the server's file system is not the client's business
    expect(fx.ctx.registry.get('pets', '1.0.0')?.sha256).toBe(sha256);

    const list = await call(fx, 'GET', '/api/models', { token: null });
    expect(list.status).toBe(200);
    expect(list.body).toEqual([{ name: 'pets', version: '1.0.0', role: 'model', sha256, size: bytes.length, pushedAt: fx.clock.t, keyId: expect.any(String), origin: null, promotedAt: null, url: '/artifacts/pets/1.0.0.tar' }]);
    const one = await call(fx, 'GET', '/api/models/pets/1.0.0', { token: null });
    expect(one.status).toBe(200);
    expect(one.body.manifest).toMatchObject({ name: 'pets', version: '1.0.0' });
    expect((await call(fx, 'GET', '/api/models/pets/9.9.9', { token: null })).status).toBe(404);

    const stranger = await fx.makePackage('pets', '2.0.0', { untrusted: true });
    const refused = await upload(TOKEN, await readFile(stranger.tar));
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe('FLEET_PACKAGE_REFUSED');

    const clash = await fx.makePackage('pets', '1.0.0', { root: 'other', modelSize: 1000 });
    const exists = await upload(TOKEN, await readFile(clash.tar));
    expect(exists.status).toBe(409);
    expect(exists.body.error.code).toBe('FLEET_PACKAGE_EXISTS');
    const notATar = await upload(TOKEN, Buffer.from('this is not a tar'));
    expect(notATar.status).toBe(400);
    expect(notATar.body.error.code).toBe('FLEET_PACKAGE_REFUSED');
    expect(fx.ctx.registry.list().map((p) => `${p.name}@${p.version}`)).toEqual(['pets@1.0.0']);
    // Every upload was spooled to a temporary folder and removed.
    expect((await readdir(fx.dir)).filter((f) => f.startsWith('kd-fleet-upload-'))).toEqual([]);
  });

  it('starts a rollout from {package: {name, version}, ...}, shows it, and pauses, resumes and aborts it', async () => {
    fx = await startApi();
    fx.status('cam-1');
    fx.status('cam-2');
    const pkg = await fx.makePackage('pets', '1.0.0');
    const record = await fx.ctx.pushPackage(pkg.tar);
    const spec = { package: { name: 'pets', version: '1.0.0' }, target: { deviceIds: ['cam-1', 'cam-2'] }, waves: { canary: { count: 1 }, percents: [100] } };

    for (const token of [null, WRONG]) expect((await call(fx, 'POST', '/api/rollouts', { token, body: spec })).status).toBe(401);
    expect(fx.ctx.rollouts.list()).toEqual([]);

    const started = await call(fx, 'POST', '/api/rollouts', { body: spec });
    expect(started.status).toBe(201);
    const id = started.body.id as string;
    expect(fx.ctx.rollouts.get(id)?.package).toEqual({ name: 'pets', version: '1.0.0', sha256: record.sha256 });

    const list = await call(fx, 'GET', '/api/rollouts', { token: null });
    expect(list.body.map((r: { id: string; state: string }) => [r.id, r.state])).toEqual([[id, 'running']]);
    expect((await call(fx, 'GET', '/api/rollouts?state=paused,aborted', { token: null })).body).toEqual([]);
    expect((await call(fx, 'GET', '/api/rollouts?state=sleeping', { token: null })).status).toBe(400);
    await fx.ctx.rollouts.tick();
    expect(fx.sent.map((s) => s.deviceId)).toEqual(['cam-1']);
    const shown = await call(fx, 'GET', `/api/rollouts/${id}`, { token: null });
    expect(shown.status).toBe(200);
    expect(shown.body.rollout).toMatchObject({ id, state: 'running', waveCount: 2 });
    expect(shown.body.waves.map((w: { deviceIds: string[] }) => w.deviceIds)).toEqual([['cam-1'], ['cam-2']]);
    expect(shown.body.executions.map((e: { deviceId: string; state: string }) => [e.deviceId, e.state])).toEqual([['cam-1', 'sent'], ['cam-2', 'queued']]);

    // A second rollout over a device that is busy is a conflict.
    const conflict = await call(fx, 'POST', '/api/rollouts', { body: { ...spec, target: { deviceIds: ['cam-2'] } } });
    expect(conflict.status).toBe(409);
    expect(conflict.body.error.code).toBe('FLEET_ROLLOUT_CONFLICT');

    for (const action of ['pause', 'resume', 'approve', 'abort']) {
      expect((await call(fx, 'POST', `/api/rollouts/${id}/${action}`, { token: WRONG })).status).toBe(401);
    }
    expect(fx.ctx.rollouts.get(id)?.state).toBe('running');

    const paused = await call(fx, 'POST', `/api/rollouts/${id}/pause`, { body: { reason: 'lunch' } });
    expect(paused.status).toBe(200);
    expect(paused.body).toMatchObject({ id, state: 'paused', reason: 'lunch' });
    const again = await call(fx, 'POST', `/api/rollouts/${id}/pause`);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('FLEET_ROLLOUT_STATE');
    expect((await call(fx, 'POST', `/api/rollouts/${id}/resume`)).body).toMatchObject({ state: 'running', reason: null });
    expect((await call(fx, 'POST', `/api/rollouts/${id}/approve`)).status).toBe(409);
    const badReason = await call(fx, 'POST', `/api/rollouts/${id}/abort`, { body: { reason: 42 } });
    expect(badReason.status).toBe(400);
    expect(fx.ctx.rollouts.get(id)?.state).toBe('running');

    const aborted = await call(fx, 'POST', `/api/rollouts/${id}/abort`, { body: { reason: 'bad canary' } });
    expect(aborted.status).toBe(200);
    expect(aborted.body).toMatchObject({ id, state: 'aborted', reason: 'bad canary' });
    // Abort sends the rollout's devices that were sent the deploy a rollback.
    expect(fx.sent.map((s) => [s.deviceId, s.command.command])).toEqual([['cam-1', 'deploy'], ['cam-1', 'rollback']]);

    for (const path of ['/api/rollouts/nope', '/api/rollouts/nope/abort']) {
      const r = await call(fx, path.endsWith('abort') ? 'POST' : 'GET', path);
      expect(r.status).toBe(404);
    }
    const unknownPkg = await call(fx, 'POST', '/api/rollouts', { body: { ...spec, package: { name: 'pets', version: '3.0.0' } } });
    expect(unknownPkg.status).toBe(404);
  });

  it("never lists or targets a service account: kd-dashboard's status is ignored, {all: true} skips it, naming it is a 400", async () => {
    fx = await startApi();
    fx.status('cam-1');
    // As if the broker's ACL had let kd-dashboard report as a device of that name (the shipped ACL does not).
    fx.status('kd-dashboard');
    expect((await call(fx, 'GET', '/api/devices', { token: null })).body.map((d: { id: string }) => d.id)).toEqual(['cam-1']);
    expect((await call(fx, 'GET', '/api/devices/kd-dashboard', { token: null })).status).toBe(404);
    expect((await call(fx, 'GET', '/api/info', { token: null })).body.counts).toMatchObject({ devices: 1, online: 1 });
    expect(fx.ctx.devices.stats()).toMatchObject({ reserved: 1, status: 1 });
    await fx.ctx.pushPackage((await fx.makePackage('pets', '1.0.0')).tar);
    const spec = { package: { name: 'pets', version: '1.0.0' }, waves: { canary: { count: 1 }, percents: [100] } };

    const named = await call(fx, 'POST', '/api/rollouts', { body: { ...spec, target: { deviceIds: ['cam-1', 'kd-dashboard'] } } });
    expect(named.status).toBe(400);
    expect(named.body.error).toMatchObject({ code: 'FLEET_ROLLOUT_SPEC', field: 'target.deviceIds[1]' });
    expect(named.body.error.message).toContain('kd-dashboard');
    expect(fx.ctx.rollouts.list()).toEqual([]);

    const all = await call(fx, 'POST', '/api/rollouts', { body: { ...spec, target: { all: true } } });
    expect(all.status).toBe(201);
    const shown = await call(fx, 'GET', `/api/rollouts/${all.body.id as string}`, { token: null });
    expect(shown.body.waves.map((w: { deviceIds: string[] }) => w.deviceIds)).toEqual([['cam-1']]);
  });

  it('a server without a token is read-only: reads work, every control is refused whatever the token', async () => {
    fx = await startApi({ token: null });
    fx.status('cam-1');
    const info = await call(fx, 'GET', '/api/info', { token: null });
    expect(info.body.auth).toEqual({ controls: false });
    expect((await call(fx, 'GET', '/api/devices', { token: null })).body).toHaveLength(1);
    for (const token of [null, TOKEN, '']) {
      const r = await call(fx, 'PUT', '/api/devices/cam-1/tags', { token, body: { tags: ['x'] } });
      expect(r.status).toBe(401);
      expect(r.body.error).toMatchObject({ code: 'FLEET_UNAUTHORIZED' });
      expect(r.body.error.message).toContain('read-only');
    }
    expect((await call(fx, 'POST', '/api/rollouts', { body: {} })).status).toBe(401);
    expect((await call(fx, 'GET', '/api/auth', { token: TOKEN })).status).toBe(401);
    expect(fx.ctx.devices.get('cam-1')!.tags).toEqual([]);
  });

  it('GET /api/auth answers 200 for the right token and 401 naming the fault otherwise', async () => {
    fx = await startApi();
    const right = await call(fx, 'GET', '/api/auth', { token: TOKEN });
    expect([right.status, right.body]).toEqual([200, { controls: true }]);
    for (const token of [null, WRONG]) {
      const r = await call(fx, 'GET', '/api/auth', { token });
      expect(r.status).toBe(401);
      expect(r.body.error).toMatchObject({ code: 'FLEET_UNAUTHORIZED' });
    }
  });
});
