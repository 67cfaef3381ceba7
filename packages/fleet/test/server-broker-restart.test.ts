// kd-fleet against a real Mosquitto that crashes. The fleet keeps a persistent session (clean: false); a
// Mosquitto killed with SIGKILL comes back from its last saved snapshot, which may hold that session but not
// the subscriptions made after it was saved. The broker then answers CONNACK with session present = true,
// so mqtt.js does not subscribe again: kd-fleet must, on every connect, or it hears nothing more.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { chmod, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fleetTopics, generateKeyPair, makeChunkRequest, makeEvent, makeStatus, writeKeyPair } from '@kd-edge/core';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetServer } from '../src/server/fleet-server.js';
import { recordingLogger } from './http-helpers.js';
import { makeTestPackage } from './registry-helpers.js';
import { freePort, MOSQUITTO, waitFor } from './security-helpers.js';

const FLEET = 'lab';
const t = fleetTopics(FLEET);
/** FleetServer's MQTT client id (no use_username_as_clientid here: the broker keeps the client's own). */
const FLEET_CLIENT_ID = `kd-fleet-${FLEET}`;

/** A Mosquitto that saves its database only when it exits gracefully, so SIGKILL loses everything since. */
interface CrashableBroker {
  url: string;
  db: string;
  log(): string;
  start(): Promise<void>;
  /** SIGTERM: Mosquitto writes its database, then exits. */
  stop(): Promise<void>;
  /** SIGKILL: nothing is written. */
  kill(): Promise<void>;
}

async function crashableBroker(dir: string): Promise<CrashableBroker> {
  const port = await freePort();
  const data = join(dir, 'data');
  await mkdir(data, { recursive: true });
  // Mosquitto started as root writes its database after dropping to user mosquitto.
  await chmod(join(dir, '..'), 0o755);
  await chmod(dir, 0o755);
  await chmod(data, 0o777);
  const conf = join(dir, 'mosquitto.conf');
  await writeFile(conf, [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    'persistence true',
    `persistence_location ${data}/`,
    // Never on a timer or on changes: only a graceful exit writes the database.
    'autosave_interval 86400',
    'autosave_on_changes false',
    'log_dest stderr',
    'log_type all',
    'connection_messages true',
    '',
  ].join('\n'), { mode: 0o644 });
  let log = '';
  let child: ChildProcess | undefined;
  const end = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    child = undefined;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill(signal);
    await exited;
  };
  return {
    url: `mqtt://127.0.0.1:${port}`,
    db: join(data, 'mosquitto.db'),
    log: () => log,
    async start() {
      const from = log.length;
      const proc = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
      child = proc;
      proc.stderr!.on('data', (chunk: Buffer) => {
        log += chunk.toString();
      });
      await waitFor('mosquitto running', () => {
        if (proc.exitCode !== null) throw new Error(`mosquitto exited with ${proc.exitCode}:\n${log}`);
        return /mosquitto version \S+ running/.test(log.slice(from));
      }, 10_000);
    },
    stop: () => end('SIGTERM'),
    kill: () => end('SIGKILL'),
  };
}

/** How many times Mosquitto has logged a connection of `clientId`. */
function connectionsOf(log: string, clientId: string): number {
  return log.split('\n').filter((line) => line.includes('New client connected') && line.includes(` as ${clientId} `)).length;
}

describe('kd-fleet and a Mosquitto that crashes', { timeout: 60_000 }, () => {
  let root: string;
  let broker: CrashableBroker;
  let server: FleetServer;
  const logger = recordingLogger();
  const devices: MqttClient[] = [];
  const snapshot = (): string => join(root, 'snapshot.db');

  /** A device as agents connect: its id as client id; it publishes its retained status. */
  const reportStatus = async (deviceId: string): Promise<MqttClient> => {
    const client = await mqtt.connectAsync(broker.url, { clientId: deviceId, protocolVersion: 5, reconnectPeriod: 0 });
    devices.push(client);
    const status = makeStatus({ deviceId, online: true, agentVersion: '0.1.0', freeDiskMb: 100 });
    await client.publishAsync(t.status(deviceId), JSON.stringify(status), { qos: 1, retain: true });
    return client;
  };
  const logged = (level: string, pattern: RegExp): string[] =>
    logger.lines.filter((l) => l.level === level && pattern.test(l.message)).map((l) => l.message);

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'kd-fleet-broker-crash-'));
    broker = await crashableBroker(join(root, 'broker'));
    await broker.start();
    // The snapshot a crash will fall back to: the fleet's persistent session, saved before it subscribed to anything.
    const early = await mqtt.connectAsync(broker.url, {
      clientId: FLEET_CLIENT_ID, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 7 * 24 * 3600 }, reconnectPeriod: 0,
    });
    await early.endAsync();
    await broker.stop();
    await copyFile(broker.db, snapshot());
    await broker.start();

    const keys = generateKeyPair();
    await writeKeyPair(keys, { privateKeyPath: join(root, 'fleet.key'), publicKeyPath: join(root, 'fleet.pub') });
    server = await FleetServer.start({
      dataDir: join(root, 'fleet'), fleet: FLEET, httpPort: 0, broker: broker.url, trustedKeys: [join(root, 'fleet.pub')], logger,
    });
    // Its retained manifest is on the broker now, not in the snapshot.
    await server.context.pushPackage((await makeTestPackage(join(root, 'pkg'), 'pets', '1.0.0', keys.privateKeyPem, 4096)).tar);
    await reportStatus('dev-1');
    await waitFor('dev-1 in the device table', () => server.context.devices.get('dev-1') !== undefined);
  });

  afterAll(async () => {
    for (const d of devices) await d.endAsync(true).catch(() => undefined);
    await server?.close();
    await broker?.stop();
    if (process.env.KD_BROKER_LOG) process.stderr.write(broker?.log() ?? '');
    await rm(root, { recursive: true, force: true });
  });

  it('subscribes and publishes the manifests again when the broker comes back from a snapshot with its session but neither', async () => {
    const before = connectionsOf(broker.log(), FLEET_CLIENT_ID);
    await broker.kill();
    // What a crashed broker restores: its last save, from before the fleet subscribed.
    await copyFile(snapshot(), broker.db);
    await broker.start();
    await waitFor('kd-fleet reconnected', () => connectionsOf(broker.log(), FLEET_CLIENT_ID) > before, 20_000);

    // Retained, so it reaches the fleet whenever its subscription is made; never, without one.
    const dev = await reportStatus('dev-2');
    await waitFor('dev-2 in the device table', () => server.context.devices.get('dev-2') !== undefined, 10_000);
    // Device events are not retained: they flow too once the subscription is back.
    const events: string[] = [];
    server.context.devices.on('event', (e) => events.push(`${e.deviceId} ${e.state}`));
    await dev.publishAsync(t.events('dev-2'), JSON.stringify(makeEvent({ deviceId: 'dev-2', commandId: 'r1-dev-2', command: 'deploy', state: 'accepted' })), { qos: 1 });
    await waitFor('the event of dev-2', () => events.length > 0, 10_000);
    expect(events).toEqual(['dev-2 accepted']);
    // And chunk requests reach the chunk service (this one asks for a package the registry does not hold).
    const request = makeChunkRequest({ deviceId: 'dev-2', name: 'pets', version: '1.0.0', sha256: 'e'.repeat(64), chunkSize: 1024, indexes: [0] });
    await dev.publishAsync(t.chunkRequests('dev-2'), JSON.stringify(request), { qos: 1 });
    await waitFor('the chunk request at the chunk service', () => logged('debug', /chunk service: dev-2 asked for pets@1\.0\.0/).length > 0, 10_000);

    // The manifest the restored broker had lost is retained there again.
    const reader = await mqtt.connectAsync(broker.url, { clientId: 'manifest-reader', protocolVersion: 5, reconnectPeriod: 0 });
    devices.push(reader);
    const manifests: string[] = [];
    reader.on('message', (topic) => manifests.push(topic));
    await reader.subscribeAsync(t.filters.manifests, { qos: 1 });
    await waitFor('the manifest of pets@1.0.0', () => manifests.includes(t.manifest('pets', '1.0.0')), 10_000);

    expect(logged('warn', /lost its connection to the broker/)).toHaveLength(1);
    expect(logged('info', /connected to the broker again .*session present: true/)).toHaveLength(1);
  });

  it('keeps running while the broker is down, warns once per outage and per error, and picks up where it was when it is back', async () => {
    const lost = logged('warn', /lost its connection to the broker/).length;
    const from = logger.lines.length;
    const refusedLines = (): Array<{ level: string; message: string }> => logger.lines.slice(from).filter((l) => /ECONNREFUSED/.test(l.message));
    const before = connectionsOf(broker.log(), FLEET_CLIENT_ID);
    await broker.kill();
    // kd-fleet tries again once a second; each attempt is refused.
    await waitFor('three refused attempts', () => refusedLines().length >= 3, 20_000);
    expect(logged('warn', /lost its connection to the broker/)).toHaveLength(lost + 1);
    expect(refusedLines().map((l) => l.level)).toEqual(['warn', ...refusedLines().slice(1).map(() => 'debug')]);
    expect(refusedLines()[0]!.message).toMatch(/cannot reach the broker mqtt:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);

    await copyFile(snapshot(), broker.db);
    await broker.start();
    await waitFor('kd-fleet reconnected', () => connectionsOf(broker.log(), FLEET_CLIENT_ID) > before, 20_000);
    await reportStatus('dev-3');
    await waitFor('dev-3 in the device table', () => server.context.devices.get('dev-3') !== undefined, 10_000);
    expect(logged('info', /connected to the broker again .*session present: true/)).toHaveLength(2);
  });

  it('closes at once while the broker hangs', async () => {
    const lost = logged('warn', /lost its connection to the broker/).length;
    await broker.kill();
    // A broker that takes connections and never answers them: each attempt waits out mqtt.js's 30 s connect
    // timeout, and so would every unsubscribe close() asked for while one is pending.
    const held = new Set<Socket>();
    const hung = createServer((socket) => held.add(socket));
    hung.listen(Number(new URL(broker.url).port), '127.0.0.1');
    await once(hung, 'listening');
    try {
      await waitFor('kd-fleet noticed', () => logged('warn', /lost its connection to the broker/).length > lost, 20_000);
      await waitFor('a connection attempt to the hung broker', () => held.size > 0, 20_000);
      const from = logger.lines.length;
      const started = Date.now();
      await server.close();
      expect(Date.now() - started).toBeLessThan(5_000);
      // Closing is not an outage: no warning about the broker.
      expect(logger.lines.slice(from).filter((l) => l.level !== 'debug')).toEqual([]);
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => hung.close(resolve));
    }
  });
});
