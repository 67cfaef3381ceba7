// On-device adaptation end to end (issue 16): a real kd-agent on a real broker runs real kd-trainer adapt children on
// toy models (64 px, one epoch, 12 frames), and the fleet sees every step on the retained devices/{id}/adapt topic.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadPublicKey, extractTar, verifyPackage } from '@kd-edge/core';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  fleetTopics, generateKeyPair, makeCommand, parseAdaptedVersion, writeKeyPair, type AdaptMessage, type CommandFields, type EventMessage,
} from '@kd-edge/core';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyOwnPackage } from '../src/adapt/own-package.js';
import { Agent } from '../src/agent.js';
import { validateAgentConfig } from '../src/config/agent-config.js';
import { KD_TRAINER_FROM_SOURCE, makeStudentPackage, makeTeacherPackage, writeFrames, type BuiltPackage } from './agent-adapt-fixtures.js';
import { PackageOrigin } from './fixtures/agent/package-origin.js';
import { observer, startAedes, startMosquitto, waitFor, type AedesHarness } from './mqtt-brokers.js';
import { ModelStore } from '../src/store/model-store.js';

const FLEET = 'lab';
const DEVICE = 'cam-01';
const topics = fleetTopics(FLEET);

let root: string;
let broker: AedesHarness;
let origin: PackageOrigin;
let fleet: MqttClient;
let agent: Agent;
let keyFile: string;
let base: BuiltPackage;
let teacher: BuiltPackage;
let foreignTeacher: BuiltPackage;
const events: EventMessage[] = [];
const adapts: AdaptMessage[] = [];
const t0 = Date.now();

function config(over: Record<string, unknown> = {}) {
  return validateAgentConfig({
    fleet: FLEET, deviceId: DEVICE, dataDir: join(root, 'agent'), keys: [keyFile],
    broker: { url: broker.url, reconnectMinMs: 50, reconnectMaxMs: 500 },
    runtime: { trtexec: false },
    benchmark: { warmup: 1, iterations: 5 },
    serve: { source: { replay: join(root, 'camera'), fps: 20, loop: true } },
    capture: { enabled: true, everyN: 1, maxFrames: 100 },
    adapt: {
      trainer: KD_TRAINER_FROM_SOURCE, extraArgs: ['--backend', 'wasm', '--workers', '0', '--calib-images', '4', '--formats', 'onnx'],
      minFrames: 12, epochs: 1, memoryBaseMb: 32,
    },
    ...over,
  });
}

async function send(fields: CommandFields): Promise<void> {
  await fleet.publishAsync(topics.cmd(DEVICE), JSON.stringify(makeCommand(fields)), { qos: 1 });
}

const deployOf = (p: BuiltPackage, id: string): CommandFields => ({
  command: 'deploy', id, deviceId: DEVICE, manifest: p.manifest,
  package: { name: p.name, version: p.version, sha256: p.sha256, size: p.size, http: { url: origin.add(p.tar, p.sha256) } },
} as CommandFields);

const finalOf = (id: string): EventMessage | undefined => [...events].reverse().find((e) => e.commandId === id && ['succeeded', 'failed', 'rolled_back'].includes(e.state));
async function settle(id: string): Promise<EventMessage> {
  await waitFor(`final event of ${id}`, () => finalOf(id) !== undefined, 120_000);
  return finalOf(id)!;
}
const jobMessages = (jobId: string): AdaptMessage[] => adapts.filter((m) => m.jobId === jobId);
const lastOf = (jobId: string): AdaptMessage | undefined => jobMessages(jobId).at(-1);
async function jobEnds(jobId: string, timeoutMs = 300_000): Promise<AdaptMessage> {
  await waitFor(`job ${jobId} to end`, () => ['succeeded', 'rejected', 'failed', 'cancelled'].includes(lastOf(jobId)?.state ?? ''), timeoutMs);
  return lastOf(jobId)!;
}
async function retained(topic: string): Promise<string> {
  const late = await observer(broker.url, { clientId: `late-${Math.random().toString(36).slice(2)}` });
  try {
    const got = new Promise<string>((resolve) => late.on('message', (t, p) => { if (t === topic) resolve(p.toString()); }));
    await late.subscribeAsync(topic, { qos: 1 });
    return await got;
  } finally {
    await late.endAsync();
  }
}
function adaptCmd(id: string, jobId: string, over: Record<string, unknown> = {}): CommandFields {
  return { command: 'adapt', id, deviceId: DEVICE, jobId, ...over } as CommandFields;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-agent-adapt-'));
  const fleetKey = generateKeyPair();
  keyFile = join(root, 'fleet.pub');
  await writeKeyPair(fleetKey, { privateKeyPath: join(root, 'fleet.key'), publicKeyPath: keyFile });
  base = await makeStudentPackage(join(root, 'pkgs'), 'shapes', '1.0.0', join(root, 'fleet.key'));
  teacher = await makeTeacherPackage(join(root, 'pkgs'), 'shapes-teacher', '1.0.0', fleetKey.privateKeyPem);
  foreignTeacher = await makeTeacherPackage(join(root, 'pkgs-other'), 'shapes-teacher', '2.0.0', generateKeyPair().privateKeyPem);
  await writeFrames(root, join(root, 'camera'), 12);
  broker = await startAedes();
  origin = new PackageOrigin();
  await origin.start(broker.url, FLEET);
  fleet = await observer(broker.url, { clientId: 'test-fleet' });
  await fleet.subscribeAsync([topics.events(DEVICE), topics.adapt(DEVICE)], { qos: 1 });
  fleet.on('message', (topic, payload) => {
    if (topic === topics.events(DEVICE)) events.push(JSON.parse(payload.toString()) as EventMessage);
    if (topic === topics.adapt(DEVICE)) adapts.push(JSON.parse(payload.toString()) as AdaptMessage);
  });
  agent = await Agent.start(config());
  await agent.online;
  if (process.env.KD_DEBUG) {
    agent.on('adapt', (m) => console.log('adapt', JSON.stringify(m)));
    agent.on('error', (e) => console.log('error', e));
  }
}, 300_000);

afterAll(async () => {
  await agent?.stop();
  await fleet?.endAsync();
  await origin?.stop();
  await broker?.close();
  await rm(root, { recursive: true, force: true });
  console.log(`agent-adapt.test.ts: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
});

describe('kd-agent adaptation jobs over a real broker, with real kd-trainer children', () => {
  it('refuses what it cannot start with a clear code: no model, no teacher, an untrusted teacher, a cancel of an unknown job', async () => {
    await send(adaptCmd('a-none', 'j-none'));
    expect((await settle('a-none')).code).toBe('AGENT_NO_ACTIVE_MODEL');
    await send({ command: 'adapt-cancel', id: 'c-unknown', deviceId: DEVICE, jobId: 'j-nope' });
    expect(await settle('c-unknown')).toMatchObject({ state: 'failed', code: 'AGENT_ADAPT_UNKNOWN_JOB' });

    await send(deployOf(base, 'd-base'));
    expect((await settle('d-base')).state).toBe('succeeded');
    // A teacher signed by a key the device does not trust never becomes a teacher.
    await send(deployOf(foreignTeacher, 'd-foreign'));
    expect((await settle('d-foreign')).code).toBe('PACKAGE_KEY_UNTRUSTED');
    expect(agent.teachers.current()).toBeNull();
    await send(adaptCmd('a-noteacher', 'j-noteacher'));
    expect(await settle('a-noteacher')).toMatchObject({ state: 'failed', code: 'AGENT_ADAPT_NO_TEACHER' });

    await send(deployOf(teacher, 'd-teacher'));
    expect((await settle('d-teacher')).state, finalOf('d-teacher')?.message).toBe('succeeded');
    expect(agent.teachers.current()?.info.version).toBe('1.0.0');
    expect(agent.active()?.manifest.version).toBe('1.0.0');

    await send(adaptCmd('a-base', 'j-base', { base: { name: 'shapes', version: '0.9.0' } }));
    expect(await settle('a-base')).toMatchObject({ code: 'AGENT_ADAPT_BASE_MISMATCH', message: expect.stringMatching(/shapes@1\.0\.0 is serving/) });
    await send(adaptCmd('a-mem', 'j-mem-small', { recipe: { memoryBudgetMb: 100, imgsz: 640 } }));
    expect((await settle('a-mem')).code).toBe('AGENT_ADAPT_MEMORY_TOO_SMALL');
    await send(adaptCmd('a-teacher', 'j-teacher', { teacher: { name: 'shapes-teacher', version: '2.0.0' } }));
    expect(await settle('a-teacher')).toMatchObject({ code: 'AGENT_ADAPT_NO_TEACHER', message: expect.stringMatching(/shapes-teacher@2\.0\.0 is not installed/) });
    // None of these left a job behind.
    expect(agent.adaptJobs.list()).toEqual([]);
  });

  it('runs a job end to end: queued, labelling, training, evaluating, exporting, packaging, activating, succeeded; signed by the device; rollback returns to the fleet\'s version', async () => {
    await waitFor('12 captured frames', () => (agent.captureInfo()?.frames ?? 0) >= 12);
    // A job the data folder cannot hold beside the reserve the agent keeps free is refused, naming the numbers.
    const limits = agent.config.limits as { reserveDiskBytes: number };
    const reserve = limits.reserveDiskBytes;
    limits.reserveDiskBytes = Number.MAX_SAFE_INTEGER;
    try {
      await send(adaptCmd('a-disk', 'j-disk'));
      expect(await settle('a-disk')).toMatchObject({
        state: 'failed', code: 'AGENT_ADAPT_DISK', message: expect.stringMatching(/MiB free .* the job needs about .* weights .* frames .* under limits\.reserveDiskBytes/),
      });
    } finally {
      limits.reserveDiskBytes = reserve;
    }
    expect(agent.adaptJobs.get('j-disk')).toBeUndefined();
    const framesBefore = agent.servingStats()!.frames;
    await send(adaptCmd('a-ok', 'j-ok', { recipe: { minGain: -1 } }));
    expect(await settle('a-ok')).toMatchObject({ state: 'succeeded', result: { jobId: 'j-ok', state: 'queued' } });
    // While the job runs: the command queue is free (a ping answers), a second job is refused naming the first.
    await send({ command: 'ping', id: 'p-during', deviceId: DEVICE });
    await send(adaptCmd('a-busy', 'j-busy'));
    expect(await settle('a-busy')).toMatchObject({ state: 'failed', code: 'AGENT_ADAPT_BUSY', message: expect.stringMatching(/j-ok/) });
    expect((await settle('p-during')).state).toBe('succeeded');

    const done = await jobEnds('j-ok');
    const states = jobMessages('j-ok').map((m) => m.state).filter((s, i, a) => s !== a[i - 1]);
    expect(states).toEqual(['queued', 'labelling', 'training', 'evaluating', 'exporting', 'packaging', 'activating', 'succeeded']);
    expect(done, done.message).toMatchObject({
      state: 'succeeded', accepted: true, activated: true, version: '1.0.0+adapt.cam-01.1', commandId: 'a-ok',
      base: { name: 'shapes', version: '1.0.0' }, teacher: { name: 'shapes-teacher', version: '1.0.0' }, epoch: 1, epochs: 1,
    });
    expect(done.frames!.used + done.frames!.holdout).toBeGreaterThanOrEqual(12);
    expect(done.holdout).toMatchObject({ before: { map50: expect.any(Number) }, after: { map: expect.any(Number) } });
    expect(done.val).toMatchObject({ images: 3, before: expect.any(Object), after: expect.any(Object) });
    expect(done.reasons!.join('\n')).toMatch(/min-gain -1/);
    const training = jobMessages('j-ok').filter((m) => m.state === 'training').at(-1)!;
    expect(training).toMatchObject({ epoch: 1, epochs: 1, losses: { box: expect.any(Number) } });
    // Serving went on during the job, and its fps before and during are reported, with the job's peak memory.
    const extra = done as AdaptMessage & { serving?: { fpsBefore?: number; fpsDuring?: number }; peakRssMb?: number };
    expect(extra.serving?.fpsDuring).toBeGreaterThan(0);
    expect(extra.serving?.fpsBefore).toBeGreaterThan(0);
    expect(extra.peakRssMb).toBeGreaterThan(50);
    expect(agent.servingStats()!.frames).toBeGreaterThan(framesBefore);
    console.log(`j-ok: serving ${JSON.stringify(extra.serving)} fps, peak RSS ${extra.peakRssMb} MiB, ${done.frames!.used}+${done.frames!.holdout} frames`);
    // The retained message is the whole final state for a late subscriber.
    expect(JSON.parse(await retained(topics.adapt(DEVICE)))).toMatchObject({ jobId: 'j-ok', state: 'succeeded', version: '1.0.0+adapt.cam-01.1' });

    // The adapted package serves, signed by the device's own key (and only that key verifies it).
    const active = agent.active()!;
    expect(active.manifest).toMatchObject({ name: 'shapes', version: '1.0.0+adapt.cam-01.1', weights: { path: 'weights/model.kdw' }, val: { images: 'val/images' } });
    expect(parseAdaptedVersion(active.manifest.version)).toEqual({ base: '1.0.0', deviceId: DEVICE, n: 1 });
    expect(active.manifest.signature?.keyId).toBe(agent.deviceKey.keyId);
    await verifyOwnPackage(active.stored.dir, agent.deviceKey);
    // The job folder keeps its records, not the frames' hard links or the training run.
    const dir = join(root, 'agent', 'adapt', 'j-ok');
    expect(existsSync(join(dir, 'agent-job.json'))).toBe(true);
    expect(existsSync(join(dir, 'job', 'adapt.json'))).toBe(true);
    expect(existsSync(join(dir, 'job', 'data'))).toBe(false);
    expect(JSON.parse(await readFile(join(dir, 'agent-job.json'), 'utf8'))).toMatchObject({ state: 'succeeded', n: 1, package: { key: active.stored.key } });

    // A known job id is not started again: its state is the answer.
    await send(adaptCmd('a-ok-again', 'j-ok'));
    expect(await settle('a-ok-again')).toMatchObject({ state: 'succeeded', result: { jobId: 'j-ok', state: 'succeeded', known: true } });
    // A rollback returns to the fleet's version.
    await send({ command: 'rollback', id: 'r-adapt', deviceId: DEVICE });
    expect((await settle('r-adapt')).state).toBe('rolled_back');
    expect(agent.active()?.manifest.version).toBe('1.0.0');
  });

  it('a rejected job (min-gain 1) never activates anything', async () => {
    await send(adaptCmd('a-rej', 'j-rej', { recipe: { minGain: 1 } }));
    const done = await jobEnds('j-rej');
    expect(done, done.message).toMatchObject({ state: 'rejected', accepted: false });
    expect(done.version).toBeUndefined();
    expect(done.reasons!.join('\n')).toMatch(/< min-gain 1\.000/);
    expect(jobMessages('j-rej').map((m) => m.state)).not.toContain('packaging');
    expect(agent.active()?.manifest.version).toBe('1.0.0');
  });

  it('adapt-upload PUTs a succeeded job\'s device-signed package to the URL it names; a rejected or unknown job has none to send', async () => {
    const received: Buffer[] = [];
    const headers: Array<Record<string, unknown>> = [];
    const server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        received.push(Buffer.concat(parts));
        headers.push({ method: req.method, url: req.url, ...req.headers });
        res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/uploads/tok-1`;
    try {
      await send({ command: 'adapt-upload', id: 'u-ok', deviceId: DEVICE, jobId: 'j-ok', url });
      const done = await settle('u-ok');
      expect(done.state, done.message).toBe('succeeded');
      expect(received).toHaveLength(1);
      const body = received[0]!;
      const sha256 = createHash('sha256').update(body).digest('hex');
      expect(done.result).toMatchObject({ version: '1.0.0+adapt.cam-01.1', sha256, size: body.length });
      expect(headers[0]).toMatchObject({ method: 'PUT', url: '/api/uploads/tok-1', 'x-kd-sha256': sha256, 'content-type': 'application/x-tar' });
      // What arrived is the adapted package, verified by the device's key only.
      const tar = join(root, 'uploaded.tar');
      await writeFile(tar, body);
      const { manifest } = await verifyOwnPackage(tar, agent.deviceKey);
      expect(manifest).toMatchObject({ name: 'shapes', version: '1.0.0+adapt.cam-01.1' });
      await expect(verifyPackage(tar, { trustedKeys: [await loadPublicKey(keyFile)] })).rejects.toMatchObject({ code: 'PACKAGE_KEY_UNTRUSTED' });
      // Nothing is left behind in the job's folder.
      expect((await readdir(join(root, 'agent', 'adapt', 'j-ok'))).filter((f) => f.endsWith('.tar'))).toEqual([]);

      await send({ command: 'adapt-upload', id: 'u-rej', deviceId: DEVICE, jobId: 'j-rej', url });
      expect(await settle('u-rej')).toMatchObject({ state: 'failed', code: 'AGENT_ADAPT_NO_PACKAGE', message: expect.stringMatching(/rejected/) });
      await send({ command: 'adapt-upload', id: 'u-none', deviceId: DEVICE, jobId: 'j-nope', url });
      expect(await settle('u-none')).toMatchObject({ state: 'failed', code: 'AGENT_ADAPT_UNKNOWN_JOB' });
      expect(received).toHaveLength(1);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('cancel mid-training: SIGINT to the child, the job ends cancelled, the base keeps serving', async () => {
    await send(adaptCmd('a-cancel', 'j-cancel', { recipe: { epochs: 50 } }));
    await waitFor('j-cancel training', () => lastOf('j-cancel')?.state === 'training', 120_000);
    await send({ command: 'adapt-cancel', id: 'c-cancel', deviceId: DEVICE, jobId: 'j-cancel' });
    expect(await settle('c-cancel')).toMatchObject({ state: 'succeeded', result: { jobId: 'j-cancel', state: 'cancelled' } });
    expect(lastOf('j-cancel')).toMatchObject({ state: 'cancelled' });
    expect(agent.active()?.manifest.version).toBe('1.0.0');
    // A final job stays as it ended.
    await send({ command: 'adapt-cancel', id: 'c-cancel-2', deviceId: DEVICE, jobId: 'j-cancel' });
    expect(await settle('c-cancel-2')).toMatchObject({ state: 'succeeded', result: { state: 'cancelled', known: true } });
  });

  it('a child killed with SIGKILL fails the job cleanly; a job over its memory budget is stopped with ADAPT_MEMORY_BUDGET', async () => {
    await send(adaptCmd('a-kill', 'j-kill', { recipe: { epochs: 50 } }));
    await waitFor('j-kill training', () => lastOf('j-kill')?.state === 'training', 120_000);
    process.kill(agent.adaptJobs.get('j-kill')!.childPid!, 'SIGKILL');
    const killed = await jobEnds('j-kill');
    expect(killed).toMatchObject({ state: 'failed', code: 'ADAPT_CHILD_FAILED', message: expect.stringMatching(/killed by SIGKILL in training/) });
    expect(agent.active()?.manifest.version).toBe('1.0.0');

    await send(adaptCmd('a-rss', 'j-rss', { recipe: { memoryBudgetMb: 100 } }));
    const over = await jobEnds('j-rss') as AdaptMessage & { peakRssMb?: number };
    expect(over).toMatchObject({ state: 'failed', code: 'ADAPT_MEMORY_BUDGET', message: expect.stringMatching(/over its memory budget of 100 MiB/) });
    expect(over.peakRssMb).toBeGreaterThan(100);
    expect(agent.active()?.manifest.version).toBe('1.0.0');
  });

  it('an agent stopped mid-training resumes the job when it starts again, and the job finishes', async () => {
    await send(adaptCmd('a-resume', 'j-resume', { recipe: { epochs: 2, minGain: -1 } }));
    await waitFor('j-resume training', () => lastOf('j-resume')?.state === 'training', 120_000);
    await agent.stop();
    expect(agent.adaptJobs.get('j-resume')!.state).toBe('training');
    agent = await Agent.start(config());
    await agent.online;
    const done = await jobEnds('j-resume');
    expect(done, done.message).toMatchObject({ state: 'succeeded', activated: true, version: '1.0.0+adapt.cam-01.2', epoch: 2, epochs: 2 });
    const report = JSON.parse(await readFile(join(root, 'agent', 'adapt', 'j-resume', 'job', 'adapt.json'), 'utf8')) as { training: { resumes: number } };
    expect(report.training.resumes).toBeGreaterThanOrEqual(1);
    expect(agent.active()?.manifest.version).toBe('1.0.0+adapt.cam-01.2');
    // Every counter issued is on disk, so a pruned job's version string never returns with other bytes.
    expect(JSON.parse(await readFile(join(root, 'agent', 'adapt', '.adapted-versions.json'), 'utf8'))).toEqual({ 'shapes@1.0.0': 2 });
  });

  it('adapt.schedule starts a job with no command inside its window, and not again within everyHours', async () => {
    await agent.stop();
    agent = await Agent.start(config({ adapt: { ...config().adapt, minGain: 1, schedule: { window: '00:00-00:00', everyHours: 24, activate: true } } }));
    await agent.online;
    const started = await agent.adaptJobs.tick();
    expect(started).toMatchObject({ state: 'queued', jobId: expect.stringMatching(/^sched-\d{8}T\d{4}$/) });
    const jobId = (started as { jobId: string }).jobId;
    expect(await agent.adaptJobs.tick()).toEqual({ skipped: expect.stringMatching(new RegExp(`^job ${jobId} is (queued|labelling)`)) });
    const done = await jobEnds(jobId);
    expect(done).toMatchObject({ state: 'rejected', commandId: null, base: { version: '1.0.0+adapt.cam-01.2' } });
    expect(await agent.adaptJobs.tick()).toMatchObject({ skipped: expect.stringMatching(/within every 24 h/) });
  });
});

describe('on Mosquitto (MQTT 5)', () => {
  it('runs a job whose command keeps the result for review: succeeded, not activated, the base keeps serving; the retained message reaches a late subscriber', async () => {
    await agent.stop();
    const mosquitto = await startMosquitto();
    const dataDir = join(root, 'agent-mq');
    // The base and the teacher installed with the store's own API, verified against the fleet's key as a deploy would.
    const trusted = [await loadPublicKey(keyFile)];
    for (const [pkg, store, roles] of [[base, 'store', ['model']], [teacher, 'teachers', ['teacher']]] as const) {
      const s = await ModelStore.open(join(dataDir, store));
      const staging = await s.stagingPath();
      await extractTar(pkg.tar, staging);
      await verifyPackage(staging, { trustedKeys: trusted, roles: [...roles] });
      await s.activate((await s.install(staging, { name: pkg.name, version: pkg.version, sha256: pkg.sha256 })).key);
    }
    const mq = await Agent.start(config({ dataDir, broker: { url: mosquitto.url, protocolVersion: 5, reconnectMinMs: 50, reconnectMaxMs: 500 } }));
    const seen: AdaptMessage[] = [];
    mq.on('adapt', (m) => seen.push(m));
    try {
      await mq.online;
      await waitFor('12 captured frames', () => (mq.captureInfo()?.frames ?? 0) >= 12);
      const client = await observer(mosquitto.url, { clientId: 'mq-fleet', protocolVersion: 5 });
      const mqEvents: EventMessage[] = [];
      await client.subscribeAsync(topics.events(DEVICE), { qos: 1 });
      client.on('message', (t, p) => { if (t === topics.events(DEVICE)) mqEvents.push(JSON.parse(p.toString()) as EventMessage); });
      await client.publishAsync(topics.cmd(DEVICE), JSON.stringify(makeCommand(adaptCmd('mq-a', 'mq-job', { activate: false, recipe: { minGain: -1 } }))), { qos: 1 });
      await waitFor('mq-a admitted', () => mqEvents.some((e) => e.commandId === 'mq-a' && e.state === 'succeeded'));
      await waitFor('mq-job to end', () => ['succeeded', 'rejected', 'failed', 'cancelled'].includes(seen.at(-1)?.state ?? ''), 300_000);
      expect(seen.at(-1), seen.at(-1)?.message).toMatchObject({ state: 'succeeded', accepted: true, activated: false, version: '1.0.0+adapt.cam-01.1' });
      expect(seen.map((m) => m.state)).not.toContain('activating');
      expect(mq.active()?.manifest.version).toBe('1.0.0');
      expect(mq.store.list().map((v) => v.info.version)).toContain('1.0.0+adapt.cam-01.1');
      await client.endAsync();
      const late = await observer(mosquitto.url, { clientId: 'mq-late', protocolVersion: 5 });
      // The agent emits each state as it publishes it, so the broker may still hold the state before the last one when
      // the late subscriber arrives; the retained final state reaches it then, or is delivered live right after.
      const got = new Promise<string>((resolve) => late.on('message', (t, p) => {
        if (t === topics.adapt(DEVICE) && (JSON.parse(p.toString()) as AdaptMessage).state === 'succeeded') resolve(p.toString());
      }));
      await late.subscribeAsync(topics.adapt(DEVICE), { qos: 1 });
      expect(JSON.parse(await got)).toMatchObject({ jobId: 'mq-job', state: 'succeeded', activated: false });
      await late.endAsync();
    } finally {
      await mq.stop();
      await mosquitto.close();
    }
  });
});
