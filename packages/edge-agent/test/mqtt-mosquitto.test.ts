import { once } from 'node:events';
import { existsSync } from 'node:fs';
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MqttSession, type MqttSessionOptions } from '../src/mqtt/session.js';
import { collect, MOSQUITTO, observer, startMosquitto, startRelay, waitFor, type MosquittoHarness } from './mqtt-brokers.js';

const ROOT = 'kd/v1/lab/devices';
const OFFLINE = '{"online":false}';

let broker: MosquittoHarness;
const cleanup: Array<() => Promise<unknown> | unknown> = [];

// Mosquitto is a system package (apt mosquitto); .ci/run installs it.
describe.skipIf(!existsSync(MOSQUITTO)).each([5, 4] as const)('MqttSession on Mosquitto, protocol %i', { timeout: 60_000 }, (version) => {
  const id = `dev-v${version}`;
  const STATUS = `${ROOT}/${id}/status`;
  const CMD = `${ROOT}/${id}/cmd`;
  const EVENTS = `${ROOT}/${id}/events`;

  beforeAll(async () => {
    // Anonymous clients may use kd/#, nothing else (a stand-in for the fleet's per-device ACL).
    broker = await startMosquitto({ acl: ['topic readwrite kd/#'] });
  });

  afterAll(async () => {
    await broker.close();
  });

  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  function session(url: string, extra: Partial<MqttSessionOptions> = {}): MqttSession {
    const s = new MqttSession({
      url,
      clientId: id,
      protocolVersion: version,
      sessionExpirySec: 300,
      backoff: { baseMs: 10, maxMs: 40 },
      will: { topic: STATUS, payload: OFFLINE },
      subscriptions: [CMD],
      ...extra,
    });
    s.on('error', () => {});
    cleanup.push(() => s.close({ timeoutMs: 200 }));
    return s;
  }

  async function watcher(topic: string): Promise<{ client: MqttClient; seen: ReturnType<typeof collect> }> {
    const client = await observer(broker.url, { protocolVersion: 5, clientId: `obs-${id}-${Math.random().toString(16).slice(2)}` });
    cleanup.push(() => client.endAsync(true));
    const seen = collect(client);
    await client.subscribeAsync(topic, { qos: 1 });
    return { client, seen };
  }

  it('receives commands, publishes events, and gets commands sent while it was away from its persistent session', async () => {
    const { client, seen } = await watcher(EVENTS);
    const first = session(broker.url);
    const connected = once(first, 'connect');
    await first.start();
    expect((await connected)[0]).toEqual({ sessionPresent: false, reconnect: false });
    expect(first.protocolVersion).toBe(version);
    await first.subscribe(CMD); // resolves once granted; the constructor's list is the same topic
    const got = once(first, 'message');
    await client.publishAsync(CMD, 'ping', { qos: 1 });
    expect((await got)[1].toString()).toBe('ping');
    expect(await first.publish(EVENTS, 'accepted', { qos: 1 })).toBe('sent');
    await waitFor('the event', () => seen.length === 1);
    expect(seen[0]!.payload).toBe('accepted');
    await first.close();

    // The session outlives the connection (MQTT 5: session expiry; 3.1.1: clean session off).
    await client.publishAsync(CMD, 'deploy-while-away', { qos: 1 });
    const second = session(broker.url, { subscriptions: [] });
    const messages: string[] = [];
    second.on('message', (_t, payload) => messages.push(payload.toString()));
    const back = once(second, 'connect');
    await second.start();
    expect((await back)[0]).toEqual({ sessionPresent: true, reconnect: false });
    await waitFor('the queued command', () => messages.length === 1);
    expect(messages).toEqual(['deploy-while-away']);
  });

  it('has Mosquitto publish the retained Last Will when the link dies, then reconnects', async () => {
    const relay = await startRelay(broker.port);
    cleanup.push(() => relay.close());
    const s = session(relay.url);
    await s.start();
    await once(s, 'connect');
    const { seen } = await watcher(STATUS);
    const back = once(s, 'connect');
    relay.cut();
    await waitFor('the Last Will', () => seen.length > 0);
    expect(seen[0]).toMatchObject({ topic: STATUS, payload: OFFLINE });
    expect((await back)[0]).toEqual({ sessionPresent: true, reconnect: true });
    // A late observer gets the Will as the retained status.
    const late = await watcher(STATUS);
    await waitFor('the retained Will', () => late.seen.length > 0);
    expect(late.seen[0]).toEqual({ topic: STATUS, payload: OFFLINE, retain: true });
  });

  it('reports a publish the broker ACL refuses', async () => {
    const s = session(broker.url, { subscriptions: [] });
    await s.start();
    await once(s, 'connect');
    if (version === 5) {
      // Only MQTT 5 has PUBACK reason codes; 3.1.1 brokers acknowledge and drop.
      await expect(s.publish('forbidden/x', 'no', { qos: 1 })).rejects.toMatchObject({ code: 'MQTT_PUBLISH_REJECTED' });
    } else {
      expect(await s.publish('forbidden/x', 'no', { qos: 1 })).toBe('sent');
    }
  });
});

describe.skipIf(!existsSync(MOSQUITTO))('MqttSession on Mosquitto, protocol auto', { timeout: 60_000 }, () => {
  it('stays on MQTT 5 when the broker speaks it', async () => {
    const mosquitto = await startMosquitto({ acl: ['topic readwrite kd/#'] });
    const warnings: string[] = [];
    const s = new MqttSession({
      url: mosquitto.url, clientId: 'dev-auto', protocolVersion: 'auto', backoff: { baseMs: 10, maxMs: 40 },
      logger: { debug: () => {}, info: () => {}, warn: (m) => warnings.push(m), error: () => {} },
    });
    try {
      const connected = once(s, 'connect');
      await s.start();
      await connected;
      expect(s.protocolVersion).toBe(5);
      expect(warnings).toEqual([]);
    } finally {
      await s.close({ timeoutMs: 200 });
      await mosquitto.close();
    }
  });
});
