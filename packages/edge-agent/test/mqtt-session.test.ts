import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { MqttClient } from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Outbox } from '../src/mqtt/outbox.js';
import { MqttSession, type MqttReconnectInfo, type MqttSessionOptions } from '../src/mqtt/session.js';
import { collect, freePort, observer, startAedes, waitFor, type AedesHarness } from './mqtt-brokers.js';

const ROOT = 'kd/v1/lab/devices/cam-01';
const STATUS = `${ROOT}/status`;
const CMD = `${ROOT}/cmd`;
const EVENTS = `${ROOT}/events`;
const OFFLINE = JSON.stringify({ v: 1, type: 'status', deviceId: 'cam-01', online: false });

let harness: AedesHarness | undefined;
let dir: string;
const cleanup: Array<() => Promise<unknown> | unknown> = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kd-session-'));
});

afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
  await harness?.close();
  harness = undefined;
  await rm(dir, { recursive: true, force: true });
}, 60_000);

function session(url: string, extra: Partial<MqttSessionOptions> = {}): MqttSession {
  const s = new MqttSession({
    url,
    clientId: 'cam-01',
    // aedes speaks MQTT 3.1.1 only; MQTT 5 is covered against Mosquitto.
    protocolVersion: 4,
    backoff: { baseMs: 10, maxMs: 40, factor: 2 },
    will: { topic: STATUS, payload: OFFLINE },
    subscriptions: [CMD],
    ...extra,
  });
  s.on('error', () => {});
  cleanup.push(() => s.close({ timeoutMs: 200 }));
  return s;
}

async function started(s: MqttSession): Promise<void> {
  const connected = once(s, 'connect');
  await s.start();
  await connected;
}

async function watch(url: string, topic: string): Promise<{ client: MqttClient; seen: ReturnType<typeof collect> }> {
  const client = await observer(url, { clientId: `observer-${Math.random().toString(16).slice(2)}` });
  cleanup.push(() => client.endAsync(true));
  const seen = collect(client);
  await client.subscribeAsync(topic, { qos: 1 });
  return { client, seen };
}

/** Payloads of client publishes the broker accepted on `topic`, in order (what an observer connected throughout would get). */
function brokerLog(h: AedesHarness, topic: string): string[] {
  const log: string[] = [];
  h.broker.on('publish', (packet, client) => {
    if (client && packet.topic === topic) log.push(packet.payload.toString());
  });
  return log;
}

describe('MqttSession on aedes', { timeout: 60_000 }, () => {
  it('connects, subscribes with QoS 1, receives commands and publishes acknowledged events', async () => {
    harness = await startAedes();
    const s = session(harness.url);
    const connects: unknown[] = [];
    s.on('connect', (info) => connects.push(info));
    const subscribed = once(harness.broker, 'subscribe');
    await started(s);
    const [subs] = (await subscribed) as [Array<{ topic: string; qos: number }>];
    expect(subs).toEqual([expect.objectContaining({ topic: CMD, qos: 1 })]);
    expect(connects).toEqual([{ sessionPresent: false, reconnect: false }]);
    expect(s.connected).toBe(true);

    const got = once(s, 'message');
    const client = await observer(harness.url);
    cleanup.push(() => client.endAsync(true));
    await client.publishAsync(CMD, '{"command":"ping"}', { qos: 1 });
    const [topic, payload, info] = (await got) as [string, Buffer, { qos: number; retain: boolean }];
    expect([topic, payload.toString(), info.qos, info.retain]).toEqual([CMD, '{"command":"ping"}', 1, false]);

    const events = brokerLog(harness, EVENTS);
    expect(await s.publish(EVENTS, Buffer.from('e1'), { qos: 1 })).toBe('sent');
    expect(events).toEqual(['e1']);
  });

  it('has the broker publish the Last Will when its socket dies, then reconnects to the kept session', async () => {
    harness = await startAedes();
    const s = session(harness.url);
    await started(s);
    const { seen } = await watch(harness.url, STATUS);
    const offline = once(s, 'offline');
    const reconnected = once(s, 'connect');
    harness.cut('cam-01');
    await waitFor('the Last Will', () => seen.length > 0);
    expect(seen[0]).toEqual({ topic: STATUS, payload: OFFLINE, retain: false });
    await offline;
    const [info] = await reconnected;
    expect(info).toEqual({ sessionPresent: true, reconnect: true });
  });

  it('keeps a retained status for observers that come later', async () => {
    harness = await startAedes();
    const s = session(harness.url);
    await started(s);
    const online = JSON.stringify({ v: 1, type: 'status', deviceId: 'cam-01', online: true });
    expect(await s.publish(STATUS, online, { qos: 1, retain: true })).toBe('sent');
    const { seen } = await watch(harness.url, STATUS);
    await waitFor('the retained status', () => seen.length > 0);
    expect(seen[0]).toEqual({ topic: STATUS, payload: online, retain: true });
  });

  it('receives a QoS 1 command sent while it was offline, from its persistent session', async () => {
    harness = await startAedes();
    const s = session(harness.url);
    const subscribed = once(harness.broker, 'subscribe');
    await started(s);
    await subscribed;
    const messages: string[] = [];
    s.on('message', (_topic, payload) => messages.push(payload.toString()));
    const offline = once(s, 'offline');
    await harness.down();
    await offline;
    expect(s.connected).toBe(false);
    await new Promise<void>((resolve, reject) =>
      harness!.broker.publish(
        { cmd: 'publish', topic: CMD, payload: Buffer.from('deploy-while-away'), qos: 1, retain: false, dup: false },
        (error) => (error ? reject(error) : resolve()),
      ),
    );
    const reconnected = once(s, 'connect');
    await harness.up();
    const [info] = await reconnected;
    expect(info).toMatchObject({ sessionPresent: true });
    await waitFor('the queued command', () => messages.length > 0);
    expect(messages).toEqual(['deploy-while-away']);
  });

  it('subscribes again when it reconnects to a broker that lost its session', async () => {
    harness = await startAedes();
    const port = harness.port;
    const s = session(harness.url);
    await started(s);
    await harness.close();
    harness = await startAedes(port);
    const subscribed = once(harness.broker, 'subscribe');
    const [info] = await once(s, 'connect');
    expect(info).toEqual({ sessionPresent: false, reconnect: true });
    await subscribed;
    const got = once(s, 'message');
    const client = await observer(harness.url);
    cleanup.push(() => client.endAsync(true));
    await client.publishAsync(CMD, 'after-restart', { qos: 1 });
    const [, payload] = await got;
    expect(payload.toString()).toBe('after-restart');
  });

  it('queues QoS 1 reports on disk while the broker is down and sends them in order once it is back', async () => {
    harness = await startAedes();
    const outbox = await Outbox.open(join(dir, 'outbox'), { fsync: false });
    const s = session(harness.url, { outbox });
    await started(s);
    const events = brokerLog(harness, EVENTS);
    await harness.down();
    const results = [];
    for (let i = 1; i <= 5; i++) results.push(await s.publish(EVENTS, `e${i}`, { qos: 1 }));
    expect(results).toEqual(['queued', 'queued', 'queued', 'queued', 'queued']);
    expect(await s.publish(`${ROOT}/detections`, 'd', { qos: 0 })).toBe('dropped');
    expect(outbox.size).toBe(5);

    await harness.up();
    await once(s, 'connect');
    // Published while the flush runs: it must come after the queued ones.
    expect(await s.publish(EVENTS, 'e6', { qos: 1 })).toBe('queued');
    await waitFor('the outbox to drain', () => events.length === 6);
    expect(events).toEqual(['e1', 'e2', 'e3', 'e4', 'e5', 'e6']);
    await waitFor('the files to go', () => outbox.size === 0);
    expect(await s.publish(EVENTS, 'e7', { qos: 1 })).toBe('sent');
  });

  it('moves a report whose PUBACK never came to the outbox when the link drops, and sends it after reconnecting', async () => {
    harness = await startAedes();
    const outbox = await Outbox.open(join(dir, 'outbox'), { fsync: false });
    const s = session(harness.url, { outbox });
    await started(s);
    const events = brokerLog(harness, EVENTS);
    // The broker sits on the first publish: no PUBACK, like a link that died mid-flight.
    let hold = true;
    let reached = false;
    harness.broker.authorizePublish = (_client, _packet, callback) => {
      reached = true;
      if (!hold) callback(null);
    };
    const pending = s.publish(EVENTS, 'in-flight', { qos: 1 });
    await waitFor('the publish to reach the broker', () => reached);
    hold = false;
    harness.cut();
    expect(await pending).toBe('queued');
    await waitFor('the resend', () => events.includes('in-flight'));
    await waitFor('the outbox to drain', () => outbox.size === 0);
    expect(events.filter((e) => e === 'in-flight')).toHaveLength(1);
  });

  it('retries with growing, jittered delays while no broker listens, and resets the ramp once connected', async () => {
    const port = await freePort();
    const s = session(`mqtt://127.0.0.1:${port}`, { backoff: { baseMs: 20, maxMs: 80, factor: 2 } });
    const retries: MqttReconnectInfo[] = [];
    s.on('reconnecting', (info) => retries.push(info));
    await s.start();
    await waitFor('four retries', () => retries.length >= 4);
    const ceilings = [20, 40, 80, 80];
    retries.slice(0, 4).forEach((r, i) => {
      expect(r.attempt).toBe(i + 1);
      expect(r.delayMs).toBeGreaterThanOrEqual(0);
      expect(r.delayMs).toBeLessThan(ceilings[i]!);
    });
    expect(retries[0]!.lastError).toMatchObject({ code: 'ECONNREFUSED' });
    harness = await startAedes(port);
    await once(s, 'connect');
    const before = retries.length;
    harness.cut();
    await waitFor('a retry after the cut', () => retries.length > before);
    expect(retries[before]!.attempt).toBe(1);
  });

  it('rejects subscribe() for a filter the broker refuses, and keeps the others', async () => {
    harness = await startAedes();
    harness.broker.authorizeSubscribe = (_client, sub, callback) => callback(null, sub.topic.startsWith('forbidden') ? null : sub);
    const s = session(harness.url);
    await started(s);
    await expect(s.subscribe(['forbidden/#', `${ROOT}/chunks`])).rejects.toMatchObject({ code: 'MQTT_SUBSCRIBE_REJECTED' });
    const got = once(s, 'message');
    const client = await observer(harness.url);
    cleanup.push(() => client.endAsync(true));
    await client.publishAsync(`${ROOT}/chunks`, 'c0', { qos: 1 });
    expect((await got)[1].toString()).toBe('c0');
  });

  it('closes with DISCONNECT (no Last Will) and refuses publishes afterwards', async () => {
    harness = await startAedes();
    const s = session(harness.url);
    await started(s);
    const { seen } = await watch(harness.url, STATUS);
    await s.close();
    await delay(50);
    expect(seen).toEqual([]);
    expect(s.connected).toBe(false);
    await expect(s.publish(EVENTS, 'late')).rejects.toMatchObject({ code: 'MQTT_CLOSED' });
  });
});

describe('MqttSession protocol version on a 3.1.1-only broker (aedes)', { timeout: 60_000 }, () => {
  it("'auto' asks for MQTT 5, falls back to 3.1.1 when refused, and works from there", async () => {
    harness = await startAedes();
    const versions: number[] = [];
    harness.broker.on('client', (c) => versions.push((c as unknown as { version: number }).version));
    const warnings: string[] = [];
    const s = session(harness.url, {
      protocolVersion: 'auto',
      logger: { debug: () => {}, info: () => {}, warn: (m) => warnings.push(m), error: () => {} },
    });
    expect(s.protocolVersion).toBe(5);
    await started(s);
    expect(s.protocolVersion).toBe(4);
    expect(versions).toEqual([4]);
    expect(warnings.join('\n')).toMatch(/refused MQTT 5; using MQTT 3\.1\.1/);
    const events = brokerLog(harness, EVENTS);
    expect(await s.publish(EVENTS, 'e1', { qos: 1 })).toBe('sent');
    await waitFor('the event at the broker', () => events.length > 0);
    expect(events).toEqual(['e1']);
    // a reconnect keeps 3.1.1 and finds the session
    const reconnected = once(s, 'connect');
    harness.cut('cam-01');
    expect((await reconnected)[0]).toEqual({ sessionPresent: true, reconnect: true });
    expect(versions).toEqual([4, 4]);
  });

  it('an explicit 5 is refused with an error that says what to set, and does not fall back', async () => {
    harness = await startAedes();
    const s = session(harness.url, { protocolVersion: 5 });
    const errors: Error[] = [];
    s.on('error', (e) => errors.push(e));
    await s.start();
    await waitFor('the refusal', () => errors.length > 0);
    expect(errors[0]).toMatchObject({ code: 'MQTT_CONNECT_REFUSED' });
    expect(errors[0]!.message).toMatch(/refused MQTT 5.*protocol version to 4 \(MQTT 3\.1\.1\) or 'auto'/);
    expect(s.connected).toBe(false);
    expect(s.protocolVersion).toBe(5);
  });
});
