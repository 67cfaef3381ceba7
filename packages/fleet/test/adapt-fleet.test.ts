// kd-fleet's side of on-device adaptation (issue 16) against a real FleetServer: embedded aedes, SQLite, HTTP API
// and CLI; MQTT clients play the devices (they receive commands and publish retained adapt messages as an agent does).
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { adaptedVersion, parseMessage, verifyCommandSignature, type AdaptFields, type DeployCommand } from '@kd-edge/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdaptFleet, type AdaptFleet, type FakeDevice } from './adapt-helpers.js';
import { openEvents, waitFor, type ApiFixture, type SseClient } from './http-helpers.js';

let fx: AdaptFleet;
beforeAll(async () => {
  fx = await startAdaptFleet();
  const tar = async (p: string): Promise<Uint8Array> => new Uint8Array(await readFile(p));
  expect((await fx.call('POST', '/api/models', await tar(fx.model.tar))).status).toBe(201);
}, 60_000);
afterAll(async () => {
  await fx?.close();
}, 30_000);

const base = { name: 'shapes', version: '1.0.0' };
const teacherRef = { name: 'shapes-teacher', version: '1.0.0' };

describe('teacher packages in the registry', () => {
  it('accepts a trusted teacher upload with its role, refuses an untrusted one, and lists the role in the API and the CLI', async () => {
    const pushed = await fx.call('POST', '/api/models', new Uint8Array(await readFile(fx.teacher.tar)));
    expect(pushed.status).toBe(201);
    expect(pushed.body).toMatchObject({ ...teacherRef, role: 'teacher', sha256: fx.teacher.info.sha256 });
    expect(pushed.body.manifest.role).toBe('teacher');

    const stranger = await fx.call('POST', '/api/models', new Uint8Array(await readFile(fx.untrustedTeacher.tar)));
    expect([stranger.status, stranger.body.error.code]).toEqual([400, 'FLEET_PACKAGE_REFUSED']);
    expect(stranger.body.error.message).toMatch(/^PACKAGE_KEY_UNTRUSTED: /);

    const list = await fx.call('GET', '/api/models', undefined, null);
    expect(list.body.map((p: { name: string; version: string; role: string }) => `${p.name}@${p.version}:${p.role}`).sort())
      .toEqual(['shapes-teacher@1.0.0:teacher', 'shapes@1.0.0:model']);
    const ls = await fx.cli('models', 'ls');
    expect(ls.code).toBe(0);
    expect(ls.out).toMatch(/^NAME +VERSION +ROLE +SIZE/m);
    expect(ls.out).toMatch(/^shapes-teacher +1\.0\.0 +teacher /m);
    expect(ls.out).toMatch(/^shapes +1\.0\.0 +model /m);
  });

  it('refuses to roll a teacher out, naming the rule, and starts nothing', async () => {
    await fx.device('cam-r1');
    const r = await fx.call('POST', '/api/rollouts', { package: teacherRef, target: { deviceIds: ['cam-r1'] }, waves: { canary: { count: 1 }, percents: [100] } });
    expect([r.status, r.body.error.code, r.body.error.field]).toEqual([400, 'FLEET_ROLLOUT_TEACHER', 'package']);
    expect(r.body.error.message).toContain('shapes-teacher@1.0.0 is a teacher package');
    expect((await fx.call('GET', '/api/rollouts')).body).toEqual([]);
    const cli = await fx.cli('rollout', 'start', 'shapes-teacher', '1.0.0', '--device', 'cam-r1');
    expect(cli.code).toBe(1);
    expect(cli.err).toMatch(/400 FLEET_ROLLOUT_TEACHER/);
  });

  it('pushes a teacher to one device as the signed deploy a rollout sends; the device verifies it and can fetch the bytes', async () => {
    const dev = await fx.device('cam-t1', ['lab']);
    const r = await fx.call('POST', '/api/devices/cam-t1/teacher', teacherRef);
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ deviceId: 'cam-t1', package: { ...teacherRef, sha256: fx.teacher.info.sha256 } });
    await waitFor('the deploy', () => dev.commands.length === 1);
    const cmd = dev.commands[0] as DeployCommand;
    expect(cmd).toMatchObject({ command: 'deploy', id: r.body.commandId, deviceId: 'cam-t1', package: { ...teacherRef, sha256: fx.teacher.info.sha256 } });
    expect(cmd.manifest.role).toBe('teacher');
    expect(cmd.rolloutId).toBeUndefined();
    // Signed with the fleet's command key, as rollouts sign theirs; the agent checks it against its pinned keys.
    expect(verifyCommandSignature(dev.raw[0], [fx.keys.command.publicKeyPem])).toBe(fx.keys.command.keyId);
    expect(() => verifyCommandSignature(dev.raw[0], [fx.keys.stranger.publicKeyPem])).toThrow();
    const bytes = Buffer.from(await (await fetch(cmd.package.http!.url)).arrayBuffer());
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(cmd.package.sha256);

    // Refusals send nothing: a serving model (that is a rollout's job), an unknown package or device, no token.
    const model = await fx.call('POST', '/api/devices/cam-t1/teacher', base);
    expect([model.status, model.body.error.code]).toEqual([400, 'FLEET_PACKAGE_ROLE']);
    expect((await fx.call('POST', '/api/devices/cam-t1/teacher', { name: 'nope', version: '1.0.0' })).body.error.code).toBe('FLEET_PACKAGE_NOT_FOUND');
    expect((await fx.call('POST', '/api/devices/ghost/teacher', teacherRef)).status).toBe(404);
    expect((await fx.call('POST', '/api/devices/cam-t1/teacher', teacherRef, null)).status).toBe(401);
    const noVersion = await fx.call('POST', '/api/devices/cam-t1/teacher', { name: 'shapes-teacher' });
    expect([noVersion.status, noVersion.body.error.field]).toEqual([400, 'version']);

    // The CLI pushes to every device of a tag.
    const other = await fx.device('cam-t2', ['lab']);
    const cli = await fx.cli('devices', 'push-teacher', 'shapes-teacher', '1.0.0', '--tag', 'lab');
    expect(cli).toMatchObject({ code: 0, err: '' });
    expect(cli.out).toMatch(/^cam-t1: teacher shapes-teacher@1\.0\.0 sent/m);
    expect(cli.out).toMatch(/^cam-t2: teacher shapes-teacher@1\.0\.0 sent/m);
    await waitFor('the tag push', () => dev.commands.length === 2 && other.commands.length === 1);
    expect(other.commands[0]).toMatchObject({ command: 'deploy', package: teacherRef });
  });
});

describe('adaptation commands', () => {
  let dev: FakeDevice;
  beforeAll(async () => {
    dev = await fx.device('cam-a1');
  });

  it('sends a valid signed adapt command; a bad request is a 400 naming its field and sends nothing', async () => {
    const r = await fx.call('POST', '/api/devices/cam-a1/adapt', { teacher: teacherRef, base, recipe: { epochs: 3, timeBudgetSec: 600, memoryBudgetMb: 900 }, activate: false });
    expect(r.status).toBe(202);
    expect(r.body.jobId).toMatch(/^adapt-[0-9a-f]{12}$/);
    await waitFor('the adapt command', () => dev.commands.length === 1);
    const cmd = parseMessage('cmd', JSON.stringify(dev.raw[0]));
    expect(cmd).toMatchObject({
      command: 'adapt', id: r.body.commandId, deviceId: 'cam-a1', jobId: r.body.jobId, teacher: teacherRef, base,
      recipe: { epochs: 3, timeBudgetSec: 600, memoryBudgetMb: 900 }, activate: false,
    });
    expect(verifyCommandSignature(dev.raw[0], [fx.keys.command.publicKeyPem])).toBe(fx.keys.command.keyId);

    const bad = async (body: unknown): Promise<{ code: string; field: string; message: string }> => {
      const res = await fx.call('POST', '/api/devices/cam-a1/adapt', body);
      expect(res.status).toBe(400);
      return res.body.error;
    };
    expect(await bad({ recipe: { epochs: 0 } })).toMatchObject({ code: 'FLEET_BAD_REQUEST', field: 'recipe.epochs', message: expect.stringMatching(/recipe\.epochs/) });
    expect(await bad({ recipe: { imgsz: 4096 } })).toMatchObject({ field: 'recipe.imgsz' });
    expect(await bad({ recipe: { epoch: 3 } })).toMatchObject({ field: 'recipe.epoch', message: expect.stringMatching(/unknown recipe field/) });
    expect(await bad({ epochs: 3 })).toMatchObject({ field: 'epochs', message: expect.stringMatching(/unknown field/) });
    expect(await bad({ jobId: 'no spaces' })).toMatchObject({ field: 'jobId' });
    expect(await bad({ teacher: { name: 'shapes' } })).toMatchObject({ field: 'teacher.version' });
    expect(await bad({ teacher: base })).toMatchObject({ code: 'FLEET_PACKAGE_ROLE', field: 'teacher' });
    expect(await bad({ activate: 'yes' })).toMatchObject({ field: 'activate' });
    expect((await fx.call('POST', '/api/devices/cam-a1/adapt', {}, null)).status).toBe(401);
    expect((await fx.call('POST', '/api/devices/ghost/adapt', {})).status).toBe(404);
    await new Promise((r) => setTimeout(r, 200));
    expect(dev.commands).toHaveLength(1);
  });

  it('kd-fleet adapt start and cancel send the commands the options say', async () => {
    const start = await fx.cli('adapt', 'start', 'cam-a1', '--job-id', 'job-cli-1', '--teacher', 'shapes-teacher@1.0.0', '--epochs', '2', '--min-gain', '0.02', '--no-activate');
    expect(start).toMatchObject({ code: 0, err: '' });
    expect(start.out).toContain('adaptation job job-cli-1 sent');
    const cancel = await fx.cli('adapt', 'cancel', 'cam-a1', 'job-cli-1');
    expect(cancel).toMatchObject({ code: 0, err: '' });
    await waitFor('both commands', () => dev.commands.length === 3);
    expect(dev.commands[1]).toMatchObject({ command: 'adapt', jobId: 'job-cli-1', teacher: teacherRef, recipe: { epochs: 2, minGain: 0.02 }, activate: false });
    expect(dev.commands[2]).toMatchObject({ command: 'adapt-cancel', jobId: 'job-cli-1', deviceId: 'cam-a1' });
    expect(verifyCommandSignature(dev.raw[2], [fx.keys.command.publicKeyPem])).toBe(fx.keys.command.keyId);
    const wrong = await fx.cli('adapt', 'start', 'cam-a1', '--epochs', 'many');
    expect(wrong.code).toBe(1);
    expect(wrong.err).toMatch(/400 FLEET_BAD_REQUEST: .*recipe\.epochs/);
  });

  it('POST …/adapt-jobs/:jobId/cancel sends adapt-cancel for that job', async () => {
    const r = await fx.call('POST', '/api/devices/cam-a1/adapt-jobs/job-x:7/cancel');
    expect(r.status).toBe(202);
    await waitFor('the cancel', () => dev.commands.some((c) => c.id === r.body.commandId));
    expect(dev.commands.at(-1)).toMatchObject({ command: 'adapt-cancel', jobId: 'job-x:7' });
  });
});

describe('adaptation jobs as devices report them', () => {
  let dev: FakeDevice;
  let sse: SseClient;
  beforeAll(async () => {
    dev = await fx.device('cam-j1');
    sse = await openEvents({ url: fx.server.httpUrl } as ApiFixture);
  });
  afterAll(() => sse?.close());

  const version = adaptedVersion('1.0.0', 'cam-j1', 1);
  const job = { jobId: 'job-1', commandId: 'c-1', base, teacher: teacherRef };
  const steps: Array<Omit<AdaptFields, 'deviceId'>> = [
    { ...job, state: 'queued' },
    { ...job, state: 'labelling', progress: { done: 5, total: 20 } },
    { ...job, state: 'training', frames: { used: 16, holdout: 4 }, epoch: 1, epochs: 2, losses: { box: 0.05, kd: 0.02 }, holdout: { images: 4, after: { map50: 0.5, map: 0.3 } } },
    { ...job, state: 'training', frames: { used: 16, holdout: 4 }, epoch: 2, epochs: 2, losses: { box: 0.04, kd: 0.015 }, holdout: { images: 4, after: { map50: 0.6, map: 0.35 } } },
    { ...job, state: 'evaluating', epoch: 2, epochs: 2 },
    {
      ...job, state: 'succeeded', version, accepted: true, activated: true, epoch: 2, epochs: 2,
      holdout: { images: 4, before: { map50: 0.5, map: 0.28 }, after: { map50: 0.6, map: 0.35 } },
      val: { images: 8, before: { map50: 0.7, map: 0.5 }, after: { map50: 0.69, map: 0.49 } },
      reasons: ['hold-out mAP50-95 0.280 → 0.350 (+0.070) ≥ min-gain 0.010'],
      // Extra fields an agent adds: serving throughput before and during the job, the job's peak memory.
      ...({ serving: { fpsBefore: 30, fpsDuring: 26.5 }, peakRssMb: 612 } as object),
    },
  ];

  it('stores each state, serves the latest and the history in order, and streams every state live in order', async () => {
    for (const [i, s] of steps.entries()) await dev.adapt({ ...s, ts: new Date(Date.parse('2026-05-01T12:00:00Z') + i * 1000) });
    await waitFor('the final state', () => fx.server.context.adaptJobs.get('cam-j1', 'job-1')?.state === 'succeeded');
    // The broker delivering the retained state again (a reconnect) adds nothing.
    await dev.adapt({ ...steps.at(-1)!, ts: new Date(Date.parse('2026-05-01T12:00:00Z') + 5000) });

    const one = await fx.call('GET', '/api/devices/cam-j1/adapt-jobs/job-1', undefined, null);
    expect(one.status).toBe(200);
    expect(one.body.job).toMatchObject({
      deviceId: 'cam-j1', jobId: 'job-1', commandId: 'c-1', state: 'succeeded', final: true, base, teacher: teacherRef, version,
      epoch: 2, epochs: 2, accepted: true, activated: true,
      holdout: { images: 4, before: { map50: 0.5, map: 0.28 }, after: { map50: 0.6, map: 0.35 } },
      val: { images: 8, before: { map: 0.5 }, after: { map: 0.49 } },
      reasons: [expect.stringContaining('min-gain')], serving: { fpsBefore: 30, fpsDuring: 26.5 }, peakRssMb: 612, code: null,
    });
    expect(one.body.history.map((h: { state: string; epoch: number | null }) => `${h.state}${h.epoch ? `:${h.epoch}` : ''}`))
      .toEqual(['queued', 'labelling', 'training:1', 'training:2', 'evaluating:2', 'succeeded:2']);
    expect(one.body.history[2].losses).toEqual({ box: 0.05, kd: 0.02 });
    await waitFor('six adapt events', () => sse.of('adapt').filter((e) => e.jobId === 'job-1').length >= 6);
    await new Promise((r) => setTimeout(r, 200));
    expect(sse.of('adapt').filter((e) => e.jobId === 'job-1').map((e) => `${e.state}${e.epoch ? `:${e.epoch}` : ''}`))
      .toEqual(['queued', 'labelling', 'training:1', 'training:2', 'evaluating:2', 'succeeded:2']);
    expect(fx.server.context.adaptJobs.stats()).toMatchObject({ stored: 6, duplicates: 1 });

    // Filters: by device and by state; a bad state is named.
    expect((await fx.call('GET', '/api/adapt-jobs?state=succeeded')).body.map((j: { jobId: string }) => j.jobId)).toEqual(['job-1']);
    expect((await fx.call('GET', '/api/adapt-jobs?state=training,failed')).body).toEqual([]);
    expect((await fx.call('GET', '/api/adapt-jobs?device=cam-j1')).body).toHaveLength(1);
    expect((await fx.call('GET', '/api/devices/cam-j1/adapt-jobs')).body).toHaveLength(1);
    expect((await fx.call('GET', '/api/adapt-jobs?device=cam-zz')).body).toEqual([]);
    const badState = await fx.call('GET', '/api/adapt-jobs?state=done');
    expect([badState.status, badState.body.error.message]).toEqual([400, expect.stringContaining('"done" is not one of queued')]);
    const missing = await fx.call('GET', '/api/devices/cam-j1/adapt-jobs/nope');
    expect([missing.status, missing.body.error.code]).toEqual([404, 'FLEET_ADAPT_JOB_NOT_FOUND']);

    const list = await fx.cli('adapt', 'list', '--device', 'cam-j1');
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/^DEVICE +JOB +STATE +EPOCH +HOLDOUT +VAL +PULL +VERSION$/m);
    // PULL is — for a job never pulled.
    expect(list.out).toMatch(/^cam-j1 +job-1 +succeeded +2\/2 +0\.280→0\.350 +0\.500→0\.490 +— +1\.0\.0\+adapt\.cam-j1\.1 \(active\)$/m);
    const show = await fx.cli('adapt', 'show', 'cam-j1', 'job-1');
    expect(show.out).toContain('states: queued → labelling → training → evaluating → succeeded');
    expect(show.out).toContain('accepted, activated');
    const json = JSON.parse((await fx.cli('adapt', 'list', '--json')).out);
    expect(json.find((j: { jobId: string }) => j.jobId === 'job-1').version).toBe(version);
  });

  it('drops invalid adapt messages, counting and logging them, and keeps serving and storing', async () => {
    const before = fx.server.context.adaptJobs.stats();
    await dev.adaptRaw('{not json');
    await dev.adaptRaw(JSON.stringify({ v: 1, type: 'adapt', deviceId: 'cam-j1', jobId: 'job-bad', commandId: null, ts: '2026-05-01T12:00:00Z', state: 'training', base, epoch: 5, epochs: 2 }));
    await dev.adaptRaw(JSON.stringify({ v: 1, type: 'adapt', deviceId: 'cam-other', jobId: 'job-bad', commandId: null, ts: '2026-05-01T12:00:00Z', state: 'queued', base }));
    await dev.adaptRaw(JSON.stringify({ v: 1, type: 'adapt', deviceId: 'cam-j1', jobId: 'job-bad', commandId: null, ts: '2026-05-01T12:00:00Z', state: 'failed', base }));
    await waitFor('four refusals', () => fx.server.context.adaptJobs.stats().malformed === before.malformed + 4);
    expect(fx.log.lines.filter((l) => l.level === 'warn' && l.message.startsWith('adapt: ignored a malformed message'))).toHaveLength(4);
    expect(fx.log.lines.some((l) => l.message.includes('adapt.epoch: expected at most epochs (2), got 5'))).toBe(true);
    expect(fx.server.context.adaptJobs.get('cam-j1', 'job-bad')).toBeUndefined();
    expect(fx.server.context.adaptJobs.get('cam-other', 'job-bad')).toBeUndefined();
    // The server still answers, and the next good message is stored.
    await dev.adapt({ jobId: 'job-2', commandId: null, base, state: 'failed', code: 'ADAPT_TOO_FEW_FRAMES', message: '3 frames, 10 needed' });
    await waitFor('job-2', () => fx.server.context.adaptJobs.get('cam-j1', 'job-2') !== undefined);
    const r = await fx.call('GET', '/api/adapt-jobs?device=cam-j1&state=failed');
    expect(r.body).toEqual([expect.objectContaining({ jobId: 'job-2', state: 'failed', code: 'ADAPT_TOO_FEW_FRAMES', message: '3 frames, 10 needed', commandId: null })]);
  });

  it('keeps the jobs across a restart on the same data folder', async () => {
    const jobs = fx.server.context.adaptJobs;
    const { AdaptJobStore } = await import('../src/adapt/adapt-job-store.js');
    const { openDatabase } = await import('../src/db/open-database.js');
    const { join } = await import('node:path');
    const db = openDatabase(join(fx.root, 'fleet', 'fleet.db'));
    try {
      const again = new AdaptJobStore(db, { fleet: 'adapt' });
      expect(again.get('cam-j1', 'job-1')).toEqual(jobs.get('cam-j1', 'job-1'));
      expect(again.history('cam-j1', 'job-1').map((h) => h.state)).toEqual(['queued', 'labelling', 'training', 'training', 'evaluating', 'succeeded']);
    } finally {
      db.close();
    }
  });
});

describe('adapted versions in device status', () => {
  it('lists a device serving an adapted version in the API and the CLI', async () => {
    const dev = await fx.device('cam-v1');
    const version = adaptedVersion('1.0.0', 'cam-v1', 1);
    await dev.status({ name: 'shapes', version });
    await waitFor('the adapted status', () => fx.server.context.devices.get('cam-v1')?.activeModel?.version === version);
    const list = await fx.call('GET', '/api/devices', undefined, null);
    expect(list.body.find((d: { id: string }) => d.id === 'cam-v1').activeModel).toMatchObject({ name: 'shapes', version: '1.0.0+adapt.cam-v1.1' });
    expect((await fx.call('GET', '/api/devices/cam-v1', undefined, null)).body.device.status.activeModel.version).toBe(version);
    const ls = await fx.cli('devices', 'ls');
    expect(ls.out).toMatch(/^cam-v1 +yes +shapes@1\.0\.0\+adapt\.cam-v1\.1 /m);
  });
});


