// The shipped broker configuration beyond the ACL: TLS only, persistence across a restart, the client-certificate
// variant its comments describe, and the script that makes password entries.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fleetTopics, makeCommand } from '@kd-edge/core';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RESERVED_DEVICE_IDS } from '@kd-edge/core';
import { ADD_USER_SCRIPT, addBrokerUser, inbox, outcome, startShippedBroker, waitFor, type ShippedBroker } from './security-helpers.js';

const run = promisify(execFile);
const NOT_AUTHORIZED = 0x87;
const t = fleetTopics('lab');
const PASSWORDS: Record<string, string> = { 'dev-a': 'a-71c0e5d2', 'kd-fleet': 'fleet-0a9b8c7d' };

describe('security: the shipped Mosquitto config with passwords', { timeout: 20_000 }, () => {
  let broker: ShippedBroker;
  beforeAll(async () => {
    broker = await startShippedBroker(PASSWORDS);
  });
  afterAll(async () => {
    await broker?.close();
  });

  it('speaks only TLS: a plain MQTT client gets no CONNACK, one that does not trust the CA is refused', async () => {
    await expect(mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { username: 'dev-a', password: PASSWORDS['dev-a'], reconnectPeriod: 0, connectTimeout: 2000 }))
      .rejects.toThrow();
    await expect(mqtt.connectAsync(broker.url, { username: 'dev-a', password: PASSWORDS['dev-a'], reconnectPeriod: 0, connectTimeout: 2000 }))
      .rejects.toThrow(/self[- ]signed|unable to (get|verify)/i);
  });

  it('keeps a command queued for an offline device across a broker restart (persistence)', async () => {
    const session = { clean: false, properties: { sessionExpiryInterval: 3600 } };
    const first = await broker.connect('dev-a', PASSWORDS['dev-a'], session);
    await first.subscribeAsync(t.cmd('dev-a'), { qos: 1 });
    await first.endAsync();
    const fleet = await broker.connect('kd-fleet', PASSWORDS['kd-fleet']);
    const command = JSON.stringify(makeCommand({ command: 'ping', deviceId: 'dev-a' }));
    await fleet.publishAsync(t.cmd('dev-a'), command, { qos: 1 });
    await fleet.endAsync();

    await broker.restart();
    expect((await stat(join(broker.dir, 'data', 'mosquitto.db'))).size).toBeGreaterThan(0);
    const back = await broker.connectSession('dev-a', PASSWORDS['dev-a']!, session);
    expect(back.sessionPresent).toBe(true);
    const seen = inbox(back.client);
    await waitFor('the queued command after the restart', () => seen.some((m) => m.payload.toString() === command));
    await back.client.endAsync();
  });
});

describe('security: the shipped Mosquitto config with client certificates', { timeout: 20_000 }, () => {
  let broker: ShippedBroker;
  beforeAll(async () => {
    // The password file must exist even though this listener does not consult it.
    broker = await startShippedBroker({ 'kd-fleet': PASSWORDS['kd-fleet']! }, { clientCertificates: true, clientIds: ['dev-a', 'kd-fleet'] });
  });
  afterAll(async () => {
    await broker?.close();
  });

  it("takes the certificate's CN as the username, so the ACL applies to it without a password", async () => {
    const asCert = (id: string) => ({ cert: broker.pki.clients[id]!.cert, key: broker.pki.clients[id]!.key });
    const fleet = await broker.connect(undefined, undefined, { ...asCert('kd-fleet'), clientId: 'anything' });
    const fleetSaw = inbox(fleet);
    await fleet.subscribeAsync('kd/v1/#', { qos: 1 });
    // The MQTT username a client claims is ignored: the CN decides.
    const a = await broker.connect('dev-b', undefined, asCert('dev-a'));
    expect(await outcome(a.publishAsync(t.status('dev-b'), 'forged', { qos: 1 }))).toBe(NOT_AUTHORIZED);
    expect(await outcome(a.publishAsync(t.status('dev-a'), 'own status', { qos: 1 }))).toBe('ok');
    await waitFor('the status at the fleet', () => fleetSaw.some((m) => m.topic === t.status('dev-a')));
    expect(fleetSaw.map((m) => m.payload.toString())).toEqual(['own status']);
    await Promise.all([a.endAsync(), fleet.endAsync()]);
  });

  it('refuses a client without a certificate, password or not', async () => {
    await expect(broker.connect('kd-fleet', PASSWORDS['kd-fleet'])).rejects.toThrow();
  });
});

describe('security: scripts/add-broker-user.sh', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kd-broker-user-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates the file readable by the broker and prints a generated password when none is given', async () => {
    const file = join(dir, 'passwd');
    const { stdout } = await run('sh', [ADD_USER_SCRIPT, file, 'jetson-01']);
    expect(stdout.trim()).toMatch(/^[0-9a-f]{48}$/);
    expect(await addBrokerUser(file, 'kd-fleet', 'chosen', true)).toBe('chosen');
    const lines = (await readFile(file, 'utf8')).trim().split('\n');
    expect(lines.map((line) => line.split(':')[0])).toEqual(['jetson-01', 'kd-fleet']);
    expect(lines.every((line) => line.includes('$7$'))).toBe(true);
    expect((await stat(file)).mode & 0o044).toBe(0o044);
  });

  it("reserves exactly kd-fleet's RESERVED_DEVICE_IDS: each refused as a device id, accepted as a service user", async () => {
    const file = join(dir, 'reserved');
    for (const id of RESERVED_DEVICE_IDS) {
      await expect(run('sh', [ADD_USER_SCRIPT, file, id])).rejects.toMatchObject({ code: 2 });
      expect(await addBrokerUser(file, id, `pw-${id}`, true)).toBe(`pw-${id}`);
    }
    expect((await readFile(file, 'utf8')).trim().split('\n').map((line) => line.split(':')[0])).toEqual([...RESERVED_DEVICE_IDS]);
    // Any other service name is refused, so the script cannot reserve a name kd-fleet would take as a device.
    await expect(run('sh', [ADD_USER_SCRIPT, '--service', file, 'kd-monitor'])).rejects.toMatchObject({ code: 2 });
  });

  it.each([
    ['a device id with a topic separator', ['x/devices/y']],
    ['a device id with a wildcard', ['dev+1']],
    ['a reserved service name as a device', ['kd-fleet']],
    ['an unknown service user', ['--service', 'root']],
  ])('refuses %s', async (_what, args) => {
    const file = join(dir, 'refused');
    await expect(run('sh', [ADD_USER_SCRIPT, ...(args[0] === '--service' ? ['--service', file, args[1]!] : [file, args[0]!])]))
      .rejects.toMatchObject({ code: 2 });
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
