// Device keys in the fleet (issue 16): the first key a device reports is pinned, a different one later is flagged and
// does not replace it, and an operator accepts a new one through the API or the CLI.
import { fleetTopics, generateKeyPair, makeOfflineStatus, makeStatus, type KeyPair, type StatusMessage } from '@kd-edge/core';
import type Database from 'better-sqlite3';
import type { MqttClient } from 'mqtt';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from '../src/cli.js';
import { DeviceRegistry, type DeviceChange, type KeyMismatch, type MalformedMessage } from '../src/devices/device-registry.js';
import { connect, startBroker, waitFor, type TestBroker } from './devices-broker.js';
import { call, recordingLogger, startApi, TOKEN, type ApiFixture } from './http-helpers.js';
import { migratedDb, tempDir } from './registry-helpers.js';

const FLEET = 'lab';
const topics = fleetTopics(FLEET);
const A: KeyPair = generateKeyPair();
const B: KeyPair = generateKeyPair();
const C: KeyPair = generateKeyPair();

function status(deviceId: string, key: KeyPair | undefined): StatusMessage {
  return makeStatus({
    deviceId, online: true, agentVersion: '0.2.0',
    hardware: { arch: 'arm64', platform: 'linux', cpus: 6, memTotalMb: 7620, ort: { version: '1.18.0', executionProviders: ['CPUExecutionProvider'] } },
    activeModel: null, freeDiskMb: 1000,
    ...(key ? { deviceKey: { keyId: key.keyId, publicKeyPem: key.publicKeyPem } } : {}),
  });
}

describe('DeviceRegistry device keys over aedes, on a SQLite file', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let db: Database.Database;
  let broker: TestBroker;
  let now: number;
  const clients: MqttClient[] = [];
  const registries: DeviceRegistry[] = [];

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir('kd-fleet-device-keys-'));
    db = migratedDb(dir);
    broker = await startBroker();
    now = 1_000;
  });
  afterEach(async () => {
    for (const r of registries.splice(0)) await r.detach();
    for (const c of clients.splice(0)) await c.endAsync(true);
    await broker.close();
    db.close();
    await cleanup();
  });

  async function fleetSide(): Promise<{ devices: DeviceRegistry; changes: DeviceChange[]; mismatches: KeyMismatch[]; malformed: MalformedMessage[]; log: ReturnType<typeof recordingLogger> }> {
    const client = await connect(broker.url, { clientId: `fleet-${registries.length}` });
    clients.push(client);
    const log = recordingLogger();
    const devices = new DeviceRegistry(db, { fleet: FLEET, now: () => now, logger: log });
    const changes: DeviceChange[] = [];
    const mismatches: KeyMismatch[] = [];
    const malformed: MalformedMessage[] = [];
    devices.on('change', (c) => changes.push(c));
    devices.on('keyMismatch', (m) => mismatches.push(m));
    devices.on('malformed', (m) => malformed.push(m));
    await devices.attach(client);
    registries.push(devices);
    return { devices, changes, mismatches, malformed, log };
  }

  /** A device as the agent connects: its id as client id, the offline will, then its retained status. */
  async function device(deviceId: string): Promise<MqttClient> {
    const client = await connect(broker.url, {
      clientId: deviceId, clean: false,
      will: { topic: topics.status(deviceId), payload: Buffer.from(JSON.stringify(makeOfflineStatus(deviceId))), qos: 1, retain: true },
    });
    clients.push(client);
    return client;
  }
  /** The device publishes its retained status (a message, or raw JSON the builder would refuse). */
  async function report(client: MqttClient, msg: StatusMessage | Record<string, unknown>): Promise<void> {
    await client.publishAsync(topics.status(msg.deviceId as string), JSON.stringify(msg), { qos: 1, retain: true });
  }

  it('pins the first key, flags a different one without replacing it, and keeps both across a restart', async () => {
    const { devices, changes, mismatches, log } = await fleetSide();
    const cam = await device('cam-1');
    await report(cam, status('cam-1', A));
    await waitFor('cam-1 pinned', () => devices.get('cam-1')?.deviceKey != null);
    expect(devices.get('cam-1')!.deviceKey).toEqual({ keyId: A.keyId, publicKeyPem: A.publicKeyPem, pinnedAt: 1000, mismatch: null });
    expect(changes.map((c) => c.kind)).toEqual(['online', 'key']);
    expect(log.lines).toContainEqual({ level: 'info', message: `devices: cam-1: pinned its device key ${A.keyId} (first seen)` });

    // The same key again changes nothing about the pin.
    now = 2_000;
    await report(cam, status('cam-1', A));
    await waitFor('second status', () => devices.stats().status === 2);
    expect(devices.get('cam-1')!.deviceKey?.pinnedAt).toBe(1000);

    // Another key: the pinned one stays, the new one is recorded, logged and emitted once however often it comes.
    now = 3_000;
    await report(cam, status('cam-1', B));
    await waitFor('mismatch', () => devices.get('cam-1')?.deviceKey?.mismatch != null);
    now = 4_000;
    await report(cam, status('cam-1', B));
    await waitFor('fourth status', () => devices.stats().status === 4);
    const flagged = devices.get('cam-1')!;
    expect(flagged.deviceKey).toEqual({ keyId: A.keyId, publicKeyPem: A.publicKeyPem, pinnedAt: 1000, mismatch: { keyId: B.keyId, publicKeyPem: B.publicKeyPem, seenAt: 3000 } });
    // What the device said is still visible as it said it.
    expect(flagged.status?.deviceKey?.keyId).toBe(B.keyId);
    expect(mismatches).toEqual([{ deviceId: 'cam-1', pinned: { keyId: A.keyId, pinnedAt: 1000 }, seen: { keyId: B.keyId, seenAt: 3000 } }]);
    expect(log.lines.filter((l) => l.level === 'warn')).toEqual([{
      level: 'warn',
      message: `devices: cam-1 reports device key ${B.keyId}, not its pinned key ${A.keyId}; the pinned key stays in force until an operator accepts the new one (kd-fleet devices accept-key cam-1 ${B.keyId})`,
    }]);
    expect(changes.filter((c) => c.kind === 'key')).toHaveLength(2);

    // Back to the pinned key, then a status without any key (an older agent) and the will: the flag stays for an operator.
    await report(cam, status('cam-1', A));
    await report(cam, status('cam-1', undefined));
    await waitFor('sixth status', () => devices.stats().status === 6);
    broker.cut('cam-1');
    await waitFor('offline', () => devices.get('cam-1')?.online === false);
    expect(devices.get('cam-1')!.deviceKey?.mismatch?.keyId).toBe(B.keyId);
    expect(devices.get('cam-1')!.deviceKey?.keyId).toBe(A.keyId);

    // A restarted fleet on the same file knows both.
    const file = db.name;
    for (const r of registries.splice(0)) await r.detach();
    db.close();
    db = migratedDb(dir);
    expect(db.name).toBe(file);
    const reopened = new DeviceRegistry(db, { fleet: FLEET });
    expect(reopened.get('cam-1')!.deviceKey).toEqual(flagged.deviceKey);
  });

  it('lets an operator accept the reported key, or keep the pinned one; refuses any other key id', async () => {
    const { devices, changes, log } = await fleetSide();
    const cam = await device('cam-2');
    await report(cam, status('cam-2', A));
    await waitFor('pinned', () => devices.get('cam-2')?.deviceKey != null);
    now = 5_000;
    await report(cam, status('cam-2', B));
    await waitFor('mismatch', () => devices.get('cam-2')?.deviceKey?.mismatch != null);

    // Neither the pinned nor the reported key: nothing to accept, nothing changes.
    expect(() => devices.acceptKey('cam-2', C.keyId)).toThrow(expect.objectContaining({
      code: 'FLEET_DEVICE_KEY_CONFLICT',
      message: `device cam-2 has pinned key ${A.keyId} and reported ${B.keyId}; key ${C.keyId} is neither, so there is nothing to accept`,
    }) as Error);
    expect(() => devices.acceptKey('ghost', B.keyId)).toThrow(expect.objectContaining({ code: 'FLEET_DEVICE_NOT_FOUND' }) as Error);
    expect(() => devices.acceptKey('cam-2', 'B')).toThrow(TypeError);
    expect(devices.get('cam-2')!.deviceKey?.keyId).toBe(A.keyId);

    now = 6_000;
    const accepted = devices.acceptKey('cam-2', B.keyId);
    expect(accepted.deviceKey).toEqual({ keyId: B.keyId, publicKeyPem: B.publicKeyPem, pinnedAt: 6000, mismatch: null });
    expect(changes.at(-1)).toMatchObject({ kind: 'key', deviceId: 'cam-2' });
    expect(log.lines.at(-1)).toEqual({ level: 'info', message: `devices: cam-2: an operator accepted key ${B.keyId} in place of ${A.keyId}` });
    // Accepting twice is harmless: B is now the pinned key.
    expect(devices.acceptKey('cam-2', B.keyId).deviceKey?.keyId).toBe(B.keyId);

    // The old key is now the stranger.
    now = 7_000;
    await report(cam, status('cam-2', A));
    await waitFor('new mismatch', () => devices.get('cam-2')?.deviceKey?.mismatch?.keyId === A.keyId);
    // Naming the pinned key keeps it and clears the flag.
    const kept = devices.acceptKey('cam-2', B.keyId);
    expect(kept.deviceKey).toEqual({ keyId: B.keyId, publicKeyPem: B.publicKeyPem, pinnedAt: 6000, mismatch: null });

    // A device whose agent reports no key has nothing to accept.
    const old = await device('cam-old');
    await report(old, status('cam-old', undefined));
    await waitFor('cam-old', () => devices.get('cam-old') !== undefined);
    expect(devices.get('cam-old')!.deviceKey).toBeNull();
    expect(() => devices.acceptKey('cam-old', A.keyId)).toThrow(/device cam-old has reported no device key yet/);
  });

  it('refuses a status whose key id is not its key\'s, and pins nothing from it', async () => {
    const { devices, malformed } = await fleetSide();
    const cam = await device('cam-3');
    const forged = { ...status('cam-3', undefined), deviceKey: { keyId: A.keyId, publicKeyPem: B.publicKeyPem } };
    await report(cam, forged);
    await waitFor('refused', () => malformed.length === 1);
    expect(malformed[0]!.error.message).toMatch(/^status\.deviceKey\.keyId: expected the id of publicKeyPem/);
    expect(devices.get('cam-3')).toBeUndefined();
  });
});

describe('device keys over the REST API and the CLI', () => {
  let fx: ApiFixture;
  beforeEach(async () => {
    fx = await startApi();
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await fx.close();
  });

  const report = (deviceId: string, key: KeyPair): void => fx.ctx.devices.handleMessage(topics.status(deviceId), Buffer.from(JSON.stringify(status(deviceId, key))));

  /** Runs the kd-fleet CLI against the fixture's server; returns its exit code and what it printed. */
  async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => ((out += String(chunk)), true));
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((err += String(chunk)), true));
    try {
      const code = await main(['node', 'kd-fleet', ...args, '--server', fx.url, '--token', TOKEN]);
      return { code, out, err };
    } finally {
      stdout.mockRestore();
      stderr.mockRestore();
    }
  }

  it('shows the pinned key and the mismatch in the device JSON, and POST /api/devices/:id/key/accept replaces it behind the token', async () => {
    report('cam-1', A);
    const pinnedAt = fx.clock.t;
    fx.clock.t += 60_000;
    report('cam-1', B);

    const one = await call(fx, 'GET', '/api/devices/cam-1', { token: null });
    expect(one.status).toBe(200);
    expect(one.body.device.deviceKey).toEqual({ keyId: A.keyId, publicKeyPem: A.publicKeyPem, pinnedAt, mismatch: { keyId: B.keyId, publicKeyPem: B.publicKeyPem, seenAt: pinnedAt + 60_000 } });
    const list = await call(fx, 'GET', '/api/devices', { token: null });
    expect(list.body[0].deviceKey.mismatch.keyId).toBe(B.keyId);

    // The existing control auth: no token, a wrong one, a read-only server: 401 and nothing changes.
    for (const token of [null, 'wrong']) {
      const r = await call(fx, 'POST', '/api/devices/cam-1/key/accept', { token, body: { keyId: B.keyId } });
      expect([r.status, r.body.error.code]).toEqual([401, 'FLEET_UNAUTHORIZED']);
    }
    expect(fx.ctx.devices.get('cam-1')!.deviceKey?.keyId).toBe(A.keyId);

    const bad = await call(fx, 'POST', '/api/devices/cam-1/key/accept', { body: { keyId: 'B' } });
    expect([bad.status, bad.body.error.code]).toEqual([400, 'FLEET_BAD_REQUEST']);
    expect(bad.body.error.message).toBe('keyId: expected the 16 lower-case hex characters of the key to accept, got "B"');
    const none = await call(fx, 'POST', '/api/devices/cam-1/key/accept', { body: {} });
    expect(none.body.error.message).toMatch(/got nothing$/);
    const other = await call(fx, 'POST', '/api/devices/cam-1/key/accept', { body: { keyId: C.keyId } });
    expect([other.status, other.body.error.code]).toEqual([409, 'FLEET_DEVICE_KEY_CONFLICT']);
    const ghost = await call(fx, 'POST', '/api/devices/ghost/key/accept', { body: { keyId: B.keyId } });
    expect([ghost.status, ghost.body.error.code]).toEqual([404, 'FLEET_DEVICE_NOT_FOUND']);
    const get = await call(fx, 'GET', '/api/devices/cam-1/key/accept');
    expect(get.status).toBe(405);
    expect(fx.ctx.devices.get('cam-1')!.deviceKey?.keyId).toBe(A.keyId);

    fx.clock.t += 60_000;
    const ok = await call(fx, 'POST', '/api/devices/cam-1/key/accept', { body: { keyId: B.keyId } });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ id: 'cam-1', deviceKey: { keyId: B.keyId, publicKeyPem: B.publicKeyPem, pinnedAt: fx.clock.t, mismatch: null } });
    expect((await call(fx, 'GET', '/api/devices/cam-1', { token: null })).body.device.deviceKey.keyId).toBe(B.keyId);
  });

  it('kd-fleet devices key, accept-key and ls talk to the real server', async () => {
    report('cam-9', A);
    report('cam-9', C);

    const shown = await cli('devices', 'key', 'cam-9');
    expect(shown.code).toBe(0);
    expect(shown.out).toContain(`cam-9: pinned key ${A.keyId}`);
    expect(shown.out).toContain(`cam-9: MISMATCH: reports key ${C.keyId}`);
    const ls = await cli('devices', 'ls');
    expect(ls.out).toMatch(new RegExp(`^cam-9 .* ${A.keyId}! `, 'm'));

    const refused = await cli('devices', 'accept-key', 'cam-9', B.keyId);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/^kd-fleet: 409 FLEET_DEVICE_KEY_CONFLICT: device cam-9 has pinned key/);
    expect(fx.ctx.devices.get('cam-9')!.deviceKey?.keyId).toBe(A.keyId);

    const accepted = await cli('devices', 'accept-key', 'cam-9', C.keyId);
    expect(accepted).toMatchObject({ code: 0, err: '' });
    expect(accepted.out).toBe(`cam-9: pinned key ${C.keyId} (since ${new Date(fx.clock.t).toISOString()})\n`);
    expect(fx.ctx.devices.get('cam-9')!.deviceKey).toMatchObject({ keyId: C.keyId, mismatch: null });
    const json = await cli('devices', 'key', 'cam-9', '--json');
    expect(JSON.parse(json.out)).toMatchObject({ keyId: C.keyId, mismatch: null });
  });
});
