import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fleetTopics, generateKeyPair, makeCommand, writeKeyPair, type CommandFields, type EventMessage } from '@kd-edge/core';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../src/agent.js';
import { validateAgentConfig } from '../src/config/agent-config.js';
import { makeDetectorPackage, type DetectorPackage } from './fixtures/agent/detector-package.js';
import { PackageOrigin } from './fixtures/agent/package-origin.js';
import { observer, startAedes, waitFor, type AedesHarness } from './mqtt-brokers.js';

// Teacher packages (issue 16) and the version rule for adapted versions, with a real agent on aedes.
const FLEET = 'lab';
const DEVICE = 'cam-02';
const topics = fleetTopics(FLEET);

let root: string;
let broker: AedesHarness;
let origin: PackageOrigin;
let fleet: MqttClient;
let agent: Agent;
let keyFile: string;
const pkgs: Record<string, DetectorPackage> = {};
const events: EventMessage[] = [];

const config = () => validateAgentConfig({
  fleet: FLEET, deviceId: DEVICE, dataDir: join(root, 'agent'), keys: [keyFile],
  broker: { url: broker.url, reconnectMinMs: 50, reconnectMaxMs: 500 },
  runtime: { trtexec: false }, benchmark: { warmup: 1, iterations: 3 }, limits: { chunkTimeoutMs: 500 },
});

async function deploy(p: DetectorPackage, id: string): Promise<EventMessage> {
  const cmd = makeCommand({
    command: 'deploy', id, deviceId: DEVICE,
    package: { name: p.name, version: p.version, sha256: p.sha256, size: p.size, http: { url: origin.add(p.tar, p.sha256) } },
    manifest: p.manifest,
  } as CommandFields);
  await fleet.publishAsync(topics.cmd(DEVICE), JSON.stringify(cmd), { qos: 1 });
  const last = (): EventMessage | undefined => [...events].reverse().find((e) => e.commandId === id && ['succeeded', 'failed', 'rolled_back'].includes(e.state));
  await waitFor(`final event of ${id}`, () => last() !== undefined, 60_000);
  return last()!;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-agent-teacher-'));
  const fleetKey = generateKeyPair();
  keyFile = join(root, 'fleet.pub');
  await writeKeyPair(fleetKey, { privateKeyPath: join(root, 'fleet.key'), publicKeyPath: keyFile });
  const key = fleetKey.privateKeyPem;
  pkgs.model = await makeDetectorPackage(join(root, 'pkgs'), 'shapes', '1.0.0', key, 7);
  pkgs.teacher = await makeDetectorPackage(join(root, 'pkgs'), 'shapes-teacher', '1.0.0', key, 11, false, 0, { role: 'teacher' });
  pkgs.teacher2 = await makeDetectorPackage(join(root, 'pkgs'), 'shapes-teacher', '1.1.0', key, 12, false, 0, { role: 'teacher' });
  pkgs.foreignTeacher = await makeDetectorPackage(join(root, 'pkgs-other'), 'shapes-teacher', '2.0.0', generateKeyPair().privateKeyPem, 13, false, 0, { role: 'teacher' });
  pkgs.brokenTeacher = await makeDetectorPackage(join(root, 'pkgs'), 'shapes-teacher', '3.0.0', key, 14, false, 0, { role: 'teacher', modelBytes: Buffer.from('not an onnx model') });
  // A promoted adaptation (re-signed by the fleet) and the releases around it.
  pkgs.adapted = await makeDetectorPackage(join(root, 'pkgs'), 'shapes', '1.0.0+adapt.cam-02.1', key, 15);
  pkgs.sameVersionOtherBytes = await makeDetectorPackage(join(root, 'pkgs-b'), 'shapes', '1.0.0+adapt.cam-02.1', key, 16);
  pkgs.old = await makeDetectorPackage(join(root, 'pkgs'), 'shapes', '0.9.0', key, 17);
  broker = await startAedes();
  origin = new PackageOrigin();
  await origin.start(broker.url, FLEET);
  fleet = await observer(broker.url, { clientId: 'test-fleet-teacher' });
  await fleet.subscribeAsync(topics.events(DEVICE), { qos: 1 });
  fleet.on('message', (_topic, payload) => events.push(JSON.parse(payload.toString()) as EventMessage));
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

describe('kd-agent teacher packages', () => {
  it('installs a teacher in the teacher store without serving it, even with no model active', async () => {
    const done = await deploy(pkgs.teacher!, 't-1');
    expect(done.state, done.message).toBe('succeeded');
    expect(done.result).toMatchObject({ role: 'teacher', serving: false, version: '1.0.0' });
    expect(agent.active()).toBeUndefined();
    expect(agent.slot.current).toBeUndefined();
    expect(agent.store.list()).toEqual([]);
    expect(agent.teachers.current()?.info).toMatchObject({ name: 'shapes-teacher', version: '1.0.0', sha256: pkgs.teacher!.sha256 });
    // No benchmark of a teacher: its events end at activating → succeeded.
    expect(events.filter((e) => e.commandId === 't-1').map((e) => e.state)).not.toContain('benchmarking');
  });

  it('keeps a model serving while a newer teacher arrives, and the teacher store keeps the previous teacher', async () => {
    expect((await deploy(pkgs.model!, 'm-1')).state).toBe('succeeded');
    const done = await deploy(pkgs.teacher2!, 't-2');
    expect(done.state, done.message).toBe('succeeded');
    expect(agent.active()?.manifest.name).toBe('shapes');
    expect(agent.teachers.current()?.info.version).toBe('1.1.0');
    expect(agent.teachers.previous()?.info.version).toBe('1.0.0');
    expect(agent.store.list().map((v) => v.info.name)).toEqual(['shapes']);
  });

  it('refuses a teacher signed by an untrusted key and one whose model does not load, leaving the current teacher', async () => {
    const foreign = await deploy(pkgs.foreignTeacher!, 't-foreign');
    expect(foreign).toMatchObject({ state: 'failed', code: 'PACKAGE_KEY_UNTRUSTED' });
    const broken = await deploy(pkgs.brokenTeacher!, 't-broken');
    expect(broken).toMatchObject({ state: 'failed', code: 'AGENT_TEACHER_INVALID' });
    expect(broken.message).toContain('shapes-teacher@3.0.0');
    expect(agent.teachers.current()?.info.version).toBe('1.1.0');
    expect(agent.active()?.manifest.version).toBe('1.0.0');
  });

  it('treats an adapted version as distinct from its release, but still refuses other bytes under one version and older releases', async () => {
    const adapted = await deploy(pkgs.adapted!, 'a-1');
    expect(adapted.state, adapted.message).toBe('succeeded');
    expect(agent.active()?.manifest.version).toBe('1.0.0+adapt.cam-02.1');
    const swapped = await deploy(pkgs.sameVersionOtherBytes!, 'a-2');
    expect(swapped).toMatchObject({ state: 'failed', code: 'AGENT_DOWNGRADE_REFUSED' });
    // The fleet's release returns over the adaptation it came from.
    const back = await deploy(pkgs.model!, 'm-2');
    expect(back.state, back.message).toBe('succeeded');
    expect(agent.active()?.manifest.version).toBe('1.0.0');
    const old = await deploy(pkgs.old!, 'o-1');
    expect(old).toMatchObject({ state: 'failed', code: 'AGENT_DOWNGRADE_REFUSED' });
    expect(agent.active()?.manifest.version).toBe('1.0.0');
  });

  it('finds its teacher again after a restart', async () => {
    await agent.stop();
    agent = await Agent.start(config());
    await agent.online;
    expect(agent.teachers.current()?.info).toMatchObject({ name: 'shapes-teacher', version: '1.1.0', sha256: pkgs.teacher2!.sha256 });
    expect(agent.active()?.manifest.version).toBe('1.0.0');
  });
});
