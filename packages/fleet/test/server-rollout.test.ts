import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair, writeKeyPair } from '@kd-edge/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetServer } from '../src/server/fleet-server.js';
import { FleetSimulator } from '../src/simulator/fleet-simulator.js';
import { makeDetectorPackage, waitFor, type DetectorPackage } from './simulator-helpers.js';
import { freePort } from '../../edge-agent/test/mqtt-brokers.js';

const FLEET = 'srv';
let root: string;
let keyFile: string;
let signKeyFile: string;
let mqttPort: number;
let server: FleetServer;
let good: FleetSimulator;
let bad: FleetSimulator;
let v1: DetectorPackage;
let v2: DetectorPackage;
const sent: Array<{ deviceId: string; kind: string; server: number }> = [];
let generation = 0;

async function startServer(): Promise<FleetServer> {
  const s = await FleetServer.start({
    dataDir: join(root, 'fleet'), fleet: FLEET, httpPort: 0, mqttPort, wsPort: false,
    trustedKeys: [keyFile], signKey: signKeyFile, token: 't0ken', tickMs: 100,
  });
  const gen = ++generation;
  s.context.rollouts.on('command', (c) => sent.push({ deviceId: c.deviceId, kind: c.kind, server: gen }));
  return s;
}

const rollout = (id: string) => server.context.rollouts.get(id)!;
const execs = (id: string) => Object.fromEntries(server.context.rollouts.executions(id).map((e) => [e.deviceId, e]));

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-fleet-server-'));
  const key = generateKeyPair();
  keyFile = join(root, 'fleet.pub');
  signKeyFile = join(root, 'fleet.key');
  await writeKeyPair(key, { privateKeyPath: signKeyFile, publicKeyPath: keyFile });
  v1 = await makeDetectorPackage(join(root, 'pkgs'), 'shapes', '1.0.0', key.privateKeyPem, 7);
  v2 = await makeDetectorPackage(join(root, 'pkgs'), 'shapes', '1.1.0', key.privateKeyPem, 8);
  mqttPort = await freePort();
  server = await startServer();
  const common = { broker: server.mqttUrl, fleet: FLEET, keys: keyFile, root: join(root, 'devices'), profile: 'x86' as const, staggerMs: 5 };
  good = await FleetSimulator.start({ ...common, devices: 2, idPrefix: 'a' });
  bad = await FleetSimulator.start({ ...common, devices: 2, idPrefix: 'z', failRate: 1 });
  await waitFor('devices registered', () => server.context.devices.list({ online: true }).length === 4, 30_000);
  await server.context.pushPackage(v1.tar);
  await server.context.pushPackage(v2.tar);
}, 180_000);

afterAll(async () => {
  await good?.stop();
  await bad?.stop();
  await server?.close();
  await rm(root, { recursive: true, force: true });
});

describe('kd-fleet serve: rollouts over the embedded broker with real agents', () => {
  it('carries a rollout on across a restart of kd-fleet, sending nothing twice to a device that answered', async () => {
    const id = server.context.startRollout({
      package: { name: 'shapes', version: '1.0.0' }, target: { deviceIds: ['a-x86-001', 'a-x86-002'] },
      waves: { canary: { count: 1 }, percents: [100] }, approval: 'manual',
    });
    await waitFor('canary done, waiting for approval', () => rollout(id).state === 'awaiting_approval', 60_000);
    expect(execs(id)['a-x86-001']!.state).toBe('succeeded');
    expect(execs(id)['a-x86-002']!.state).toBe('queued');

    await server.close();
    server = await startServer();
    await waitFor('devices back', () => server.context.devices.list({ online: true }).length === 4, 60_000);
    expect(rollout(id).state).toBe('awaiting_approval');
    server.context.rollouts.approve(id);
    await waitFor('rollout done', () => rollout(id).state === 'succeeded', 60_000);
    expect(Object.values(execs(id)).map((e) => e.state)).toEqual(['succeeded', 'succeeded']);
    // one deploy per device in all: the canary's before the restart, the other's after
    expect(sent.filter((c) => c.kind === 'deploy')).toEqual([
      { deviceId: 'a-x86-001', kind: 'deploy', server: 1 },
      { deviceId: 'a-x86-002', kind: 'deploy', server: 2 },
    ]);
    expect(server.context.devices.get('a-x86-002')!.activeModel?.version).toBe('1.0.0');
  }, 180_000);

  it('aborts when a wave fails past the error threshold, and rolls the canary back', async () => {
    const id = server.context.startRollout({
      package: { name: 'shapes', version: '1.1.0' }, target: { deviceIds: ['a-x86-001', 'z-x86-001', 'z-x86-002'] },
      waves: { canary: { count: 1 }, percents: [100] }, errorThreshold: 0.5,
    });
    await waitFor('aborted', () => rollout(id).state === 'aborted', 90_000);
    const e = execs(id);
    expect(e['z-x86-001']!.code).toBe('AGENT_INJECTED_FAULT');
    // the abort sent the canary a rollback; its agent answers rolled_back
    await waitFor('canary rolled back', () => execs(id)['a-x86-001']!.state === 'rolled_back', 30_000);
    // The abort rolls back every device that was sent the deploy and has not reported a failure yet. The
    // first wave failure can pass the threshold before the second device's failure arrives (a busy runner
    // does that), so that device may be sent a rollback too; it never activated 1.1.0 and stays as it was.
    const rolledBack = sent.filter((c) => c.kind === 'rollback').map((c) => c.deviceId);
    expect(rolledBack).toContain('a-x86-001');
    expect(new Set(rolledBack).size, 'one rollback per device').toBe(rolledBack.length);
    expect(rolledBack.filter((d) => d !== 'a-x86-001').every((d) => d === 'z-x86-001' || d === 'z-x86-002')).toBe(true);
    await waitFor('canary back on 1.0.0', () => server.context.devices.get('a-x86-001')!.activeModel?.version === '1.0.0', 30_000);
    // their injected failures left the wave's devices as they were
    for (const d of ['z-x86-001', 'z-x86-002']) expect(server.context.devices.get(d)!.activeModel, d).toBeNull();
    expect(rollout(id).reason).toBeTruthy();
  }, 180_000);
});
