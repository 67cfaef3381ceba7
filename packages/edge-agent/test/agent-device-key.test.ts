// The device key at the agent's edges (issue 16): reported in the retained status, kept across restarts, and never
// trusted for anything that arrives over MQTT, with a real embedded broker and a real agent.
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fleetTopics, generateKeyPair, makeCommand, signCommand, writeKeyPair, type CommandFields, type EventMessage, type StatusMessage } from '@kd-edge/core';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../src/agent.js';
import { validateAgentConfig } from '../src/config/agent-config.js';
import { makeDetectorPackage, type DetectorPackage } from './fixtures/agent/detector-package.js';
import { PackageOrigin } from './fixtures/agent/package-origin.js';
import { observer, startAedes, waitFor, type AedesHarness } from './mqtt-brokers.js';

const FLEET = 'lab';
const DEVICE = 'cam-07';
const topics = fleetTopics(FLEET);

let root: string;
let broker: AedesHarness;
let origin: PackageOrigin;
let fleet: MqttClient;
let agent: Agent | undefined;
let keyFile: string;
const events: EventMessage[] = [];
const statuses: StatusMessage[] = [];

function config(keys = [keyFile]) {
  return validateAgentConfig({
    fleet: FLEET, deviceId: DEVICE, dataDir: join(root, 'agent'), keys,
    broker: { url: broker.url, reconnectMinMs: 50, reconnectMaxMs: 500 },
    runtime: { trtexec: false },
    benchmark: { warmup: 1, iterations: 5 },
  });
}

function deployOf(p: DetectorPackage, id: string): CommandFields {
  return {
    command: 'deploy', id, deviceId: DEVICE,
    package: { name: p.name, version: p.version, sha256: p.sha256, size: p.size, http: { url: origin.add(p.tar, p.sha256) } },
    manifest: p.manifest,
  } as CommandFields;
}

async function send(cmd: object): Promise<void> {
  await fleet.publishAsync(topics.cmd(DEVICE), JSON.stringify(cmd), { qos: 1 });
}

async function settle(id: string): Promise<EventMessage> {
  const final = (): EventMessage | undefined => events.find((e) => e.commandId === id && ['succeeded', 'failed', 'rolled_back'].includes(e.state));
  await waitFor(`final event of ${id}`, () => final() !== undefined, 60_000);
  return final()!;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-agent-device-key-'));
  const fleetKey = generateKeyPair();
  keyFile = join(root, 'fleet.pub');
  await writeKeyPair(fleetKey, { privateKeyPath: join(root, 'fleet.key'), publicKeyPath: keyFile });
  broker = await startAedes();
  origin = new PackageOrigin();
  await origin.start(broker.url, FLEET);
  fleet = await observer(broker.url, { clientId: 'test-fleet' });
  await fleet.subscribeAsync([topics.events(DEVICE), topics.status(DEVICE)], { qos: 1 });
  fleet.on('message', (topic, payload) => {
    if (payload.length === 0) return;
    if (topic === topics.events(DEVICE)) events.push(JSON.parse(payload.toString()) as EventMessage);
    if (topic === topics.status(DEVICE)) statuses.push(JSON.parse(payload.toString()) as StatusMessage);
  });
  agent = await Agent.start(config());
  await agent.online;
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await fleet?.endAsync();
  await origin?.stop();
  await broker?.close();
  await rm(root, { recursive: true, force: true });
});

describe('the device key of kd-agent', () => {
  it('is reported in the retained status, as the key on disk', async () => {
    const key = agent!.deviceKey;
    await waitFor('an online status', () => statuses.some((s) => s.online));
    const status = statuses.findLast((s) => s.online)!;
    expect(status.deviceKey).toEqual({ keyId: key.keyId, publicKeyPem: key.publicKeyPem });
    expect(await readFile(join(root, 'agent', 'keys', 'device.pub'), 'utf8')).toBe(key.publicKeyPem);
    // Never the private half, anywhere in the message.
    expect(JSON.stringify(status)).not.toContain('PRIVATE KEY');
    // The device key is not among the keys deploys and commands are checked against.
    expect(agent!.trustedKeys.map((k) => k.export({ type: 'spki', format: 'pem' }).toString())).not.toContain(key.publicKeyPem);
  });

  it('refuses a deploy of a package signed with its own key exactly as one signed with any untrusted key', async () => {
    const own = await makeDetectorPackage(join(root, 'pkgs-own'), 'shapes', '2.0.0', agent!.deviceKey.privateKey, 11);
    const stranger = generateKeyPair();
    const foreign = await makeDetectorPackage(join(root, 'pkgs-foreign'), 'shapes', '2.1.0', stranger.privateKeyPem, 12);

    await send(makeCommand(deployOf(own, 'own-1')));
    const refused = await settle('own-1');
    await send(makeCommand(deployOf(foreign, 'foreign-1')));
    const untrusted = await settle('foreign-1');

    expect([refused.state, refused.code]).toEqual(['failed', 'PACKAGE_KEY_UNTRUSTED']);
    expect(refused.message).toBe(`the manifest is signed by key ${agent!.deviceKey.keyId}, which is not among the 1 trusted key(s)`);
    // Word for word the refusal of a stranger's key: nothing tells the device's own key apart.
    expect(untrusted.code).toBe(refused.code);
    expect(untrusted.message!.replace(stranger.keyId, '<key>')).toBe(refused.message!.replace(agent!.deviceKey.keyId, '<key>'));
    // Refused when its signature was checked, after the download, before anything was installed or loaded.
    expect([...new Set(events.filter((e) => e.commandId === 'own-1').map((e) => e.state))]).toEqual(['accepted', 'downloading', 'verifying', 'failed']);
    expect(agent!.active()).toBeUndefined();
    expect(agent!.store.list()).toEqual([]);
  });

  it('refuses a command signed with its own key as one signed by an unknown key', async () => {
    // A signed rollback: any command carrying a signature must verify against the pinned fleet keys.
    await send(signCommand(makeCommand({ command: 'rollback', id: 'own-sig-1', deviceId: DEVICE }), agent!.deviceKey.privateKey));
    const refused = await settle('own-sig-1');
    expect([refused.state, refused.code]).toEqual(['failed', 'PROTOCOL_SIGNATURE']);
    expect(refused.message).toContain(`key ${agent!.deviceKey.keyId} is not among the 1 trusted key(s)`);
  });

  it('keeps its key across restarts, and refuses to start when the configuration pins the device key itself', async () => {
    const before = agent!.deviceKey.keyId;
    await agent!.stop();
    agent = await Agent.start(config());
    await agent.online;
    expect(agent.deviceKey.keyId).toBe(before);
    expect(agent.deviceKey.created).toBe(false);
    await waitFor('a status after the restart', () => statuses.filter((s) => s.online).length >= 2);
    expect(statuses.findLast((s) => s.online)!.deviceKey?.keyId).toBe(before);
    await agent.stop();
    agent = undefined;

    // An operator who copies device.pub into `keys` would make the device trust its own packages from the network.
    const devicePub = join(root, 'agent', 'keys', 'device.pub');
    await expect(Agent.start(config([keyFile, devicePub]))).rejects.toMatchObject({
      code: 'AGENT_CONFIG_INVALID',
      message: expect.stringContaining(`keys: ${devicePub} is this device's own key ${before}`) as unknown,
    });
  }, 60_000);
});
