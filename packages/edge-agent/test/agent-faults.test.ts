import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fleetTopics, generateKeyPair, makeCommand, seededRandom, verifyPackage, writeKeyPair, loadPublicKey, type EventMessage } from '@kd-edge/core';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../src/agent.js';
import { validateAgentConfig } from '../src/config/agent-config.js';
import { parseVersionKey } from '../src/store/version-key.js';
import { makeDetectorPackage, type DetectorPackage } from './fixtures/agent/detector-package.js';
import { AgentProcess } from './fixtures/agent/agent-process.js';
import { PackageOrigin } from './fixtures/agent/package-origin.js';
import { RestartableMosquitto } from './fixtures/agent/restartable-mosquitto.js';
import { freePort, observer, startAedes, waitFor } from './mqtt-brokers.js';

const FLEET = 'lab';
const topics = fleetTopics(FLEET);

let root: string;
let keyFile: string;
let privateKey: string;
const pkgs: DetectorPackage[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-agent-faults-'));
  await chmod(root, 0o755); // Mosquitto, started as root, reads its files as user mosquitto
  const pair = generateKeyPair();
  privateKey = pair.privateKeyPem;
  keyFile = join(root, 'fleet.pub');
  await writeKeyPair(pair, { privateKeyPath: join(root, 'fleet.key'), publicKeyPath: keyFile });
  for (const [i, v] of ['1.0.0', '1.1.0', '1.2.0', '1.3.0', '1.4.0', '1.5.0', '1.6.0'].entries()) {
    pkgs.push(await makeDetectorPackage(join(root, 'pkgs'), 'shapes', v, privateKey, 20 + i));
  }
}, 120_000);
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function collectEvents(client: MqttClient, device: string): EventMessage[] {
  const seen: EventMessage[] = [];
  client.on('message', (topic, payload) => {
    if (topic === topics.events(device)) seen.push(JSON.parse(payload.toString()) as EventMessage);
  });
  return seen;
}
const final = (events: EventMessage[], id: string) =>
  [...events].reverse().find((e) => e.commandId === id && ['succeeded', 'failed', 'rolled_back'].includes(e.state));

describe('kd-agent faults', () => {
  it('MQTT 5 with Mosquitto: a broker killed mid-download comes back empty, and the chunked download resumes and completes', async () => {
    // In memory only: a restart loses every session, as a crash would.
    const broker = new RestartableMosquitto(await freePort(), join(root, 'mosq-m5'));
    await broker.start();
    const url = broker.url;
    const origin = new PackageOrigin();
    await origin.start(url, FLEET, 5);
    origin.delayMs = 40;
    const fleet = await observer(url, { protocolVersion: 5, clientId: 'fleet-m5', reconnectPeriod: 200 });
    await fleet.subscribeAsync(topics.events('m5'), { qos: 1 });
    const events = collectEvents(fleet, 'm5');
    const agent = await Agent.start(validateAgentConfig({
      fleet: FLEET, deviceId: 'm5', dataDir: join(root, 'm5'), keys: [keyFile], runtime: { trtexec: false },
      broker: { url, protocolVersion: 5, reconnectMinMs: 100, reconnectMaxMs: 400 },
      benchmark: { warmup: 1, iterations: 3 }, limits: { chunkTimeoutMs: 600 },
    }));
    try {
      await agent.online;
      const p = pkgs[0]!;
      origin.add(p.tar, p.sha256);
      const cmd = makeCommand({ command: 'deploy', id: 'm5-1', deviceId: 'm5', package: { name: p.name, version: p.version, sha256: p.sha256, size: p.size, mqtt: { chunkSize: 4096 } }, manifest: p.manifest });
      await fleet.publishAsync(topics.cmd('m5'), JSON.stringify(cmd), { qos: 1 });
      const total = Math.ceil(p.size / 4096);
      await waitFor('a few chunks', () => origin.chunksSent >= 4, 30_000);
      await broker.kill();
      expect(origin.chunksSent).toBeLessThan(total);
      await new Promise((r) => setTimeout(r, 300));
      await broker.start();
      // the broker lost every session: the fleet side subscribes again, as kd-fleet does on reconnect
      await waitFor('fleet reconnected', () => fleet.connected, 10_000);
      await fleet.subscribeAsync(topics.events('m5'), { qos: 1 });
      await waitFor('deploy finished', () => final(events, 'm5-1') !== undefined || agent.active() !== undefined, 60_000);
      await agent.idle();
      expect(agent.active()?.manifest.version).toBe('1.0.0');
      expect(origin.chunksSent).toBeGreaterThanOrEqual(total);
    } finally {
      await agent.stop();
      await fleet.endAsync(true);
      await origin.stop();
      await broker.kill();
    }
  }, 120_000);

  it('a full disk is refused before any byte moves, and the serving model stays', async () => {
    const broker = await startAedes();
    const origin = new PackageOrigin();
    await origin.start(broker.url, FLEET);
    const fleet = await observer(broker.url);
    await fleet.subscribeAsync(topics.events('df'), { qos: 1 });
    const events = collectEvents(fleet, 'df');
    const base = {
      fleet: FLEET, deviceId: 'df', dataDir: join(root, 'df'), keys: [keyFile], runtime: { trtexec: false },
      broker: { url: broker.url, protocolVersion: 4 }, benchmark: { warmup: 1, iterations: 3 },
    };
    let agent = await Agent.start(validateAgentConfig(base));
    try {
      await agent.online;
      const send = async (p: DetectorPackage, id: string) => {
        const url = origin.add(p.tar, p.sha256);
        await fleet.publishAsync(topics.cmd('df'), JSON.stringify(makeCommand({ command: 'deploy', id, deviceId: 'df', package: { name: p.name, version: p.version, sha256: p.sha256, size: p.size, http: { url } }, manifest: p.manifest })), { qos: 1 });
        await waitFor(id, () => final(events, id) !== undefined, 60_000);
        return final(events, id)!;
      };
      expect((await send(pkgs[0]!, 'df-1')).state).toBe('succeeded');
      await agent.stop();
      // The disk is "full": the agent must keep more free than the file system has (a real tmpfs needs privileges CI may lack).
      agent = await Agent.start(validateAgentConfig({ ...base, limits: { reserveDiskBytes: Number.MAX_SAFE_INTEGER } }));
      await agent.online;
      const before = origin.httpRequests;
      const refused = await send(pkgs[1]!, 'df-2');
      expect(refused.code).toBe('TRANSFER_DISK_FULL');
      expect(refused.message).toMatch(/free/);
      expect(origin.httpRequests).toBe(before);
      expect(agent.active()?.manifest.version).toBe('1.0.0');
    } finally {
      await agent.stop();
      await fleet.endAsync(true);
      await origin.stop();
      await broker.close();
    }
  }, 120_000);

  it('SIGKILL at random points of deploys: after each restart the device serves the old or the new model, complete, and the deploy finishes', async () => {
    const broker = await startAedes();
    const origin = new PackageOrigin();
    await origin.start(broker.url, FLEET);
    origin.delayMs = 15;
    const fleet = await observer(broker.url);
    await fleet.subscribeAsync([topics.events('sk'), topics.status('sk')], { qos: 1 });
    const events = collectEvents(fleet, 'sk');
    const dataDir = join(root, 'sk');
    const cfg = join(root, 'sk.yaml');
    await writeFile(cfg, [
      `fleet: ${FLEET}`, 'deviceId: sk', `dataDir: ${dataDir}`, `keys: [${keyFile}]`,
      'broker:', `  url: ${broker.url}`, '  protocolVersion: 4', '  reconnectMinMs: 100', '  reconnectMaxMs: 500',
      'runtime: { trtexec: false }', 'benchmark: { warmup: 1, iterations: 3 }', '',
    ].join('\n'));
    const child = new AgentProcess(cfg);
    let statusOnline = false;
    const startChild = async (): Promise<void> => {
      child.start();
      await waitFor('agent online', () => statusOnline, 60_000);
    };
    fleet.on('message', (topic, payload) => {
      if (topic === topics.status('sk') && payload.length > 0) statusOnline = (JSON.parse(payload.toString()) as { online: boolean }).online;
    });
    const kill = async (): Promise<void> => {
      await child.kill();
      statusOnline = false;
    };
    const trusted = [await loadPublicKey(keyFile)];
    const versionsOnDisk = async (): Promise<{ current: string | null; previous: string | null }> => {
      const text = await readFile(join(dataDir, 'store', 'state.json'), 'utf8').catch(() => '{"current":null,"previous":null}');
      const state = JSON.parse(text) as { current: string | null; previous: string | null };
      for (const key of [state.current, state.previous]) {
        if (key === null) continue;
        // complete and intact: every file's hash and the signature check out
        await verifyPackage(join(dataDir, 'store', 'versions', key), { trustedKeys: trusted });
      }
      return state;
    };
    const rand = seededRandom(11);
    try {
      await startChild();
      let active: string | null = null;
      for (let i = 0; i < 5; i++) {
        const p = pkgs[i + 1]!;
        const url = origin.add(p.tar, p.sha256);
        const id = `sk-${i}`;
        await fleet.publishAsync(topics.cmd('sk'), JSON.stringify(makeCommand({ command: 'deploy', id, deviceId: 'sk', package: { name: p.name, version: p.version, sha256: p.sha256, size: p.size, http: { url } }, manifest: p.manifest })), { qos: 1 });
        // kill somewhere between acceptance and well after the download
        await waitFor(`${id} accepted`, () => events.some((e) => e.commandId === id), 30_000);
        await new Promise((r) => setTimeout(r, Math.floor(rand() * 1500)));
        await kill();
        const state = await versionsOnDisk();
        const current = state.current === null ? null : parseVersionKey(state.current)!.version;
        expect([active, p.version]).toContain(current);
        await startChild();
        // the unfinished deploy is resumed from the ledger and completes
        await waitFor(`${id} final`, () => final(events, id) !== undefined, 90_000);
        expect(final(events, id)!.state, final(events, id)!.message).toBe('succeeded');
        active = p.version;
        expect((await versionsOnDisk()).current).toMatch(new RegExp(`@${p.version.replace(/\./g, '\\.')}-`));
      }
    } finally {
      await kill();
      await fleet.endAsync(true);
      await origin.stop();
      await broker.close();
    }
  }, 600_000);
});
