import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { decodeChunkFrame, fleetTopics, makeChunkRequest } from '@kd-edge/core';
import type Database from 'better-sqlite3';
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ChunkService, type ChunkServiceOptions } from '../src/artifacts/chunk-service.js';
import type { PackageRecord } from '../src/registry/package-record.js';
import { PackageRegistry } from '../src/registry/package-registry.js';
import { connect, ManualTimers, startBroker, waitFor, type TestBroker } from './devices-broker.js';
import { makeTestPackage, migratedDb, tempDir, testKeys } from './registry-helpers.js';

const FLEET = 'lab';
const topics = fleetTopics(FLEET);
const CHUNK = 8192;

let cleanup: () => Promise<void>;
let db: Database.Database;
let registry: PackageRegistry;
let pkg: PackageRecord;
let broker: TestBroker;
const open: Array<{ end(): unknown }> = [];

beforeAll(async () => {
  const t = await tempDir('kd-fleet-chunks-');
  cleanup = t.cleanup;
  db = migratedDb(t.dir);
  const { trusted } = testKeys();
  registry = new PackageRegistry(db, { dataDir: join(t.dir, 'data') });
  const built = await makeTestPackage(join(t.dir, 'src'), 'pets', '1.0.0+b.1', trusted.privateKeyPem, 100 * 1024);
  pkg = await registry.push(built.tar, { trustedKeys: [trusted.publicKeyPem] });
  broker = await startBroker();
});

afterEach(async () => {
  for (const c of open.splice(0)) await c.end();
});

afterAll(async () => {
  await broker.close();
  db.close();
  await cleanup();
});

async function service(options: Partial<ChunkServiceOptions> = {}): Promise<ChunkService> {
  const client = await connect(broker.url, { clientId: `fleet-${Math.random().toString(16).slice(2)}` });
  const svc = new ChunkService({ client, fleet: FLEET, source: registry, ...options });
  await svc.start();
  open.push({ end: async () => (await svc.stop(), await client.endAsync()) });
  return svc;
}

/** A device that subscribes to the package's chunks topic and reassembles the .tar from the frames it sees. */
async function device(id: string): Promise<{ client: MqttClient; ask(indexes: number[]): Promise<void>; received: Map<number, Buffer>; frames: () => number; assemble(): Buffer }> {
  const client = await connect(broker.url, { clientId: id });
  open.push({ end: () => client.endAsync() });
  const received = new Map<number, Buffer>();
  let frames = 0;
  client.on('message', (_t, payload) => {
    frames++;
    const { header, data } = decodeChunkFrame(payload);
    expect(header.sha256).toBe(pkg.sha256);
    expect(header.offset).toBe(header.index * CHUNK);
    received.set(header.index, Buffer.from(data));
  });
  await client.subscribeAsync(topics.chunks(pkg.name, pkg.version, id), { qos: 1 });
  return {
    client,
    received,
    frames: () => frames,
    async ask(indexes) {
      const req = makeChunkRequest({ deviceId: id, name: pkg.name, version: pkg.version, sha256: pkg.sha256, chunkSize: CHUNK, indexes });
      await client.publishAsync(topics.chunkRequests(id), JSON.stringify(req), { qos: 1 });
    },
    assemble: () => Buffer.concat([...received.entries()].sort((a, b) => a[0] - b[0]).map(([, b]) => b)),
  };
}

const count = (): number => Math.ceil(pkg.size / CHUNK);
const all = (): number[] => Array.from({ length: count() }, (_, i) => i);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('ChunkService over aedes', () => {
  it('answers chunk requests with frames a device reassembles into the package', async () => {
    const svc = await service({ coalesceMs: 0 });
    const dev = await device('jetson-01');
    const indexes = all();
    await dev.ask(indexes.slice(0, 5));
    await dev.ask(indexes.slice(5));
    await waitFor('every chunk', () => dev.received.size === count());
    expect(sha(dev.assemble())).toBe(pkg.sha256);
    const stats = svc.stats();
    expect(stats).toMatchObject({ requests: 2, invalid: 0, unknown: 0, indexes: count(), frames: count(), coalesced: 0 });
    expect(stats.bytes).toBeGreaterThan(pkg.size); // frames carry a header each
  });

  it('answers each device on its own topic, and a device asking twice within the window costs one frame', async () => {
    const timers = new ManualTimers();
    let now = 5_000;
    const svc = await service({ coalesceMs: 50, now: () => now, setTimeout: timers.setTimeout, clearTimeout: timers.clearTimeout });
    const devices = await Promise.all(['d-1', 'd-2', 'd-3'].map((id) => device(id)));
    await Promise.all(devices.map((d) => d.ask(all())));
    await devices[0]!.ask(all()); // a repeat from d-1 inside the window
    await waitFor('four requests', () => svc.stats().requests === 4);
    expect(svc.stats().frames).toBe(0); // held for the window
    now += 50;
    timers.fire();
    await waitFor('every device has every chunk', () => devices.every((d) => d.received.size === count()));
    for (const d of devices) expect(sha(d.assemble())).toBe(pkg.sha256);
    expect(svc.stats()).toMatchObject({ frames: 3 * count(), coalesced: count(), indexes: 4 * count() });
    // nobody received another device's frames, and d-1's repeat cost nothing: one frame per chunk each
    expect(devices.map((d) => d.frames())).toEqual([count(), count(), count()]);

    // After the window a new request is a new frame.
    await devices[0]!.ask([0]);
    await waitFor('the new request', () => svc.stats().requests === 5);
    now += 50;
    timers.fire();
    await waitFor('the new frame', () => svc.stats().frames === 3 * count() + 1);
  });

  it('keeps to the byte budget per second', async () => {
    const timers = new ManualTimers();
    let now = 1_000_000;
    const svc = await service({ coalesceMs: 0, bytesPerSecond: 3 * CHUNK, now: () => now, setTimeout: timers.setTimeout, clearTimeout: timers.clearTimeout });
    const dev = await device('jetson-02');
    await dev.ask(all());
    // A full bucket holds three chunks; then the service waits for the budget to refill.
    await waitFor('the first second', () => svc.stats().frames === 3 && timers.pending === 1);
    expect(svc.queued).toBe(count() - 3);
    now += Math.ceil(1000 / 3);
    timers.fire();
    await waitFor('one more chunk', () => svc.stats().frames === 4 && timers.pending === 1);
    now += 60_000;
    timers.fire();
    await waitFor('three more', () => svc.stats().frames === 7 && timers.pending === 1);
    expect(svc.queued).toBe(count() - 7);
  });

  it('counts bad, forged, unknown and out-of-range requests and never throws', async () => {
    const invalid: string[] = [];
    const svc = await service({ coalesceMs: 0, maxChunkBytes: 65536 });
    svc.on('invalid', (e) => invalid.push(e.reason));
    const req = (over: Record<string, unknown> = {}): Buffer =>
      Buffer.from(JSON.stringify({ ...makeChunkRequest({ deviceId: 'jetson-03', name: pkg.name, version: pkg.version, sha256: pkg.sha256, chunkSize: CHUNK, indexes: [0] }), ...over }));
    const topic = topics.chunkRequests('jetson-03');
    svc.handleMessage(topic, Buffer.from('not json'));
    svc.handleMessage(topic, req({ v: 2 }));
    svc.handleMessage(topic, req({ indexes: [1, 1] }));
    svc.handleMessage(topic, req({ deviceId: 'jetson-04' }));
    svc.handleMessage(topic, req({ chunkSize: 1 << 20 }));
    svc.handleMessage(`${topics.root}/devices/bad id/chunks/req`, req());
    expect(svc.stats().invalid).toBe(6);
    expect(invalid.some((r) => r.includes('jetson-04'))).toBe(true);
    svc.handleMessage(topic, req({ sha256: 'f'.repeat(64) }));
    svc.handleMessage(topic, req({ version: '9.9.9' }));
    expect(svc.stats().unknown).toBe(2);
    svc.handleMessage(topic, req({ indexes: [count(), count() + 5] }));
    expect(svc.stats()).toMatchObject({ outOfRange: 2, frames: 0 });
    svc.handleMessage(topics.status('jetson-03'), req()); // not a chunk request topic: ignored
    expect(svc.stats().requests).toBe(9);
    // It still serves after all that.
    const dev = await device('jetson-03');
    await dev.ask([count() - 1]);
    await waitFor('the last chunk', () => dev.received.size === 1);
    expect(dev.received.get(count() - 1)!.length).toBe(pkg.size - (count() - 1) * CHUNK);
  });

  it("refuses a request under a service account's name: nothing is queued for it", async () => {
    const invalid: string[] = [];
    const svc = await service({ coalesceMs: 0 });
    svc.on('invalid', (e) => invalid.push(e.reason));
    for (const id of ['kd-dashboard', 'kd-fleet']) {
      const req = makeChunkRequest({ deviceId: id, name: pkg.name, version: pkg.version, sha256: pkg.sha256, chunkSize: CHUNK, indexes: [0, 1] });
      svc.handleMessage(topics.chunkRequests(id), Buffer.from(JSON.stringify(req)));
    }
    expect(svc.stats()).toMatchObject({ requests: 2, invalid: 2, indexes: 0 });
    expect(svc.queued).toBe(0);
    expect(invalid).toEqual(['kd-dashboard is a service account, not a device', 'kd-fleet is a service account, not a device']);
  });

  it('drops requests past a full queue; the device asks again later', async () => {
    const timers = new ManualTimers();
    const svc = await service({ coalesceMs: 10, maxQueue: 4, setTimeout: timers.setTimeout, clearTimeout: timers.clearTimeout });
    svc.handleMessage(
      topics.chunkRequests('jetson-05'),
      Buffer.from(JSON.stringify(makeChunkRequest({ deviceId: 'jetson-05', name: pkg.name, version: pkg.version, sha256: pkg.sha256, chunkSize: CHUNK, indexes: all() }))),
    );
    expect(svc.queued).toBe(4);
    expect(svc.stats().dropped).toBe(count() - 4);
  });

  it('checks its options', () => {
    const client = { publish() {}, on() {}, off() {} } as unknown as ChunkServiceOptions['client'];
    expect(() => new ChunkService({ client, fleet: FLEET, source: {} as never })).toThrow(/source/);
    expect(() => new ChunkService({ client, fleet: FLEET, source: registry, bytesPerSecond: 0 })).toThrow(RangeError);
    expect(() => new ChunkService({ client, fleet: FLEET, source: registry, coalesceMs: -1 })).toThrow(RangeError);
    expect(() => new ChunkService({ client, fleet: 'no good', source: registry })).toThrow(RangeError);
  });
});
