import { fleetTopics, makeBench, makeEvent, makeOfflineStatus, makeStatus, type Logger, type StatusMessage } from '@kd-edge/core';
import type Database from 'better-sqlite3';
import type { MqttClient } from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FleetError } from '../src/db/fleet-error.js';
import { DeviceRegistry, type DeviceChange, type MalformedMessage } from '../src/devices/device-registry.js';
import { RESERVED_DEVICE_IDS } from '@kd-edge/core';
import { connect, startBroker, waitFor, type TestBroker } from './devices-broker.js';
import { recordingLogger } from './http-helpers.js';
import { migratedDb, tempDir } from './registry-helpers.js';

const FLEET = 'lab';
const topics = fleetTopics(FLEET);
const SHA_A = 'a'.repeat(64);
const SHA_B = 'b'.repeat(64);

let dir: string;
let cleanup: () => Promise<void>;
let db: Database.Database;
let broker: TestBroker;
let now: number;
const clients: MqttClient[] = [];
const registries: DeviceRegistry[] = [];

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('kd-fleet-devices-'));
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

async function fleetSide(options: { benchKeep?: number; logger?: Logger } = {}): Promise<{ devices: DeviceRegistry; changes: DeviceChange[]; malformed: MalformedMessage[] }> {
  const client = await connect(broker.url, { clientId: `fleet-${registries.length}` });
  clients.push(client);
  const devices = new DeviceRegistry(db, { fleet: FLEET, now: () => now, ...options });
  const changes: DeviceChange[] = [];
  const malformed: MalformedMessage[] = [];
  devices.on('change', (c) => changes.push(c));
  devices.on('malformed', (m) => malformed.push(m));
  await devices.attach(client);
  registries.push(devices);
  return { devices, changes, malformed };
}

function fullStatus(deviceId: string, sha = SHA_A, version = '1.0.0'): StatusMessage {
  return makeStatus({
    deviceId,
    online: true,
    agentVersion: '0.1.0',
    hardware: { arch: 'arm64', platform: 'linux', cpus: 6, memTotalMb: 7620, jetson: { model: 'Orin Nano' }, tensorrt: '8.6.2', ort: { version: '1.18.0', executionProviders: ['CPUExecutionProvider'] } },
    activeModel: { name: 'pets', version, sha256: sha, precision: 'int8', runtime: 'onnxruntime' },
    freeDiskMb: 1000,
    serving: { fps: 30, frames: 10 },
  });
}

/** A device as the agent connects: its id as client id, the offline status as retained will, then its retained status. */
async function agent(deviceId: string, status = fullStatus(deviceId)): Promise<MqttClient> {
  const client = await connect(broker.url, {
    clientId: deviceId,
    clean: false,
    will: { topic: topics.status(deviceId), payload: Buffer.from(JSON.stringify(makeOfflineStatus(deviceId))), qos: 1, retain: true },
  });
  clients.push(client);
  await client.publishAsync(topics.status(deviceId), JSON.stringify(status), { qos: 1, retain: true });
  return client;
}

function bench(deviceId: string, p95: number, ts: string, extra: { version?: string; temps?: Record<string, number> } = {}): string {
  return JSON.stringify(makeBench({
    deviceId,
    commandId: null,
    ts,
    model: { name: 'pets', version: extra.version ?? '1.0.0', sha256: SHA_A, file: 'model.onnx' },
    runtime: 'onnxruntime',
    executionProvider: 'CPUExecutionProvider',
    input: { name: 'images', shape: [1, 3, 64, 64] },
    batch: 1,
    warmup: 2,
    iterations: 10,
    latencyMs: { min: 1, mean: p95 / 2, p50: p95 / 2, p90: p95 - 1, p95, p99: p95 + 1, max: p95 + 2 },
    throughputFps: 1000 / p95,
    splitMs: { pre: 0.1, infer: 1, post: 0.1 },
    rssMb: 100,
    cpuLoadPct: 20,
    ...(extra.temps ? { tegrastats: { samples: 3, totalPowerMw: 5000, powerMw: { VDD_IN: 5000 }, tempC: extra.temps } } : {}),
    ...(p95 < 10 ? { accuracy: { map50: 0.5, map: 0.3, images: 3 } } : {}),
  }));
}

describe('DeviceRegistry over aedes', () => {
  it('adds a device from its retained status and marks it offline from its last will', async () => {
    const { devices, changes } = await fleetSide();
    await agent('jetson-01');
    await waitFor('jetson-01 online', () => devices.get('jetson-01')?.online === true);
    const d = devices.get('jetson-01')!;
    expect(d).toMatchObject({ id: 'jetson-01', fleet: FLEET, firstSeen: 1000, lastSeen: 1000, agentVersion: '0.1.0', tags: [], removedAt: null });
    // with what its status says serves it (issue 17)
    expect(d.activeModel).toEqual({ name: 'pets', version: '1.0.0', sha256: SHA_A, precision: 'int8', runtime: 'onnxruntime' });
    expect(d.status?.hardware?.jetson?.model).toBe('Orin Nano');
    expect(changes.map((c) => c.kind)).toEqual(['online']);
    expect(changes[0]!.device?.online).toBe(true);

    now = 5_000;
    broker.cut('jetson-01'); // a dead link: the broker publishes the will
    await waitFor('jetson-01 offline', () => devices.get('jetson-01')?.online === false);
    const off = devices.get('jetson-01')!;
    // The will says only "offline": what the device said about itself stays, its serving rate goes.
    expect(off.activeModel).toEqual({ name: 'pets', version: '1.0.0', sha256: SHA_A, precision: 'int8', runtime: 'onnxruntime' });
    expect(off.status).toMatchObject({ online: false, agentVersion: '0.1.0', hardware: { cpus: 6 } });
    expect(off.status?.serving).toBeUndefined();
    expect(off.lastSeen).toBe(1000); // the will came from the broker, not the device
    expect(changes.map((c) => c.kind)).toEqual(['online', 'offline']);
    expect(devices.list({ online: false }).map((x) => x.id)).toEqual(['jetson-01']);
    expect(devices.list({ online: true })).toEqual([]);
  });

  it('follows status updates (a new active model) and keeps the state across a restart of the fleet', async () => {
    const first = await fleetSide();
    const dev = await agent('jetson-02');
    await waitFor('online', () => first.devices.get('jetson-02')?.online === true);
    now = 2_000;
    await dev.publishAsync(topics.status('jetson-02'), JSON.stringify(fullStatus('jetson-02', SHA_B, '1.1.0')), { qos: 1, retain: true });
    await waitFor('new model', () => first.devices.get('jetson-02')?.activeModel?.version === '1.1.0');
    expect(first.changes.map((c) => c.kind)).toEqual(['online', 'status']);
    first.devices.setTags('jetson-02', ['site:north', 'orin', 'orin']);
    await first.devices.detach();

    // A new fleet process: the broker hands it the retained status, and the table keeps first_seen and tags.
    now = 9_000;
    const second = await fleetSide();
    await waitFor('retained status', () => second.changes.length === 1);
    expect(second.devices.get('jetson-02')).toMatchObject({ firstSeen: 1000, lastSeen: 9000, online: true, tags: ['orin', 'site:north'] });
    expect(second.devices.get('jetson-02')?.activeModel?.sha256).toBe(SHA_B);
  });

  it('marks a device removed when its retained status is cleared, and back when it speaks again', async () => {
    const { devices, changes } = await fleetSide();
    const dev = await agent('jetson-03');
    await waitFor('online', () => devices.get('jetson-03') !== undefined);
    devices.setTags('jetson-03', ['lab']);
    now = 3_000;
    await dev.publishAsync(topics.status('jetson-03'), Buffer.alloc(0), { qos: 1, retain: true });
    await waitFor('removed', () => devices.get('jetson-03') === undefined);
    expect(changes.at(-1)?.kind).toBe('removed');
    expect(devices.list()).toEqual([]);
    expect(devices.list({ includeRemoved: true })).toMatchObject([{ id: 'jetson-03', removedAt: 3000, online: false, tags: ['lab'] }]);
    await dev.publishAsync(topics.status('jetson-03'), JSON.stringify(fullStatus('jetson-03')), { qos: 1, retain: true });
    await waitFor('back', () => devices.get('jetson-03')?.online === true);
    expect(devices.get('jetson-03')).toMatchObject({ removedAt: null, tags: ['lab'] });
  });

  it('keeps the last event per device', async () => {
    const { devices } = await fleetSide();
    const dev = await agent('jetson-04');
    await waitFor('online', () => devices.get('jetson-04') !== undefined);
    const events: string[] = [];
    devices.on('event', (e) => events.push(e.state));
    now = 4_000;
    for (const state of ['accepted', 'downloading', 'succeeded'] as const) {
      const e = makeEvent({ deviceId: 'jetson-04', commandId: 'r1-jetson-04', command: 'deploy', state, ...(state === 'downloading' ? { progress: { bytes: 1, total: 2 } } : {}) });
      await dev.publishAsync(topics.events('jetson-04'), JSON.stringify(e), { qos: 1 });
    }
    await waitFor('three events', () => events.length === 3);
    expect(events).toEqual(['accepted', 'downloading', 'succeeded']);
    expect(devices.get('jetson-04')).toMatchObject({ lastEvent: { state: 'succeeded', commandId: 'r1-jetson-04' }, lastEventAt: 4000, lastSeen: 4000 });
  });

  it('stores bench reports, keeps the last N per device and returns the latency history oldest first', async () => {
    const { devices } = await fleetSide({ benchKeep: 3 });
    const dev = await agent('jetson-05');
    await waitFor('online', () => devices.get('jetson-05') !== undefined);
    let seen = 0;
    devices.on('bench', () => seen++);
    for (let i = 0; i < 5; i++) {
      await dev.publishAsync(topics.bench('jetson-05'), bench('jetson-05', 10 + i, `2026-05-01T12:00:0${i}Z`, { temps: { cpu: 40 + i, gpu: 50 } }), { qos: 1 });
    }
    await dev.publishAsync(topics.bench('jetson-05'), bench('jetson-05', 5, '2026-05-01T11:00:00Z', { version: '0.9.0' }), { qos: 1 });
    await waitFor('six reports', () => seen === 6);
    const history = devices.latencyHistory('jetson-05');
    // The report dated earliest is trimmed first, whatever order they came in.
    expect(history.map((h) => h.p95)).toEqual([12, 13, 14]);
    expect(history[2]).toMatchObject({ name: 'pets', version: '1.0.0', runtime: 'onnxruntime', p50: 7, fps: 1000 / 14, powerMw: 5000, tempC: 50, map50: null, ts: Date.parse('2026-05-01T12:00:04Z') });
    expect(devices.latencyHistory('jetson-05', 1).map((h) => h.p95)).toEqual([14]);
    expect(devices.latestBench('jetson-05')?.p95).toBe(14);
    expect(devices.latestBench('jetson-05', { version: '0.9.0' })).toBeUndefined();
    expect(db.prepare('SELECT COUNT(*) FROM bench_reports').pluck().get()).toBe(3);
  });

  it('counts and reports malformed messages without throwing, and goes on working', async () => {
    const { devices, malformed } = await fleetSide();
    const obs = await connect(broker.url, { clientId: 'mischief' });
    clients.push(obs);
    await obs.publishAsync(topics.status('jetson-06'), 'not json', { qos: 1 });
    await obs.publishAsync(topics.status('jetson-06'), JSON.stringify({ ...fullStatus('jetson-06'), v: 2 }), { qos: 1 });
    await obs.publishAsync(topics.status('jetson-06'), JSON.stringify(fullStatus('jetson-07')), { qos: 1 }); // another device's status
    await obs.publishAsync(topics.events('jetson-06'), JSON.stringify({ v: 1, type: 'event', deviceId: 'jetson-06', state: 'exploded' }), { qos: 1 });
    await obs.publishAsync(topics.bench('jetson-06'), JSON.stringify({ v: 1, type: 'bench', deviceId: 'jetson-06' }), { qos: 1 });
    await waitFor('five malformed', () => devices.stats().malformed === 5);
    expect(malformed.map((m) => m.topic)).toEqual([
      topics.status('jetson-06'), topics.status('jetson-06'), topics.status('jetson-06'), topics.events('jetson-06'), topics.bench('jetson-06'),
    ]);
    expect(malformed.map((m) => (m.error as { code?: string }).code)).toEqual(['PROTOCOL_JSON', 'PROTOCOL_VERSION', undefined, 'PROTOCOL_SCHEMA', 'PROTOCOL_SCHEMA']);
    expect(malformed[2]!.error.message).toContain('jetson-07');
    expect(devices.list({ includeRemoved: true })).toEqual([]);
    // Topics outside the device tree, or of other kinds, are not the registry's business.
    devices.handleMessage('elsewhere/topic', Buffer.from('x'));
    devices.handleMessage(topics.detections('jetson-06'), Buffer.from('x'));
    devices.handleMessage(`${topics.root}/devices/bad id/status`, Buffer.from('{}'));
    expect(devices.stats().malformed).toBe(6);
    await agent('jetson-06');
    await waitFor('a good status after the bad ones', () => devices.get('jetson-06')?.online === true);
  });

  it("refuses reports under a service account's name: never listed, no events, counted and logged", async () => {
    const logger = recordingLogger();
    const { devices, changes, malformed } = await fleetSide({ logger });
    const emitted: string[] = [];
    devices.on('status', (m) => emitted.push(`status ${m.deviceId}`));
    devices.on('event', (m) => emitted.push(`event ${m.deviceId}`));
    devices.on('bench', (m) => emitted.push(`bench ${m.deviceId}`));
    // aedes has no ACL: these stand for a broker whose ACL let a service user report as a device (the shipped one does not).
    expect(RESERVED_DEVICE_IDS).toEqual(['kd-fleet', 'kd-dashboard']);
    for (const id of RESERVED_DEVICE_IDS) {
      const impostor = await connect(broker.url, { clientId: `${id}-impostor` });
      clients.push(impostor);
      await impostor.publishAsync(topics.status(id), JSON.stringify(fullStatus(id)), { qos: 1, retain: true });
      await impostor.publishAsync(topics.events(id), JSON.stringify(makeEvent({ deviceId: id, commandId: 'r1-x', command: 'deploy', state: 'failed' })), { qos: 1 });
      await impostor.publishAsync(topics.bench(id), bench(id, 20, '2026-05-01T12:00:00Z'), { qos: 1 });
    }
    // Sent after every refused message was acknowledged, so it arrives after them.
    await agent('jetson-08');
    await waitFor('the real device', () => devices.get('jetson-08') !== undefined);
    expect(devices.list({ includeRemoved: true }).map((d) => d.id)).toEqual(['jetson-08']);
    for (const id of RESERVED_DEVICE_IDS) expect(devices.get(id, { includeRemoved: true })).toBeUndefined();
    expect(emitted).toEqual(['status jetson-08']);
    expect(changes.map((c) => c.deviceId)).toEqual(['jetson-08']);
    expect(devices.stats()).toMatchObject({ reserved: 6, malformed: 0, status: 1, events: 0, bench: 0 });
    expect(malformed.map((m) => [m.topic, (m.error as { code?: string }).code])).toEqual(
      RESERVED_DEVICE_IDS.flatMap((id) => [topics.status(id), topics.events(id), topics.bench(id)].map((topic) => [topic, 'FLEET_RESERVED_DEVICE_ID'])),
    );
    const warnings = logger.lines.filter((l) => l.level === 'warn').map((l) => l.message);
    expect(warnings).toHaveLength(6);
    expect(warnings[0]).toContain(topics.status('kd-fleet'));
    expect(warnings[0]).toMatch(/service account/);
  });
});

describe('DeviceRegistry tags and queries', () => {
  it('sets tags, filters by tag and online, and refuses unknown devices and bad tags', () => {
    const devices = new DeviceRegistry(db, { fleet: FLEET, now: () => now });
    devices.handleMessage(topics.status('a-1'), Buffer.from(JSON.stringify(fullStatus('a-1'))));
    devices.handleMessage(topics.status('a-2'), Buffer.from(JSON.stringify(fullStatus('a-2'))));
    devices.handleMessage(topics.status('a-2'), Buffer.from(JSON.stringify(makeOfflineStatus('a-2'))));
    expect(devices.setTags('a-1', ['canary', 'orin']).tags).toEqual(['canary', 'orin']);
    devices.setTags('a-2', ['orin']);
    expect(devices.list({ tag: 'orin' }).map((d) => d.id)).toEqual(['a-1', 'a-2']);
    expect(devices.list({ tag: 'canary' }).map((d) => d.id)).toEqual(['a-1']);
    expect(devices.list({ tag: 'orin', online: false }).map((d) => d.id)).toEqual(['a-2']);
    expect(devices.list({ tag: 'nano' })).toEqual([]);
    expect(devices.setTags('a-1', []).tags).toEqual([]);
    expect(devices.list({ tag: 'canary' })).toEqual([]);
    expect(() => devices.setTags('ghost', ['x'])).toThrow(FleetError);
    expect(() => devices.setTags('ghost', ['x'])).toThrow(expect.objectContaining({ code: 'FLEET_DEVICE_NOT_FOUND' }));
    expect(() => devices.setTags('a-1', ['has space'])).toThrow(/tags\[0\]/);
    expect(() => devices.setTags('a-1', [''])).toThrow(RangeError);
    expect(devices.get('a-2')?.tags).toEqual(['orin']); // a refused change leaves the old tags
    expect(() => devices.latencyHistory('a-1', 0)).toThrow(RangeError);
    expect(() => new DeviceRegistry(db, { fleet: FLEET, benchKeep: 0 })).toThrow(RangeError);
  });

  it('lists no service account that a database from before the check may hold', () => {
    const devices = new DeviceRegistry(db, { fleet: FLEET, now: () => now });
    devices.handleMessage(topics.status('a-1'), Buffer.from(JSON.stringify(fullStatus('a-1'))));
    // What kd-fleet stored when it still took kd-dashboard's status as a device's.
    db.prepare("INSERT INTO devices (id, fleet, online, first_seen, last_seen) VALUES ('kd-dashboard', ?, 1, 0, 0)").run(FLEET);
    db.prepare("INSERT INTO device_tags (device_id, tag) VALUES ('kd-dashboard', 'orin'), ('a-1', 'orin')").run();
    expect(devices.list({ includeRemoved: true }).map((d) => d.id)).toEqual(['a-1']);
    expect(devices.list({ tag: 'orin' }).map((d) => d.id)).toEqual(['a-1']);
    expect(devices.get('kd-dashboard', { includeRemoved: true })).toBeUndefined();
    expect(() => devices.setTags('kd-dashboard', ['x'])).toThrow(expect.objectContaining({ code: 'FLEET_DEVICE_NOT_FOUND' }));
  });
});
