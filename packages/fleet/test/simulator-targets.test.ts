// Issue 17: a mixed fleet (an x86 device and a Jetson-like aarch64 one) gets one package with per-target files;
// each real kd-agent picks the file for its profile's architecture and the fleet API reports the one it serves.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair, writeKeyPair } from '@kd-edge/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceListEntry } from '../src/dashboard/api-types.js';
import { FleetServer } from '../src/server/fleet-server.js';
import { webHandlers } from '../src/server/web-handlers.js';
import { FleetSimulator } from '../src/simulator/fleet-simulator.js';
import { waitFor } from './simulator-helpers.js';
import { makeTargetsPackage, type TargetsPackage } from './targets-package.js';

const FLEET = 'mixed';
const X86 = 'mx-x86-001';
const NANO = 'mx-nano-001';
let root: string;
let server: FleetServer;
let sims: FleetSimulator[] = [];
let pkg: TargetsPackage;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-sim-targets-'));
  const key = generateKeyPair();
  const keyFile = join(root, 'fleet.pub');
  await writeKeyPair(key, { privateKeyPath: join(root, 'fleet.key'), publicKeyPath: keyFile });
  pkg = await makeTargetsPackage(join(root, 'pkgs', 'shapes-3.0.0'), 'shapes', '3.0.0', key.privateKeyPem);
  server = await FleetServer.start({
    dataDir: join(root, 'fleet'), fleet: FLEET, httpPort: 0, mqttPort: 0, wsPort: false,
    trustedKeys: [keyFile], signKey: join(root, 'fleet.key'), token: 't0ken', tickMs: 100,
    handlers: webHandlers(),
  });
  const common = { broker: server.mqttUrl, fleet: FLEET, keys: keyFile, root: join(root, 'devices'), devices: 1, idPrefix: 'mx', staggerMs: 0, iterations: 2, warmup: 1 };
  sims = [await FleetSimulator.start({ ...common, profile: 'x86' }), await FleetSimulator.start({ ...common, profile: 'nano' })];
  await waitFor('devices registered', () => server.context.devices.list({ online: true }).length === 2, 30_000);
  await server.context.pushPackage(pkg.tar);
}, 180_000);

afterAll(async () => {
  for (const s of sims) await s.stop();
  await server?.close();
  await rm(root, { recursive: true, force: true });
});

describe('a mixed simulated fleet serves each device the file of its architecture', () => {
  it('x86 serves U8S8, aarch64 serves S8S8, and GET /api/devices says which file, precision and runtime', async () => {
    const id = server.context.startRollout({ package: { name: 'shapes', version: '3.0.0' }, target: { deviceIds: [X86, NANO] }, waves: { canary: { count: 1 }, percents: [100] } });
    const rollout = () => server.context.rollouts.get(id)!;
    await waitFor('rollout ends', () => ['succeeded', 'failed', 'aborted', 'paused'].includes(rollout().state), 120_000);
    expect(rollout().state, rollout().reason ?? '').toBe('succeeded');
    // the agents' own pickTarget, with the profile's architecture whatever this host's
    expect(sims[0]!.agent(X86)!.active()!.target.reason).toMatch(/^int8 U8S8 for x86_64/);
    expect(sims[1]!.agent(NANO)!.active()!.target.reason).toMatch(/^int8 S8S8 for aarch64/);

    const served = (d: { activeModel: unknown } | undefined) => d?.activeModel as Record<string, unknown> | null | undefined;
    await waitFor('both statuses name the served file', () => [X86, NANO].every((d) => {
      const m = served(server.context.devices.get(d));
      return m?.version === '3.0.0' && m.file !== undefined;
    }), 30_000);
    // each simulated device reports its profile's arch and TensorRT (AgentOptions.targetFacts), not this host's
    expect(server.context.devices.get(NANO)!.status!.hardware).toMatchObject({ arch: 'aarch64', tensorrt: '8.2.1' });
    expect(server.context.devices.get(X86)!.status!.hardware).toMatchObject({ arch: 'x86_64', tensorrt: null });
    const res = await fetch(`${server.httpUrl}/api/devices`);
    const list = (await res.json()) as DeviceListEntry[];
    expect(res.status, JSON.stringify(list)).toBe(200);
    const byId = Object.fromEntries(list.map((d) => [d.id, served(d)]));
    expect(byId[X86]).toMatchObject({ name: 'shapes', version: '3.0.0', file: 'model.int8.u8s8.onnx', precision: 'int8', runtime: 'onnxruntime', serving: 'onnxruntime' });
    expect(byId[NANO]).toMatchObject({ name: 'shapes', version: '3.0.0', file: 'model.int8.onnx', precision: 'int8', runtime: 'onnxruntime', serving: 'onnxruntime' });
    // the same in the device's own record (GET /api/devices/:id)
    const one = (await (await fetch(`${server.httpUrl}/api/devices/${NANO}`)).json()) as { device: { activeModel: Record<string, unknown> } };
    expect(one.device.activeModel).toMatchObject({ file: 'model.int8.onnx', executionProvider: 'cpu' });
  }, 240_000);
});
