// The attacks of issue 11 against kd-agent, each from outside (real Mosquitto, real MQTT clients, kill -9), each a
// defect once: they stay here so they stay fixed.
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fleetTopics, generateKeyPair, makeCommand, writeKeyPair, type CommandFields } from '@kd-edge/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../src/agent.js';
import { CommandLedger } from '../src/commands/command-ledger.js';
import { ModelStore } from '../src/store/model-store.js';
import { validateAgentConfig } from '../src/config/agent-config.js';
import { makeDetectorPackage, type DetectorPackage } from './fixtures/agent/detector-package.js';
import { FleetStandIn } from './fixtures/agent/fleet-stand-in.js';
import { PackageOrigin } from './fixtures/agent/package-origin.js';
import { RestartableMosquitto } from './fixtures/agent/restartable-mosquitto.js';
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
    const fleet = await FleetStandIn.connect(broker.url, FLEET, 'ar');
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
      await fleet.send(deployOf('ar', pkgs.s1!, 'ar-7', http(pkgs.s1!), { allowDowngrade: true }), fleetKey.privateKeyPem);
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

  it('1b. the marked version signed again by another trusted key (a fleet promoting a device\'s adaptation) is taken; other contents stay refused', async () => {
    const broker = await startMosquitto();
    const origin = new PackageOrigin();
    await origin.start(broker.url, FLEET, 5);
    const fleet = await FleetStandIn.connect(broker.url, FLEET, 'rsg');
    const http = (p: DetectorPackage) => ({ http: { url: origin.add(p.tar, p.sha256) } });
    // The same model, files and manifest as s2, signed by a second key the device also trusts.
    const second = generateKeyPair();
    const secondFile = join(root, 'second.pub');
    await writeKeyPair(second, { privateKeyPath: join(root, 'second.key'), publicKeyPath: secondFile });
    const resigned = await makeDetectorPackage(join(root, 'pkgs-resigned'), 'shapes', '2.0.0', second.privateKeyPem, 33);
    expect(resigned.sha256).not.toBe(pkgs.s2!.sha256);
    const agent = await Agent.start(agentConfig('rsg', broker.url, { keys: [keyFile, secondFile] }));
    try {
      await agent.online;
      await fleet.send(deployOf('rsg', pkgs.s2!, 'rsg-1', http(pkgs.s2!)));
      expect((await fleet.settle('rsg-1')).state).toBe('succeeded');
      await fleet.send(deployOf('rsg', resigned, 'rsg-2', http(resigned)));
      expect((await fleet.settle('rsg-2')).state).toBe('succeeded');
      expect(agent.active()?.stored.info.sha256).toBe(resigned.sha256);
      expect(agent.store.highWater('shapes')).toEqual({ version: '2.0.0', sha256: resigned.sha256 });
      // Other contents under the marked version are still refused, signed by either key.
      const other = await makeDetectorPackage(join(root, 'pkgs-other'), 'shapes', '2.0.0', second.privateKeyPem, 35);
      await fleet.send(deployOf('rsg', other, 'rsg-3', http(other)));
      const refused = await fleet.settle('rsg-3');
      expect(refused).toMatchObject({ state: 'failed', code: 'AGENT_DOWNGRADE_REFUSED' });
      expect(refused.message).toContain('with different contents');
    } finally {
      await agent.stop();
      await fleet.close();
      await origin.stop();
      await broker.close();
    }
  });

  it('3. a broker killed with -9 restores a session snapshot without the chunk subscription: the agent subscribes again and the download completes', async () => {
    const broker = new RestartableMosquitto(await freePort(), join(root, 'mosq-persist'));
    const url = broker.url;
    await broker.start({ persistence: true });
    const origin = new PackageOrigin();
    await origin.start(url, FLEET, 5);
    const fleet = await FleetStandIn.connect(url, FLEET, 'rs');
    const agent = await Agent.start(agentConfig('rs', url, { broker: { url, protocolVersion: 5, reconnectMinMs: 50, reconnectMaxMs: 300 } }));
    const connects: boolean[] = [];
    agent.session.on('connect', (info) => connects.push(info.sessionPresent));
    try {
      await agent.online;
      // A clean exit saves the agent's session with its command subscription only.
      await broker.kill('SIGTERM');
      await broker.start({ persistence: true });
      await waitFor('agent back on the restored session', () => connects.includes(true), 30_000);
      const p = pkgs.s1!;
      origin.add(p.tar, p.sha256);
      origin.delayMs = 30;
      await fleet.send(deployOf('rs', p, 'rs-1', { mqtt: { chunkSize: 4096 } }));
      await waitFor('a few chunks', () => origin.chunksSent >= 4, 30_000);
      // The crash: the snapshot comes back, session present, chunk subscription missing.
      await broker.kill('SIGKILL');
      const before = connects.length;
      await broker.start({ persistence: true });
      await waitFor('agent reconnected', () => connects.length > before, 30_000);
      expect(connects.at(-1)).toBe(true);
      expect(await fleet.settle('rs-1', 90_000)).toMatchObject({ state: 'succeeded' });
      expect(agent.active()?.manifest.version).toBe('1.0.0');
    } finally {
      await agent.stop();
      await fleet.close();
      await origin.stop();
      await broker.kill();
    }
  });

  it('4. a trickling artifact server cannot wedge the agent: a ping is answered during the download, which ends at its deadline', async () => {
    const broker = await startMosquitto();
    const origin = new PackageOrigin();
    await origin.start(broker.url, FLEET, 5);
    const fleet = await FleetStandIn.connect(broker.url, FLEET, 'tr');
    // One byte every 200 ms on every connection; a stall is abandoned after 1 s and retried, until the 4 s deadline.
    for (let i = 0; i < 50; i++) origin.httpFaults.push({ kind: 'trickle', ms: 60_000 });
    const agent = await Agent.start(agentConfig('tr', broker.url, {
      limits: { downloadDeadlineSec: 4, downloadRateWindowSec: 1, downloadMinBytesPerSec: 1024, downloadRetryWindowSec: 60 },
    }));
    try {
      await agent.online;
      const p = pkgs.s1!;
      const url = origin.add(p.tar, p.sha256);
      await fleet.send(deployOf('tr', p, 'tr-1', { http: { url } }));
      await waitFor('downloading', () => fleet.events.some((e) => e.commandId === 'tr-1' && e.state === 'downloading'));
      await fleet.send({ command: 'ping', id: 'tr-ping', deviceId: 'tr' });
      expect(await fleet.settle('tr-ping')).toMatchObject({ state: 'succeeded', result: { pong: true } });
      const timedOut = await fleet.settle('tr-1', 30_000);
      // Answered while the download was still going on, not queued behind it.
      expect(fleet.events.indexOf(fleet.final('tr-ping')!)).toBeLessThan(fleet.events.indexOf(timedOut));
      expect(timedOut).toMatchObject({ state: 'failed', code: 'TRANSFER_TIMEOUT' });
      expect(timedOut.message).toMatch(/deadline of 4000 ms/);
      // The server recovers: the next deploy resumes from what the trickle delivered and completes.
      origin.httpFaults.length = 0;
      await fleet.send(deployOf('tr', p, 'tr-2', { http: { url } }));
      expect((await fleet.settle('tr-2')).state).toBe('succeeded');
    } finally {
      await agent.stop();
      await fleet.close();
      await origin.stop();
      await broker.close();
    }
  });

  it('5 and 6. ids of the protocol\'s full 128 characters are answered; a deeply nested field is refused by name and leaves no temporary file', async () => {
    const broker = await startMosquitto();
    const fleet = await FleetStandIn.connect(broker.url, FLEET, 'id');
    await mkdir(join(root, 'id', 'commands'), { recursive: true });
    await writeFile(join(root, 'id', 'commands', 'stale.json.1234.lq2x.tmp'), ''); // a crash's leftover, from the older naming
    // A crash during a download's sidecar write, and a partial download where earlier agents kept them.
    await mkdir(join(root, 'id', 'store', 'downloads'), { recursive: true });
    await writeFile(join(root, 'id', 'store', 'downloads', `.${'a'.repeat(64)}.tar.part.json.tmp-0123456789ab`), '{"u');
    await mkdir(join(root, 'id', 'downloads'), { recursive: true });
    await writeFile(join(root, 'id', 'downloads', `${'b'.repeat(64)}.tar.part`), 'partial');
    const agent = await Agent.start(agentConfig('id', broker.url));
    try {
      await agent.online;
      expect(await tempFiles(join(root, 'id'))).toEqual([]);
      expect(await readdir(join(root, 'id', 'store', 'downloads'))).toEqual([`${'b'.repeat(64)}.tar.part`]);
      expect(await readdir(join(root, 'id'))).not.toContain('downloads');
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

describe('kd-agent resuming a rollback cut short by kill -9', { timeout: 120_000 }, () => {
  it('a rollback whose pointer moved before the crash is reported done, not swapped back', async () => {
    const broker = await startAedes();
    const origin = new PackageOrigin();
    await origin.start(broker.url, FLEET);
    const fleet = await FleetStandIn.connect(broker.url, FLEET, 'rr', 4);
    let agent = await Agent.start(agentConfig('rr', broker.url));
    try {
      await agent.online;
      for (const [i, p] of [pkgs.s1!, pkgs.s11!].entries()) {
        await fleet.send(deployOf('rr', p, `rr-${i}`, { http: { url: origin.add(p.tar, p.sha256) } }));
        expect((await fleet.settle(`rr-${i}`)).state).toBe('succeeded');
      }
      await agent.stop();
      // What a crash leaves when it strikes between the pointer's move and the final event: the ledger's last word
      // on the rollback is 'activating' (naming the swap's target), and state.json already points at the target.
      const store = await ModelStore.open(join(root, 'rr', 'store'));
      const target = store.previous()!;
      const ledger = await CommandLedger.open(join(root, 'rr', 'commands'));
      const cmd = makeCommand({ command: 'rollback', id: 'rr-back', deviceId: 'rr' });
      await ledger.admit('rr-back', 'rollback', cmd);
      await ledger.record('rr-back', { state: 'accepted' });
      await ledger.record('rr-back', { state: 'activating', result: { key: target.key, from: '1.1.0' } });
      await store.rollback();

      agent = await Agent.start(agentConfig('rr', broker.url));
      await agent.online;
      expect(await fleet.settle('rr-back')).toMatchObject({ state: 'rolled_back', result: { version: '1.0.0', from: '1.1.0' } });
      await agent.idle();
      expect(agent.active()?.manifest.version).toBe('1.0.0');
      expect(agent.store.state().current).toBe(target.key);
    } finally {
      await agent.stop();
      await fleet.close();
      await origin.stop();
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
    const fleet = await FleetStandIn.connect(broker.url, FLEET, device, 4);
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
