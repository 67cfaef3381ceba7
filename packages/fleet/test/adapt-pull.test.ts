// Pulling an adapted package from a device and promoting it (issue 16): a real FleetServer (embedded aedes, SQLite,
// API), MQTT clients playing devices that report their device key and their jobs, real device-signed packages uploaded
// with the agent's own uploadPackage over HTTP, and the CLI in process. A second server, whose upload URLs live 1 ms,
// lets a pull expire unused.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  fleetTopics, generateKeyPair, makeAdapt, makeEvent, makeStatus, parseMessage, verifyCommandSignature, verifyPackage, writeKeyPair,
  type AdaptFields, type CommandMessage, type KeyPair,
} from '@kd-edge/core';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { uploadPackage } from '../../edge-agent/src/adapt/adapt-upload.js';
import { TransferError } from '../../edge-agent/src/transfer/transfer-error.js';
import type { AdaptJobInfo } from '../src/adapt/adapt-job.js';
import { main } from '../src/cli.js';
import { createApiHandler } from '../src/http/api-handler.js';
import { FleetServer } from '../src/server/fleet-server.js';
import { makeTestPackage, tempDir, type TestPackage } from './registry-helpers.js';
import { waitFor } from './http-helpers.js';

const FLEET = 'pull';
const TOKEN = 'pull-test-token';
const topics = fleetTopics(FLEET);
/** The API's upload limit in this test: the small packages fit, the large one does not. */
const LIMIT = 256 * 1024;
const BASE = { name: 'shapes', version: '1.0.0' };

interface Device {
  id: string;
  client: MqttClient;
  raw: unknown[];
  commands: CommandMessage[];
  status(key: KeyPair): Promise<void>;
  job(jobId: string, fields: Partial<AdaptFields>): Promise<void>;
}

let root: string;
let cleanup: () => Promise<void>;
let server: FleetServer;
const keys = { fleet: generateKeyPair(), cam1: generateKeyPair(), cam2: generateKeyPair(), cam2b: generateKeyPair(), stranger: generateKeyPair() };
const clients: MqttClient[] = [];
let cam1: Device;
let cam2: Device;

async function call(method: string, path: string, options: { body?: unknown; token?: string | null; headers?: Record<string, string> } = {}): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== null) headers.authorization = `Bearer ${options.token ?? TOKEN}`;
  const raw = options.body instanceof Uint8Array;
  if (options.body !== undefined && !raw) headers['content-type'] = 'application/json';
  const res = await fetch(server.httpUrl + path, { method, headers, body: options.body === undefined ? undefined : raw ? (options.body as Uint8Array) : JSON.stringify(options.body) });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
}

/** Run the kd-fleet CLI in process against the server. */
async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return cliAt(server, ...args);
}

/** Run the kd-fleet CLI in process against server `at`; its exit code and output. */
async function cliAt(at: FleetServer, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const stdout = vi.spyOn(process.stdout, 'write').mockImplementation((c) => ((out += String(c)), true));
  const stderr = vi.spyOn(process.stderr, 'write').mockImplementation((c) => ((err += String(c)), true));
  try {
    return { code: await main(['node', 'kd-fleet', ...args, '--server', at.httpUrl, '--token', TOKEN]), out, err };
  } finally {
    stdout.mockRestore();
    stderr.mockRestore();
  }
}

async function device(id: string, key: KeyPair, at: FleetServer = server): Promise<Device> {
  const client = await mqtt.connectAsync(at.mqttUrl, { clientId: id, protocolVersion: 4, reconnectPeriod: 0 });
  clients.push(client);
  const d: Device = {
    id, client, raw: [], commands: [],
    async status(k) {
      const msg = makeStatus({
        deviceId: id, online: true, agentVersion: '0.2.0',
        hardware: { arch: 'arm64', platform: 'linux', cpus: 4, memTotalMb: 4096, ort: { version: '1.18.0', executionProviders: ['CPUExecutionProvider'] } },
        activeModel: null, freeDiskMb: 1000, deviceKey: { keyId: k.keyId, publicKeyPem: k.publicKeyPem },
      });
      await client.publishAsync(topics.status(id), JSON.stringify(msg), { qos: 1, retain: true });
    },
    async job(jobId, fields) {
      await client.publishAsync(topics.adapt(id), JSON.stringify(makeAdapt({ deviceId: id, jobId, base: BASE, ...fields } as AdaptFields)), { qos: 1, retain: true });
      await waitFor(`job ${jobId}`, () => at.context.adaptJobs.get(id, jobId)?.state === fields.state);
    },
  };
  client.on('message', (topic, payload) => {
    if (topic !== topics.cmd(id)) return;
    d.raw.push(JSON.parse(payload.toString('utf8')));
    d.commands.push(parseMessage('cmd', payload));
  });
  await client.subscribeAsync(topics.cmd(id), { qos: 1 });
  await d.status(key);
  await waitFor(`${id} pinned`, () => at.context.devices.get(id)?.deviceKey?.keyId === key.keyId);
  return d;
}

/** The PULL cell of a job's row in `kd-fleet adapt list`, checked to line up under its header; undefined without such a row. */
async function pullColumn(at: FleetServer, deviceId: string, jobId: string): Promise<string | undefined> {
  const list = await cliAt(at, 'adapt', 'list', '--device', deviceId);
  expect(list.code, list.err).toBe(0);
  const [header, ...rows] = list.out.split('\n');
  const row = rows.find((r) => r.split(/ +/)[1] === jobId);
  if (row === undefined) return undefined;
  const start = header!.indexOf(' PULL ') + 1;
  const end = header!.indexOf(' VERSION') + 1;
  const cell = row.slice(start, end);
  // The cell starts under PULL and the VERSION column under VERSION.
  expect([row[start - 1], cell, row[end]]).toEqual([' ', expect.stringMatching(/^\S+ +$/), expect.stringMatching(/^\S$/)]);
  return cell.trim();
}

const iso = (ms: number): string => new Date(ms).toISOString();

const succeeded = (n: number, deviceId = 'cam-01'): Partial<AdaptFields> => ({ state: 'succeeded', accepted: true, version: `1.0.0+adapt.${deviceId}.${n}`, activated: false });

/** Pull job `jobId` and return the adapt-upload command the device received. */
async function pull(d: Device, jobId: string): Promise<CommandMessage & { command: 'adapt-upload' }> {
  const before = d.commands.length;
  const r = await call('POST', `/api/devices/${d.id}/adapt-jobs/${jobId}/pull`);
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  await waitFor('the adapt-upload command', () => d.commands.length > before);
  const cmd = d.commands[d.commands.length - 1]!;
  expect(cmd.command).toBe('adapt-upload');
  expect(r.body.commandId).toBe(cmd.id);
  return cmd as CommandMessage & { command: 'adapt-upload' };
}

async function refusal(p: Promise<unknown>): Promise<TransferError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(TransferError);
  return err as TransferError;
}

async function storedTars(): Promise<string[]> {
  const dir = join(root, 'fleet', 'packages', 'shapes');
  return readdir(dir).catch(() => []);
}

const pkgs: Record<string, TestPackage> = {};
const fast = { retries: 0 };

beforeAll(async () => {
  ({ dir: root, cleanup } = await tempDir('kd-fleet-pull-'));
  await writeKeyPair(keys.fleet, { privateKeyPath: join(root, 'fleet.key'), publicKeyPath: join(root, 'fleet.pub') });
  server = await FleetServer.start({
    dataDir: join(root, 'fleet'), fleet: FLEET, httpPort: 0, mqttPort: 0, wsPort: false, token: TOKEN,
    trustedKeys: [join(root, 'fleet.pub')], signKey: join(root, 'fleet.key'), tickMs: 100_000,
    handlers: (ctx) => [createApiHandler(ctx, { packageLimit: LIMIT, tempDir: root })],
  });
  const p = join(root, 'pkgs');
  const made = await Promise.all([
    makeTestPackage(join(p, 'ok'), 'shapes', '1.0.0+adapt.cam-01.1', keys.cam1.privateKeyPem, 16 * 1024),
    makeTestPackage(join(p, 'fleet'), 'shapes', '1.0.0+adapt.cam-01.2', keys.fleet.privateKeyPem, 16 * 1024),
    makeTestPackage(join(p, 'stranger'), 'shapes', '1.0.0+adapt.cam-01.2', keys.stranger.privateKeyPem, 16 * 1024),
    makeTestPackage(join(p, 'sha'), 'shapes', '1.0.0+adapt.cam-01.3', keys.cam1.privateKeyPem, 16 * 1024),
    makeTestPackage(join(p, 'big'), 'shapes', '1.0.0+adapt.cam-01.4', keys.cam1.privateKeyPem, 400 * 1024),
    makeTestPackage(join(p, 'cli'), 'shapes', '1.0.0+adapt.cam-01.5', keys.cam1.privateKeyPem, 16 * 1024),
    makeTestPackage(join(p, 'cam2'), 'shapes', '1.0.0+adapt.cam-02.1', keys.cam2.privateKeyPem, 16 * 1024),
  ]);
  [pkgs.ok, pkgs.fleet, pkgs.stranger, pkgs.sha, pkgs.big, pkgs.cli, pkgs.cam2] = made;
  cam1 = await device('cam-01', keys.cam1);
  cam2 = await device('cam-02', keys.cam2);
}, 120_000);

afterAll(async () => {
  for (const c of clients) await c.endAsync(true);
  await server?.close();
  await cleanup?.();
});

describe('pull an adapted package and promote it', () => {
  it('refuses to pull an unknown job, an unfinished one, and without the control token', async () => {
    await cam1.job('job-running', { state: 'training', epoch: 1, epochs: 5 });
    const unknown = await call('POST', '/api/devices/cam-01/adapt-jobs/nope/pull');
    expect([unknown.status, unknown.body.error.code]).toEqual([404, 'FLEET_ADAPT_JOB_NOT_FOUND']);
    const running = await call('POST', '/api/devices/cam-01/adapt-jobs/job-running/pull');
    expect([running.status, running.body.error.code]).toEqual([409, 'FLEET_ADAPT_JOB_STATE']);
    expect(running.body.error.message).toMatch(/job-running on cam-01 is training/);
    await cam1.job('job-ok', succeeded(1));
    expect((await call('POST', '/api/devices/cam-01/adapt-jobs/job-ok/pull', { token: null })).status).toBe(401);
    expect(cam1.commands).toEqual([]);
  });

  it('uploads a device-signed package once: stored as adapted and unpromoted, and not rolled out', async () => {
    const cmd = await pull(cam1, 'job-ok');
    expect(verifyCommandSignature(cam1.raw[cam1.raw.length - 1], [keys.fleet.publicKeyPem])).toBe(keys.fleet.keyId);
    expect(cmd).toMatchObject({ deviceId: 'cam-01', jobId: 'job-ok' });
    expect(cmd.url).toMatch(new RegExp(`^${server.httpUrl}/api/uploads/[A-Za-z0-9_-]{43}$`));

    const up = await uploadPackage(pkgs.ok!.tar, cmd.url, fast);
    expect(up.status).toBe(201);
    expect(up.body).toEqual({ name: 'shapes', version: '1.0.0+adapt.cam-01.1', sha256: pkgs.ok!.info.sha256 });
    const models = (await call('GET', '/api/models', { token: null })).body as any[];
    expect(models).toEqual([expect.objectContaining({
      name: 'shapes', version: '1.0.0+adapt.cam-01.1', keyId: keys.cam1.keyId, origin: { deviceId: 'cam-01', jobId: 'job-ok' }, promotedAt: null,
    })]);

    const again = await refusal(uploadPackage(pkgs.ok!.tar, cmd.url, fast));
    expect([again.code, again.status]).toEqual(['TRANSFER_HTTP_STATUS', 409]);
    expect(again.message).toMatch(/FLEET_UPLOAD_USED/);
    const unknown = await call('PUT', '/api/uploads/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', { token: null, body: new Uint8Array(10) });
    expect([unknown.status, unknown.body.error.code]).toEqual([404, 'FLEET_UPLOAD_NOT_FOUND']);
    expect((await call('POST', '/api/devices/cam-01/adapt-jobs/job-ok/pull')).body.error.code).toBe('FLEET_PACKAGE_EXISTS');

    const rollout = await call('POST', '/api/rollouts', { body: { package: { name: 'shapes', version: '1.0.0+adapt.cam-01.1' }, target: { deviceIds: ['cam-02'] }, waves: { canary: { count: 1 }, percents: [100] } } });
    expect([rollout.status, rollout.body.error.code]).toEqual([409, 'FLEET_PACKAGE_NOT_PROMOTED']);
    expect((await call('GET', '/api/rollouts', { token: null })).body).toEqual([]);
  });

  it('promotes: re-signed with the fleet key (files, hashes and version kept), then rolled out like any model', async () => {
    const before = server.context.registry.get('shapes', '1.0.0+adapt.cam-01.1')!;
    const r = await call('POST', `/api/models/shapes/${encodeURIComponent('1.0.0+adapt.cam-01.1')}/promote`);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toMatchObject({ version: '1.0.0+adapt.cam-01.1', keyId: keys.fleet.keyId, origin: { deviceId: 'cam-01', jobId: 'job-ok' }, promotedAt: expect.any(Number) });
    expect(r.body.sha256).not.toBe(before.sha256);
    expect(r.body.manifest.files).toEqual(before.manifest.files);

    // What agents download is the promoted package: it verifies with the fleet key and no longer with the device's.
    const tar = new Uint8Array(await (await fetch(server.httpUrl + r.body.url)).arrayBuffer());
    const downloaded = join(root, 'promoted.tar');
    await (await import('node:fs/promises')).writeFile(downloaded, tar);
    expect((await verifyPackage(downloaded, { trustedKeys: [keys.fleet.publicKeyPem] })).keyId).toBe(keys.fleet.keyId);
    await expect(verifyPackage(downloaded, { trustedKeys: [keys.cam1.publicKeyPem] })).rejects.toMatchObject({ code: 'PACKAGE_KEY_UNTRUSTED' });
    expect((await call('POST', `/api/models/shapes/${encodeURIComponent('1.0.0+adapt.cam-01.1')}/promote`)).body.error.code).toBe('FLEET_PROMOTE_STATE');

    const rollout = await call('POST', '/api/rollouts', { body: { package: { name: 'shapes', version: '1.0.0+adapt.cam-01.1' }, target: { deviceIds: ['cam-02'] }, waves: { canary: { count: 1 }, percents: [100] } } });
    expect(rollout.status, JSON.stringify(rollout.body)).toBe(201);
    await server.context.rollouts.tick();
    await waitFor('the deploy', () => cam2.commands.some((c) => c.command === 'deploy'));
    const deploy = cam2.commands.find((c) => c.command === 'deploy') as CommandMessage & { command: 'deploy' };
    expect(deploy.package).toMatchObject({ version: '1.0.0+adapt.cam-01.1', sha256: r.body.sha256 });
    expect(deploy.manifest.signature?.keyId).toBe(keys.fleet.keyId);
  });

  it('refuses a package signed by any key but the device\'s (the fleet\'s, a stranger\'s) and stores nothing', async () => {
    await cam1.job('job-other-key', succeeded(2));
    for (const pkg of [pkgs.fleet!, pkgs.stranger!]) {
      const cmd = await pull(cam1, 'job-other-key');
      const err = await refusal(uploadPackage(pkg.tar, cmd.url, fast));
      expect([err.code, err.status]).toEqual(['TRANSFER_HTTP_STATUS', 400]);
      expect(err.message).toMatch(/FLEET_PACKAGE_REFUSED: PACKAGE_KEY_UNTRUSTED/);
      expect(server.context.registry.get('shapes', '1.0.0+adapt.cam-01.2')).toBeUndefined();
    }
    expect((await storedTars()).filter((f) => !f.startsWith('1.0.0+adapt.cam-01.1'))).toEqual([]);
    // kd-fleet adapt show names the refusal, and its JSON carries it.
    const show = await cli('adapt', 'show', 'cam-01', 'job-other-key');
    expect(show.code, show.err).toBe(0);
    expect(show.out).toMatch(/^ {2}pull: failed FLEET_PACKAGE_REFUSED: .*PACKAGE_KEY_UNTRUSTED.* \(command adapt-upload-[0-9a-f]+\); pull again with kd-fleet adapt pull cam-01 job-other-key$/m);
    const json = JSON.parse((await cli('adapt', 'show', 'cam-01', 'job-other-key', '--json')).out);
    expect(json.job.pull).toMatchObject({ state: 'failed', code: 'FLEET_PACKAGE_REFUSED', message: expect.stringContaining('PACKAGE_KEY_UNTRUSTED'), package: null });
  });

  it('refuses a wrong x-kd-sha256 and a package over the size limit, storing nothing', async () => {
    await cam1.job('job-sha', succeeded(3));
    const cmd = await pull(cam1, 'job-sha');
    const bytes = new Uint8Array(await readFile(pkgs.sha!.tar));
    const bad = await call('PUT', new URL(cmd.url).pathname, { token: null, body: bytes, headers: { 'x-kd-sha256': 'ab'.repeat(32), 'content-type': 'application/x-tar' } });
    expect([bad.status, bad.body.error.code]).toEqual([400, 'FLEET_UPLOAD_SHA_MISMATCH']);
    expect(server.context.registry.get('shapes', '1.0.0+adapt.cam-01.3')).toBeUndefined();

    await cam1.job('job-big', succeeded(4));
    const big = await pull(cam1, 'job-big');
    const err = await refusal(uploadPackage(pkgs.big!.tar, big.url, fast));
    expect([err.code, err.status]).toEqual(['TRANSFER_HTTP_STATUS', 413]);
    expect(server.context.registry.get('shapes', '1.0.0+adapt.cam-01.4')).toBeUndefined();
    expect((await storedTars()).filter((f) => !f.startsWith('1.0.0+adapt.cam-01.1'))).toEqual([]);
    expect((await readdir(root)).filter((f) => f.startsWith('kd-fleet-adapt-upload-'))).toEqual([]);
  });

  it('refuses the upload of a device whose key changed and was not accepted', async () => {
    await cam2.job('job-cam2', succeeded(1, 'cam-02'));
    const cmd = await pull(cam2, 'job-cam2');
    await cam2.status(keys.cam2b);
    await waitFor('the mismatch', () => server.context.devices.get('cam-02')?.deviceKey?.mismatch != null);
    const err = await refusal(uploadPackage(pkgs.cam2!.tar, cmd.url, fast));
    expect([err.code, err.status]).toEqual(['TRANSFER_HTTP_STATUS', 409]);
    expect(err.message).toMatch(/FLEET_DEVICE_KEY_UNTRUSTED/);
    expect(server.context.registry.get('shapes', '1.0.0+adapt.cam-02.1')).toBeUndefined();
    const again = await call('POST', '/api/devices/cam-02/adapt-jobs/job-cam2/pull');
    expect([again.status, again.body.error.code]).toEqual([409, 'FLEET_DEVICE_KEY_UNTRUSTED']);
  });

  it('pulls and promotes with the CLI; kd-fleet adapt show follows the pull', async () => {
    /** `adapt show`'s pull line, the pull its JSON carries, and `adapt list`'s PULL column. */
    const shown = async (): Promise<{ line: string | undefined; pull: any; column: string | undefined }> => {
      const text = await cli('adapt', 'show', 'cam-01', 'job-cli');
      expect(text.code, text.err).toBe(0);
      const json = JSON.parse((await cli('adapt', 'show', 'cam-01', 'job-cli', '--json')).out);
      return { line: text.out.split('\n').find((l) => l.startsWith('  pull:')), pull: json.job.pull, column: await pullColumn(server, 'cam-01', 'job-cli') };
    };
    await cam1.job('job-cli', succeeded(5));
    expect(await shown()).toEqual({ line: '  pull: not pulled (kd-fleet adapt pull cam-01 job-cli)', pull: null, column: '—' });
    const before = cam1.commands.length;
    const pulled = await cli('adapt', 'pull', 'cam-01', 'job-cli');
    expect(pulled.code, pulled.err).toBe(0);
    expect(pulled.out).toMatch(/cam-01: upload of 1\.0\.0\+adapt\.cam-01\.5 \(job job-cli\) requested/);
    await waitFor('the command', () => cam1.commands.length > before);
    const cmd = cam1.commands[cam1.commands.length - 1] as CommandMessage & { command: 'adapt-upload' };
    const requested = await shown();
    expect(requested.pull).toMatchObject({ state: 'requested', commandId: cmd.id, code: null, package: null });
    expect(requested.column).toBe('requested');
    expect(requested.line).toBe(`  pull: requested at ${iso(requested.pull.requestedAt)} (command ${cmd.id}), waiting for the device; its upload URL expires at ${iso(requested.pull.expiresAt)}`);

    // The device accepts the command (as kd-agent does before it uploads).
    const accepted = makeEvent({ deviceId: 'cam-01', commandId: cmd.id, command: 'adapt-upload', state: 'accepted' });
    await cam1.client.publishAsync(topics.events('cam-01'), JSON.stringify(accepted), { qos: 1 });
    await waitFor('the pull uploading', () => server.context.adaptJobs.get('cam-01', 'job-cli')?.pull?.state === 'uploading');
    const uploading = await shown();
    expect(uploading.line).toBe(`  pull: uploading (command ${cmd.id}): the device accepted; its upload URL expires at ${iso(requested.pull.expiresAt)}`);
    expect(uploading.column).toBe('uploading');

    await uploadPackage(pkgs.cli!.tar, cmd.url, fast);
    const ls = await cli('models', 'ls');
    expect(ls.out).toMatch(/1\.0\.0\+adapt\.cam-01\.5 .*device:cam-01 job job-cli \(pulled, not promoted\)/);
    const stored = await shown();
    expect(stored.pull).toMatchObject({ state: 'pulled', package: { name: 'shapes', version: '1.0.0+adapt.cam-01.5', keyId: keys.cam1.keyId, promotedAt: null } });
    expect(stored.column).toBe('pulled');
    expect(stored.line).toBe(`  pull: pulled shapes@1.0.0+adapt.cam-01.5 sha256 ${pkgs.cli!.info.sha256.slice(0, 16)}, ` +
      `signed by the device's key ${keys.cam1.keyId}, not promoted (kd-fleet models promote shapes 1.0.0+adapt.cam-01.5)`);
    const promoted = await cli('models', 'promote', 'shapes', '1.0.0+adapt.cam-01.5');
    expect(promoted.code, promoted.err).toBe(0);
    expect(promoted.out).toContain(`signed by key ${keys.fleet.keyId}`);
    expect((await cli('models', 'ls')).out).toMatch(/1\.0\.0\+adapt\.cam-01\.5 .*device:cam-01 job job-cli \(promoted\)/);
    const after = await shown();
    expect(after.pull.package).toMatchObject({ keyId: keys.fleet.keyId, promotedAt: expect.any(Number) });
    expect(after.line).toBe(`  pull: pulled shapes@1.0.0+adapt.cam-01.5 sha256 ${after.pull.package.sha256.slice(0, 16)}, ` +
      `promoted at ${iso(after.pull.package.promotedAt)}, signed by the fleet's key ${keys.fleet.keyId}`);
    const refused = await cli('adapt', 'pull', 'cam-01', 'job-running');
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/409 FLEET_ADAPT_JOB_STATE/);
  });
});

describe('a pull whose upload URL expires unused', () => {
  // The job store reads the server's real clock: a server whose upload URLs live 1 ms lets one expire at once.
  let short: FleetServer;
  let cam: Device;

  beforeAll(async () => {
    short = await FleetServer.start({
      dataDir: join(root, 'fleet-short-ttl'), fleet: FLEET, httpPort: 0, mqttPort: 0, wsPort: false, token: TOKEN,
      trustedKeys: [join(root, 'fleet.pub')], signKey: join(root, 'fleet.key'), tickMs: 100_000, adaptUploadTtlMs: 1,
      handlers: (ctx) => [createApiHandler(ctx, { packageLimit: LIMIT, tempDir: root })],
    });
    cam = await device('cam-01', keys.cam1, short);
  }, 120_000);

  afterAll(async () => {
    if (cam !== undefined) {
      clients.splice(clients.indexOf(cam.client), 1);
      await cam.client.endAsync(true);
    }
    await short?.close();
  });

  it('shows expired in the job store, in adapt show\'s pull line and in adapt list\'s PULL column; the late upload is refused', async () => {
    await cam.job('job-late', succeeded(6));
    const before = cam.commands.length;
    const pulled = await cliAt(short, 'adapt', 'pull', 'cam-01', 'job-late');
    expect(pulled.code, pulled.err).toBe(0);
    await waitFor('the command', () => cam.commands.length > before);
    const cmd = cam.commands[cam.commands.length - 1] as CommandMessage & { command: 'adapt-upload' };
    expect(cmd).toMatchObject({ command: 'adapt-upload', jobId: 'job-late' });

    const job = (): AdaptJobInfo | undefined => short.context.adaptJobs.get('cam-01', 'job-late');
    await waitFor('the pull expired', () => job()?.pull?.state === 'expired');
    const pull = job()!.pull!;
    expect(pull).toEqual({ state: 'expired', commandId: cmd.id, requestedAt: expect.any(Number), expiresAt: pull.requestedAt! + 1, code: null, message: null, package: null });

    const show = await cliAt(short, 'adapt', 'show', 'cam-01', 'job-late');
    expect(show.code, show.err).toBe(0);
    expect(show.out.split('\n').find((l) => l.startsWith('  pull:')))
      .toBe(`  pull: expired at ${iso(pull.expiresAt!)} unused (command ${cmd.id}); pull again with kd-fleet adapt pull cam-01 job-late`);
    expect(JSON.parse((await cliAt(short, 'adapt', 'show', 'cam-01', 'job-late', '--json')).out).job.pull).toEqual(pull);
    expect(await pullColumn(short, 'cam-01', 'job-late')).toBe('expired');

    // The device's upload comes too late: refused, and the refusal is no failure of the pull, which stays expired.
    const late = await refusal(uploadPackage(pkgs.ok!.tar, cmd.url, fast));
    expect([late.code, late.status]).toEqual(['TRANSFER_HTTP_STATUS', 410]);
    expect(late.message).toMatch(/FLEET_UPLOAD_EXPIRED/);
    expect(job()!.pull).toEqual(pull);
  });
});
