// The attacks of issue 11 against kd-agent, each from outside (real Mosquitto, real MQTT clients, kill -9), each a
// defect once: they stay here so they stay fixed.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fleetTopics, generateKeyPair, makeCommand, signCommand, writeKeyPair, type CommandFields, type EventMessage } from '@kd-edge/core';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../src/agent.js';
import { validateAgentConfig } from '../src/config/agent-config.js';
import { makeDetectorPackage, type DetectorPackage } from './fixtures/agent/detector-package.js';
import { PackageOrigin } from './fixtures/agent/package-origin.js';
import { MOSQUITTO, freePort, observer, startAedes, startMosquitto, waitFor } from './mqtt-brokers.js';

const FLEET = 'lab';
const topics = fleetTopics(FLEET);
const FINAL = new Set(['succeeded', 'failed', 'rolled_back']);

let root: string;
let keyFile: string;
let fleetKey: ReturnType<typeof generateKeyPair>;
const pkgs: Record<string, DetectorPackage> = {};

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-agent-attacks-'));
  await chmod(root, 0o755); // Mosquitto, started as root, works in its folder as user mosquitto
  fleetKey = generateKeyPair();
  keyFile = join(root, 'fleet.pub');
  await writeKeyPair(fleetKey, { privateKeyPath: join(root, 'fleet.key'), publicKeyPath: keyFile });
  const dir = join(root, 'pkgs');
  pkgs.s1 = await makeDetectorPackage(dir, 'shapes', '1.0.0', fleetKey.privateKeyPem, 31);
  pkgs.s11 = await makeDetectorPackage(dir, 'shapes', '1.1.0', fleetKey.privateKeyPem, 32);
  pkgs.s2 = await makeDetectorPackage(dir, 'shapes', '2.0.0', fleetKey.privateKeyPem, 33);
  pkgs.o1 = await makeDetectorPackage(dir, 'other', '1.0.0', fleetKey.privateKeyPem, 34);
}, 120_000);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A fleet stand-in: an MQTT 5 client that sends commands to one device and keeps its events. */
class Fleet {
  readonly events: EventMessage[] = [];
  private constructor(readonly client: MqttClient, readonly device: string) {}

  static async connect(url: string, device: string, protocolVersion: 4 | 5 = 5): Promise<Fleet> {
    const client = await observer(url, { protocolVersion, clientId: `fleet-${device}-${Math.random().toString(16).slice(2)}`, reconnectPeriod: 200 });
    const fleet = new Fleet(client, device);
    client.on('message', (topic, payload) => {
      if (topic === topics.events(device)) fleet.events.push(JSON.parse(payload.toString()) as EventMessage);
    });
    // Subscribed on every connection: the broker may come back without this client's session.
    client.on('connect', () => void client.subscribeAsync(topics.events(device), { qos: 1 }).catch(() => undefined));
    await client.subscribeAsync(topics.events(device), { qos: 1 });
    return fleet;
  }

  async send(fields: CommandFields | Record<string, unknown>, sign = false): Promise<void> {
    const cmd = makeCommand(fields as CommandFields);
    await this.sendRaw(JSON.stringify(sign ? signCommand(cmd, fleetKey.privateKeyPem) : cmd));
  }

  async sendRaw(payload: string): Promise<void> {
    await this.client.publishAsync(topics.cmd(this.device), payload, { qos: 1 });
  }

  final(id: string): EventMessage | undefined {
    return [...this.events].reverse().find((e) => e.commandId === id && FINAL.has(e.state) && e.repeat !== true);
  }

  async settle(id: string, timeoutMs = 60_000): Promise<EventMessage> {
    await waitFor(`final event of ${id}`, () => this.final(id) !== undefined, timeoutMs);
    return this.final(id)!;
  }

  close(): Promise<void> {
    return this.client.endAsync(true);
  }
}

function deployOf(device: string, p: DetectorPackage, id: string, where: { http: { url: string } } | { mqtt: { chunkSize: number } }, over: Record<string, unknown> = {}): CommandFields {
  return {
    command: 'deploy', id, deviceId: device,
    package: { name: p.name, version: p.version, sha256: p.sha256, size: p.size, ...where },
    manifest: p.manifest, ...over,
  } as CommandFields;
}

function agentConfig(device: string, url: string, over: Record<string, unknown> = {}) {
  return validateAgentConfig({
    fleet: FLEET, deviceId: device, dataDir: join(root, device), keys: [keyFile], runtime: { trtexec: false },
    broker: { url, reconnectMinMs: 50, reconnectMaxMs: 400 }, benchmark: { warmup: 1, iterations: 3 },
    limits: { chunkTimeoutMs: 500 }, ...over,
  });
}

/** Files under `dir` whose names mark them temporary (a write that never reached its rename). */
async function tempFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && /\.tmp($|-)/.test(e.name)) out.push(join(e.parentPath, e.name));
  }
  return out;
}

describe.skipIf(!existsMosquitto())('kd-agent under attack (Mosquitto, MQTT 5)', { timeout: 180_000 }, () => {
  it('1. anti-rollback holds per model name across other names, restarts and rollbacks (a persisted high-water mark)', async () => {
    const broker = await startMosquitto();
    const origin = new PackageOrigin();
    await origin.start(broker.url, FLEET, 5);
    const fleet = await Fleet.connect(broker.url, 'ar');
    const http = (p: DetectorPackage) => ({ http: { url: origin.add(p.tar, p.sha256) } });
    let agent = await Agent.start(agentConfig('ar', broker.url));
    try {
      await agent.online;
      await fleet.send(deployOf('ar', pkgs.s2!, 'ar-1', http(pkgs.s2!)));
      expect((await fleet.settle('ar-1')).state).toBe('succeeded');
      await fleet.send(deployOf('ar', pkgs.o1!, 'ar-2', http(pkgs.o1!)));
      expect((await fleet.settle('ar-2')).state).toBe('succeeded');
      // The attack: another name in between, then an older version of the first name, unsigned.
      await fleet.send(deployOf('ar', pkgs.s1!, 'ar-3', http(pkgs.s1!)));
      const refused = await fleet.settle('ar-3');
      expect(refused).toMatchObject({ state: 'failed', code: 'AGENT_DOWNGRADE_REFUSED' });
      expect(refused.message).toContain('older than shapes@2.0.0, the highest version of shapes active on this device');
      expect(agent.active()?.manifest.name).toBe('other');

      // The mark is on disk: a restarted agent refuses too, and a rollback to shapes@2.0.0 and back leaves it.
      await agent.stop();
      agent = await Agent.start(agentConfig('ar', broker.url));
      await agent.online;
      const state = JSON.parse(await readFile(join(root, 'ar', 'store', 'state.json'), 'utf8')) as { highWater: Record<string, { version: string }> };
      expect(state.highWater).toMatchObject({ shapes: { version: '2.0.0', sha256: pkgs.s2!.sha256 }, other: { version: '1.0.0' } });
      await fleet.send({ command: 'rollback', id: 'ar-4', deviceId: 'ar' });
      expect((await fleet.settle('ar-4')).state).toBe('rolled_back');
      await fleet.send(deployOf('ar', pkgs.s11!, 'ar-5', http(pkgs.s11!)));
      expect(await fleet.settle('ar-5')).toMatchObject({ state: 'failed', code: 'AGENT_DOWNGRADE_REFUSED' });
      // The same version as the mark with other bytes is refused; the same bytes are taken (already active here).
      await fleet.send(deployOf('ar', { ...pkgs.s11!, version: '2.0.0', manifest: { ...pkgs.s11!.manifest, version: '2.0.0' } }, 'ar-6', http(pkgs.s11!)));
      expect((await fleet.settle('ar-6')).message).toContain('the same version as shapes@2.0.0 once active here, with different contents');
      // Only a signed downgrade goes below the mark, and it does not lower it.
      await fleet.send(deployOf('ar', pkgs.s1!, 'ar-7', http(pkgs.s1!), { allowDowngrade: true }), true);
      expect((await fleet.settle('ar-7')).state).toBe('succeeded');
      expect(agent.active()?.manifest.version).toBe('1.0.0');
      expect(agent.store.highWater('shapes')).toEqual({ version: '2.0.0', sha256: pkgs.s2!.sha256 });
      await fleet.send(deployOf('ar', pkgs.s11!, 'ar-8', http(pkgs.s11!)));
      expect(await fleet.settle('ar-8')).toMatchObject({ state: 'failed', code: 'AGENT_DOWNGRADE_REFUSED' });
    } finally {
      await agent.stop();
      await fleet.close();
      await origin.stop();
      await broker.close();
    }
  });

  it('3. a broker killed with -9 restores a session snapshot without the chunk subscription: the agent subscribes again and the download completes', async () => {
    const port = await freePort();
    const dir = join(root, 'mosq-persist');
    await mkdir(dir, { recursive: true });
    await chmod(dir, 0o777); // written by Mosquitto as user mosquitto
    const conf = join(dir, 'mosquitto.conf');
    // Saves only on a clean exit: a SIGKILL brings back the last clean exit's snapshot, as autosave_interval would.
    await writeFile(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence true', `persistence_location ${dir}/`, 'autosave_interval 86400', ''].join('\n'));
    const url = `mqtt://127.0.0.1:${port}`;
    let child: ChildProcess | undefined;
    const up = async (): Promise<void> => {
      child = spawn(MOSQUITTO, ['-c', conf], { stdio: 'ignore' });
      for (let i = 0; ; i++) {
        const c = await observer(url, { connectTimeout: 300 }).catch(() => undefined);
        if (c) {
          await c.endAsync(true);
          return;
        }
        if (i > 100) throw new Error('mosquitto did not start');
        await delay(100);
      }
    };
    const down = async (signal: NodeJS.Signals): Promise<void> => {
      const exited = once(child!, 'exit');
      child!.kill(signal);
      await exited;
    };
    await up();
    const origin = new PackageOrigin();
    await origin.start(url, FLEET, 5);
    const fleet = await Fleet.connect(url, 'rs');
    const agent = await Agent.start(agentConfig('rs', url, { broker: { url, protocolVersion: 5, reconnectMinMs: 50, reconnectMaxMs: 300 } }));
    const connects: boolean[] = [];
    agent.session.on('connect', (info) => connects.push(info.sessionPresent));
    try {
      await agent.online;
      // A clean exit saves the agent's session with its command subscription only.
      await down('SIGTERM');
      await up();
      await waitFor('agent back on the restored session', () => connects.includes(true), 30_000);
      const p = pkgs.s1!;
      origin.add(p.tar, p.sha256);
      origin.delayMs = 30;
      await fleet.send(deployOf('rs', p, 'rs-1', { mqtt: { chunkSize: 4096 } }));
      await waitFor('a few chunks', () => origin.chunksSent >= 4, 30_000);
      // The crash: the snapshot comes back, session present, chunk subscription missing.
      await down('SIGKILL');
      const before = connects.length;
      await up();
      await waitFor('agent reconnected', () => connects.length > before, 30_000);
      expect(connects.at(-1)).toBe(true);
      expect(await fleet.settle('rs-1', 90_000)).toMatchObject({ state: 'succeeded' });
      expect(agent.active()?.manifest.version).toBe('1.0.0');
    } finally {
      await agent.stop();
      await fleet.close();
      await origin.stop();
      if (child?.exitCode === null) await down('SIGKILL');
    }
  });

  it('5 and 6. ids of the protocol\'s full 128 characters are answered; a deeply nested field is refused by name and leaves no temporary file', async () => {
    const broker = await startMosquitto();
    const fleet = await Fleet.connect(broker.url, 'id');
    await mkdir(join(root, 'id', 'commands'), { recursive: true });
    await writeFile(join(root, 'id', 'commands', 'stale.json.1234.lq2x.tmp'), ''); // a crash's leftover, from the older naming
    const agent = await Agent.start(agentConfig('id', broker.url));
    try {
      await agent.online;
      expect(await tempFiles(join(root, 'id'))).toEqual([]);
      for (const id of [`P${'i'.repeat(115)}`, `Q${'-'.repeat(126)}q`]) {
        await fleet.send({ command: 'ping', id, deviceId: 'id' });
        expect(await fleet.settle(id)).toMatchObject({ state: 'succeeded', result: { pong: true } });
        await fleet.send({ command: 'ping', id, deviceId: 'id' });
        await waitFor(`repeat of ${id.slice(0, 8)}…`, () => fleet.events.some((e) => e.commandId === id && e.repeat === true));
      }
      const ping = JSON.stringify(makeCommand({ command: 'ping', id: 'deep-1', deviceId: 'id' }));
      const deep = 200_000;
      await fleet.sendRaw(`${ping.slice(0, -1)},"extra":${'['.repeat(deep)}${']'.repeat(deep)}}`);
      const refused = await fleet.settle('deep-1');
      expect(refused).toMatchObject({ state: 'failed', code: 'PROTOCOL_JSON', command: 'ping' });
      expect(refused.message).toMatch(/nests more than the 64 levels allowed \(at extra\[0\]\[0\]\[0\]…/);
      await fleet.sendRaw('['.repeat(deep) + ']'.repeat(deep));
      await waitFor('top-level nesting refused', () => fleet.events.some((e) => e.commandId === null && e.code === 'PROTOCOL_JSON'));
      await fleet.send({ command: 'ping', id: 'after-deep', deviceId: 'id' });
      expect((await fleet.settle('after-deep')).state).toBe('succeeded');
      await agent.idle();
      expect(await tempFiles(join(root, 'id'))).toEqual([]);
      expect(fleet.events.filter((e) => e.code === 'AGENT_INTERNAL')).toEqual([]);
    } finally {
      await agent.stop();
      await fleet.close();
      await broker.close();
    }
  });
});

describe.each([
  ['Mosquitto', async () => {
    const m = await startMosquitto();
    return { url: m.url, close: () => m.close() };
  }],
  ['aedes', async () => {
    const a = await startAedes();
    return { url: a.url, close: () => a.close() };
  }],
] as const)('2. one command id fired N times at once runs once (%s)', { timeout: 180_000 }, (name, start) => {
  it.skipIf(name === 'Mosquitto' && !existsMosquitto())('twenty copies of a rollback, from one client and from two, roll back once', async () => {
    const broker = await start();
    const device = `dup-${name}`;
    const origin = new PackageOrigin();
    await origin.start(broker.url, FLEET);
    const fleet = await Fleet.connect(broker.url, device, 4);
    const second = await observer(broker.url, { clientId: `second-${device}` });
    const agent = await Agent.start(agentConfig(device, broker.url));
    try {
      await agent.online;
      for (const [i, p] of [pkgs.s1!, pkgs.s11!].entries()) {
        await fleet.send(deployOf(device, p, `d-${i}`, { http: { url: origin.add(p.tar, p.sha256) } }));
        expect((await fleet.settle(`d-${i}`)).state).toBe('succeeded');
      }
      for (const [round, id] of ['rb-1', 'rb-2'].entries()) {
        const payload = JSON.stringify(makeCommand({ command: 'rollback', id, deviceId: device }));
        // Round 1: twenty publishes from one client in one burst; round 2: ten from each of two clients.
        const senders = round === 0 ? [fleet.client] : [fleet.client, second];
        await Promise.all(Array.from({ length: 20 }, (_, k) => senders[k % senders.length]!.publishAsync(topics.cmd(device), payload, { qos: 1 })));
        await waitFor(`answers to ${id}`, () => fleet.events.filter((e) => e.commandId === id && (e.repeat === true || FINAL.has(e.state))).length >= 20);
        await agent.idle();
        const runs = fleet.events.filter((e) => e.commandId === id && e.repeat !== true);
        expect(runs.map((e) => e.state)).toEqual(['accepted', 'activating', 'rolled_back']);
        expect(fleet.events.filter((e) => e.commandId === id && e.repeat === true)).toHaveLength(19);
      }
      // Two rollbacks: 1.1.0 → 1.0.0 → 1.1.0; a rollback run twice per round would have ended elsewhere.
      expect(agent.active()?.manifest.version).toBe('1.1.0');
      expect(await tempFiles(join(root, device))).toEqual([]);
    } finally {
      await agent.stop();
      await second.endAsync(true);
      await fleet.close();
      await origin.stop();
      await broker.close();
    }
  });
});

function existsMosquitto(): boolean {
  return existsSync(MOSQUITTO);
}
