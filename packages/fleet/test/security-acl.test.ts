// The shipped broker configuration (docker/mosquitto) on a real Mosquitto over TLS: who may connect, publish
// and read what. Refused publishes are visible as MQTT 5 PUBACK reason codes; "never delivered" is shown by a
// later message from the same sender arriving alone (Mosquitto delivers one sender's messages in order).
import { randomUUID } from 'node:crypto';
import { decodeChunkFrame, encodeChunkFrame, fleetTopics, makeCommand, makeEvent, makeStatus, parseMessage } from '@kd-edge/core';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inbox, outcome, startShippedBroker, waitFor, type ShippedBroker } from './security-helpers.js';

const NOT_AUTHORIZED = 0x87;
const MAX_PACKET_SIZE = 16 * 1024 * 1024 + 8 * 1024;

const t = fleetTopics('lab');
const PASSWORDS: Record<string, string> = {
  'dev-a': 'a-3f9c1e0b7d',
  'dev-b': 'b-8e2a4c6f10',
  'kd-fleet': 'fleet-5b7d9e1a',
  'kd-dashboard': 'dash-2c4e6a8b',
};

describe('security: the shipped Mosquitto config and ACL', { timeout: 20_000 }, () => {
  let broker: ShippedBroker;
  let fleet: MqttClient;
  let fleetSaw: Array<{ topic: string; payload: Buffer }>;

  const device = (id: string, extra = {}): Promise<MqttClient> => broker.connect(id, PASSWORDS[id], extra);
  const fleetHas = (payload: string): boolean => fleetSaw.some((m) => m.payload.toString() === payload);
  /** Publishes a marker on the device's own events; once the fleet has it, anything the device sent earlier has arrived too. */
  const flushToFleet = async (client: MqttClient, deviceId: string): Promise<void> => {
    const marker = `marker-${randomUUID()}`;
    await client.publishAsync(t.events(deviceId), marker, { qos: 1 });
    await waitFor('the marker at the fleet', () => fleetHas(marker));
  };
  const ping = (deviceId: string): string => JSON.stringify(makeCommand({ command: 'ping', deviceId }));

  beforeAll(async () => {
    broker = await startShippedBroker(PASSWORDS);
    fleet = await broker.connect('kd-fleet', PASSWORDS['kd-fleet']);
    fleetSaw = inbox(fleet);
    // No Local: the fleet does not need its own commands and chunks echoed back.
    await fleet.subscribeAsync('kd/v1/#', { qos: 1, nl: true });
  });

  afterAll(async () => {
    if (process.env.KD_SECURITY_LOG) process.stderr.write(broker?.log() ?? '');
    await broker?.close();
  });

  it('refuses anonymous clients, unknown users and wrong passwords at CONNECT', async () => {
    expect(await outcome(broker.connect(undefined))).toBe(NOT_AUTHORIZED);
    expect(await outcome(broker.connect('dev-c', 'anything'))).toBe(NOT_AUTHORIZED);
    expect(await outcome(broker.connect('dev-a', 'wrong'))).toBe(NOT_AUTHORIZED);
    // A device's password is its own: it does not open the fleet's account.
    expect(await outcome(broker.connect('kd-fleet', PASSWORDS['dev-a']))).toBe(NOT_AUTHORIZED);
  });

  it('lets a device publish each of its own reports, and the fleet receives them', async () => {
    const a = await device('dev-a');
    const sent = [t.status('dev-a'), t.events('dev-a'), t.bench('dev-a'), t.adapt('dev-a'), t.detections('dev-a'), t.chunkRequests('dev-a')];
    const tag = randomUUID();
    for (const topic of sent) {
      expect(await outcome(a.publishAsync(topic, `${tag} ${topic}`, { qos: 1, retain: topic === t.status('dev-a') }))).toBe('ok');
    }
    await waitFor('all six reports', () => sent.every((topic) => fleetHas(`${tag} ${topic}`)));
    await a.endAsync();
  });

  it("refuses a device publishing as another device, in this fleet or another, and nothing reaches the fleet", async () => {
    const a = await device('dev-a');
    const forged = `forged-${randomUUID()}`;
    for (const topic of [t.status('dev-b'), t.events('dev-b'), t.bench('dev-b'), t.adapt('dev-b'), t.chunkRequests('dev-b'), fleetTopics('prod').status('dev-b'), 'kd/v1/lab/fleet']) {
      expect(await outcome(a.publishAsync(topic, forged, { qos: 1 })), topic).toBe(NOT_AUTHORIZED);
    }
    await flushToFleet(a, 'dev-a');
    expect(fleetHas(forged)).toBe(false);
    await a.endAsync();
  });

  it('refuses a device publishing commands (to itself or another device) or model manifests and chunks', async () => {
    const a = await device('dev-a');
    const b = await device('dev-b');
    const bSaw = inbox(b);
    await b.subscribeAsync([t.cmd('dev-b'), 'kd/v1/lab/models/#'], { qos: 1 });
    const forged = `forged-${randomUUID()}`;
    for (const topic of [t.cmd('dev-a'), t.cmd('dev-b'), t.manifest('yolov5n-pets', '9.9.9'), t.chunks('yolov5n-pets', '9.9.9')]) {
      expect(await outcome(a.publishAsync(topic, forged, { qos: 1 })), topic).toBe(NOT_AUTHORIZED);
    }
    await flushToFleet(a, 'dev-a');
    expect(fleetHas(forged)).toBe(false);
    // b is still listening: a real command from the fleet reaches it, and it is the only thing that did.
    const real = ping('dev-b');
    await fleet.publishAsync(t.cmd('dev-b'), real, { qos: 1 });
    await waitFor('the fleet command at dev-b', () => bSaw.some((m) => m.payload.toString() === real));
    expect(bSaw.map((m) => m.payload.toString())).toEqual([real]);
    await Promise.all([a.endAsync(), b.endAsync()]);
  });

  it("does not deliver another device's commands or reports to a device, whatever it subscribes to", async () => {
    const a = await device('dev-a');
    const b = await device('dev-b');
    const aSaw = inbox(a);
    const bSaw = inbox(b);
    // Mosquitto 2.0 grants these subscriptions; the ACL is applied to each message instead.
    await a.subscribeAsync([t.cmd('dev-b'), 'kd/v1/+/devices/+/cmd', 'kd/v1/#'], { qos: 1 });
    await b.subscribeAsync(t.cmd('dev-b'), { qos: 1 });
    const forB = ping('dev-b');
    await fleet.publishAsync(t.cmd('dev-b'), forB, { qos: 1 });
    await b.publishAsync(t.status('dev-b'), JSON.stringify({ deviceId: 'dev-b', marker: randomUUID() }), { qos: 1 });
    await waitFor('the command at dev-b', () => bSaw.some((m) => m.payload.toString() === forB));
    await flushToFleet(b, 'dev-b');
    const forA = ping('dev-a');
    await fleet.publishAsync(t.cmd('dev-a'), forA, { qos: 1 });
    await waitFor('the command at dev-a', () => aSaw.some((m) => m.payload.toString() === forA));
    const deviceTopics = aSaw.map((m) => m.topic).filter((topic) => topic.includes('/devices/'));
    expect(new Set(deviceTopics)).toEqual(new Set([t.cmd('dev-a')]));
    await Promise.all([a.endAsync(), b.endAsync()]);
  });

  it('delivers a device its own commands, retained manifests and chunk frames', async () => {
    const name = 'yolov5n-pets';
    const version = '1.2.0+build.5';
    const manifest = JSON.stringify({ manifestVersion: 1, name, version, marker: randomUUID() });
    await fleet.publishAsync(t.manifest(name, version), manifest, { qos: 1, retain: true });
    const a = await device('dev-a');
    const aSaw = inbox(a);
    await a.subscribeAsync([t.cmd('dev-a'), t.manifest(name, version), t.chunks(name, version)], { qos: 1 });
    const command = ping('dev-a');
    const data = Buffer.alloc(256 * 1024, 7);
    const frame = encodeChunkFrame({ sha256: 'a'.repeat(64), index: 0, count: 1, offset: 0 }, data);
    await fleet.publishAsync(t.cmd('dev-a'), command, { qos: 1 });
    await fleet.publishAsync(t.chunks(name, version), frame, { qos: 1 });
    await waitFor('command, manifest and chunk', () => aSaw.length >= 3);
    const byTopic = new Map(aSaw.map((m) => [m.topic, m.payload]));
    expect(byTopic.get(t.manifest(name, version))?.toString()).toBe(manifest);
    expect(parseMessage('cmd', byTopic.get(t.cmd('dev-a'))!).deviceId).toBe('dev-a');
    expect(decodeChunkFrame(byTopic.get(t.chunks(name, version))!).data.equals(data)).toBe(true);
    await a.endAsync();
  });

  it('carries a frame of the largest chunk a deploy may ask for (16 MiB) and cuts off a client sending a bigger packet', async () => {
    const name = 'big-model';
    const version = '1.0.0';
    const a = await device('dev-a');
    const aSaw = inbox(a);
    await a.subscribeAsync(t.chunks(name, version), { qos: 1 });
    const data = Buffer.alloc(16 * 1024 * 1024, 1);
    const frame = encodeChunkFrame({ sha256: 'b'.repeat(64), index: 0, count: 1, offset: 0 }, data);
    expect(await outcome(fleet.publishAsync(t.chunks(name, version), frame, { qos: 1 }))).toBe('ok');
    await waitFor('the 16 MiB chunk', () => aSaw.length === 1, 10_000);
    expect(decodeChunkFrame(aSaw[0]!.payload).header.size).toBe(data.length);

    // max_packet_size: the broker drops the connection rather than take the packet.
    const b = await device('dev-b');
    // The cut shows up as a write error (ECONNRESET) as well as a close.
    b.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => b.once('close', () => resolve()));
    const tooBig = `too-big-${randomUUID()}`;
    b.publishAsync(t.events('dev-b'), Buffer.concat([Buffer.from(tooBig), Buffer.alloc(MAX_PACKET_SIZE)]), { qos: 1 }).catch(() => undefined);
    await closed;
    const again = await device('dev-b');
    await flushToFleet(again, 'dev-b');
    expect(fleetSaw.some((m) => m.payload.subarray(0, tooBig.length).toString() === tooBig)).toBe(false);
    await Promise.all([a.endAsync(), again.endAsync(), b.endAsync(true)]);
  });

  it("ties the client id to the username: a device using another device's client id neither disconnects it nor takes its queued commands", async () => {
    const session = { clean: false, properties: { sessionExpiryInterval: 600 } };
    const b = await device('dev-b', session);
    const bSaw = inbox(b);
    await b.subscribeAsync(t.cmd('dev-b'), { qos: 1 });

    // While dev-b is connected: without use_username_as_clientid this would disconnect it (session takeover).
    const impostor = await device('dev-a', { clientId: 'dev-b' });
    const live = ping('dev-b');
    await fleet.publishAsync(t.cmd('dev-b'), live, { qos: 1 });
    await waitFor('the command at the still-connected dev-b', () => bSaw.some((m) => m.payload.toString() === live));
    expect(b.connected).toBe(true);
    await impostor.endAsync();
    await b.endAsync();

    // While dev-b is offline: its command waits in its session; the impostor does not resume that session.
    const queued = ping('dev-b');
    await fleet.publishAsync(t.cmd('dev-b'), queued, { qos: 1 });
    const second = await broker.connectSession('dev-a', PASSWORDS['dev-a']!, { ...session, clientId: 'dev-b' });
    expect(second.sessionPresent).toBe(false);
    const impostorSaw = inbox(second.client);
    await second.client.subscribeAsync(t.cmd('dev-a'), { qos: 1 });
    const own = ping('dev-a');
    await fleet.publishAsync(t.cmd('dev-a'), own, { qos: 1 });
    await waitFor("the impostor's own command", () => impostorSaw.length > 0);
    expect(impostorSaw.map((m) => m.payload.toString())).toEqual([own]);
    await second.client.endAsync();

    const back = await broker.connectSession('dev-b', PASSWORDS['dev-b']!, session);
    expect(back.sessionPresent).toBe(true);
    const backSaw = inbox(back.client);
    await waitFor('the queued command at dev-b', () => backSaw.some((m) => m.payload.toString() === queued));
    await back.client.endAsync();
  });

  it('lets kd-fleet publish no device reports, and kd-dashboard only read reports', async () => {
    expect(await outcome(fleet.publishAsync(t.status('dev-a'), 'forged by the fleet', { qos: 1 }))).toBe(NOT_AUTHORIZED);
    const dashboard = await broker.connect('kd-dashboard', PASSWORDS['kd-dashboard']);
    const seen = inbox(dashboard);
    await dashboard.subscribeAsync('kd/v1/#', { qos: 1 });
    expect(await outcome(dashboard.publishAsync(t.cmd('dev-a'), ping('dev-a'), { qos: 1 }))).toBe(NOT_AUTHORIZED);
    expect(await outcome(dashboard.publishAsync(t.status('dev-a'), 'x', { qos: 1 }))).toBe(NOT_AUTHORIZED);
    // Commands can carry download credentials: the fleet's command is not shown to the dashboard, the report after it is.
    await fleet.publishAsync(t.cmd('dev-b'), ping('dev-b'), { qos: 1 });
    const b = await device('dev-b');
    const report = JSON.stringify({ marker: randomUUID() });
    await b.publishAsync(t.events('dev-b'), report, { qos: 1 });
    await waitFor('the report at the dashboard', () => seen.some((m) => m.payload.toString() === report));
    expect(seen.filter((m) => m.topic.endsWith('/cmd'))).toEqual([]);
    await Promise.all([b.endAsync(), dashboard.endAsync()]);
  });

  // The ACL's `pattern` lines apply to every user, service accounts included: without the deny lines in their
  // blocks, kd-dashboard and kd-fleet could each report as a device named after themselves.
  it.each(['kd-dashboard', 'kd-fleet'])('refuses %s reporting as a device under its own name, and nothing reaches a reader', async (service) => {
    // A service user can be connected once only (its username is its client id), so the fleet's connection is reused.
    const dashboard = await broker.connect('kd-dashboard', PASSWORDS['kd-dashboard']);
    const sender = service === 'kd-fleet' ? fleet : dashboard;
    // The other service reads: kd-fleet every report, kd-dashboard every status, event, bench and detections.
    const readerSaw = service === 'kd-fleet' ? inbox(dashboard) : fleetSaw;
    if (service === 'kd-fleet') await dashboard.subscribeAsync('kd/v1/#', { qos: 1 });
    const status = JSON.stringify(makeStatus({ deviceId: service, online: true, agentVersion: '0.1.0', freeDiskMb: 1 }));
    const event = JSON.stringify(makeEvent({ deviceId: service, commandId: 'c1', command: 'deploy', state: 'failed' }));
    const forged = `forged-${randomUUID()}`;
    const attempts: Array<[string, string]> = [
      [t.status(service), status], [t.events(service), event], [t.bench(service), forged], [t.detections(service), forged],
      [t.chunkRequests(service), forged], [fleetTopics('prod').status(service), status],
    ];
    for (const [topic, payload] of attempts) {
      expect(await outcome(sender.publishAsync(topic, payload, { qos: 1, retain: topic.endsWith('/status') })), topic).toBe(NOT_AUTHORIZED);
    }
    // Every refusal came back before this marker was sent: a forged message that got through would have reached the reader first.
    const a = await device('dev-a');
    const marker = `marker-${randomUUID()}`;
    await a.publishAsync(t.events('dev-a'), marker, { qos: 1 });
    await waitFor('the marker at the reader', () => readerSaw.some((m) => m.payload.toString() === marker));
    expect(readerSaw.map((m) => m.topic).filter((topic) => topic.includes(`/devices/${service}/`))).toEqual([]);
    await Promise.all([a.endAsync(), dashboard.endAsync()]);
  });

  it('gives kd-dashboard the retained manifests but no chunk frames, which devices still receive', async () => {
    const name = 'dash-model';
    const version = '2.0.0+build.1';
    const manifest = JSON.stringify({ manifestVersion: 1, name, version, marker: randomUUID() });
    await fleet.publishAsync(t.manifest(name, version), manifest, { qos: 1, retain: true });
    const dashboard = await broker.connect('kd-dashboard', PASSWORDS['kd-dashboard']);
    const seen = inbox(dashboard);
    await dashboard.subscribeAsync('kd/v1/#', { qos: 1 });
    const a = await device('dev-a');
    const aSaw = inbox(a);
    await a.subscribeAsync([t.chunks(name, version), t.chunks(name, version, 'dev-a')], { qos: 1 });
    const frame = encodeChunkFrame({ sha256: 'c'.repeat(64), index: 0, count: 1, offset: 0 }, Buffer.alloc(1024, 3));
    await fleet.publishAsync(t.chunks(name, version), frame, { qos: 1 });
    await fleet.publishAsync(t.chunks(name, version, 'dev-a'), frame, { qos: 1 });
    await waitFor('both frames at dev-a', () => aSaw.length === 2);
    const report = `report-${randomUUID()}`;
    await a.publishAsync(t.events('dev-a'), report, { qos: 1 });
    await waitFor('the report at the dashboard', () => seen.some((m) => m.payload.toString() === report));
    expect(seen.find((m) => m.topic === t.manifest(name, version))?.payload.toString()).toBe(manifest);
    expect(seen.map((m) => m.topic).filter((topic) => topic.includes('/chunks'))).toEqual([]);
    await Promise.all([a.endAsync(), dashboard.endAsync()]);
  });
});
