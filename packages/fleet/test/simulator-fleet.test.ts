import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair, writeKeyPair } from '@kd-edge/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimBench } from '../src/simulator/agent-pool.js';
import { FleetSimulator } from '../src/simulator/fleet-simulator.js';
import { HARDWARE_PROFILES } from '../src/simulator/hardware-profiles.js';
import {
  deployOf, finalOf, makeDetectorPackage, PackageOrigin, send, startBroker, waitFor, watch,
  type Broker, type DetectorPackage, type Watcher,
} from './simulator-helpers.js';

const FLEET = 'simlab';
const IDS = ['sim-nano-001', 'sim-orin-001', 'sim-x86-001', 'sim-nano-002', 'sim-orin-002'];

let root: string;
let keyFile: string;
let broker: Broker;
let origin: PackageOrigin;
let w: Watcher;
let sim: FleetSimulator | undefined;
let v1: DetectorPackage;
let v2: DetectorPackage;
const simBenches: SimBench[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-sim-fleet-'));
  const key = generateKeyPair();
  keyFile = join(root, 'fleet.pub');
  await writeKeyPair(key, { privateKeyPath: join(root, 'fleet.key'), publicKeyPath: keyFile });
  v1 = await makeDetectorPackage(join(root, 'pkgs'), 'shapes', '1.0.0', key.privateKeyPem, 7);
  v2 = await makeDetectorPackage(join(root, 'pkgs'), 'shapes', '1.1.0', key.privateKeyPem, 8);
  broker = await startBroker();
  origin = new PackageOrigin();
  await origin.start(broker.url, FLEET);
  w = await watch(broker.url, FLEET);
}, 60_000);

afterAll(async () => {
  await sim?.stop();
  await w?.close();
  await origin?.stop();
  await broker?.close();
  await rm(root, { recursive: true, force: true });
});

describe('FleetSimulator in one process on a real broker', () => {
  it('starts 5 agents that each announce a retained online status with their own id and profile facts', async () => {
    sim = await FleetSimulator.start({
      devices: 5, profile: 'mix', broker: url(), fleet: FLEET, keys: keyFile, root: join(root, 'devices'),
      killable: true, staggerMs: 5, seed: 42,
    });
    sim.on('bench', (b) => simBenches.push(b));
    expect(sim.devices.map((d) => d.deviceId)).toEqual(IDS);
    expect([...sim.online].sort()).toEqual([...IDS].sort());
    expect(sim.processIds).toEqual([]);
    // a client that connects now gets them as retained messages
    const late = await watch(broker.url, FLEET);
    try {
      await waitFor('5 retained statuses', () => late.status.size === 5);
      for (const id of IDS) expect(late.status.get(id)).toMatchObject({ deviceId: id, online: true });
      const hw = (id: string) => late.status.get(id)!.hardware as { jetson: { model: string; l4t?: string } | null; ort: unknown };
      expect(hw('sim-nano-001').jetson).toEqual({ model: 'NVIDIA Jetson Nano Developer Kit (simulated)', l4t: '32.7.1' });
      expect(hw('sim-orin-002').jetson).toEqual({ model: 'NVIDIA Jetson Orin Nano Developer Kit (simulated)', l4t: '36.3.0' });
      expect(hw('sim-x86-001').jetson).toBeNull();
      expect(hw('sim-x86-001').ort).toBeDefined();
    } finally {
      await late.close();
    }
  });

  it('deploys a signed package to all and reports benchmarks scaled per profile', async () => {
    for (const id of IDS) await send(w.client, FLEET, deployOf(v1, origin, id, `d1-${id}`));
    await waitFor('5 deploy outcomes', () => IDS.every((id) => finalOf(w, `d1-${id}`) !== undefined), 60_000);
    for (const id of IDS) expect(finalOf(w, `d1-${id}`), id).toMatchObject({ state: 'succeeded' });
    await waitFor('5 bench reports', () => IDS.every((id) => w.benches.some((b) => b.commandId === `d1-${id}`)));
    for (const id of IDS) {
      const onWire = w.benches.find((b) => b.commandId === `d1-${id}`)! as { latencyMs: Record<string, number>; throughputFps: number; tegrastats?: { powerMw: Record<string, number> } };
      const sb = simBenches.find((b) => b.deviceId === id && b.measured.commandId === `d1-${id}`)!;
      // the fleet sees exactly what the profile made of the local measurement
      expect(onWire.latencyMs).toEqual(sb.reported.latencyMs);
      const profile = HARDWARE_PROFILES[sb.profile];
      expect(Math.abs(sb.factor - profile.latencyFactor)).toBeLessThanOrEqual(profile.latencyFactor * profile.jitter + 1e-9);
      for (const k of ['p50', 'p95', 'mean', 'max'] as const) {
        expect(onWire.latencyMs[k]).toBeCloseTo(sb.measured.latencyMs[k] * sb.factor, 2);
      }
      expect(onWire.throughputFps).toBeCloseTo(sb.measured.throughputFps / sb.factor, 2);
      if (sb.profile === 'x86') {
        expect(sb.reported).toEqual(sb.measured);
        expect(onWire.tegrastats).toBeUndefined();
      } else {
        expect(Object.keys(onWire.tegrastats!.powerMw)[0]).toBe(sb.profile === 'nano' ? 'POM_5V_IN' : 'VDD_IN');
      }
    }
    // nano is about 4× this machine, orin about 0.6×: their factors are 6–7 apart whatever the measured latency
    const f = (id: string) => simBenches.find((b) => b.deviceId === id)!.factor;
    expect(f('sim-nano-001') / f('sim-orin-001')).toBeGreaterThan(5);
  });

  it('kill cuts a device without a clean offline (its last will says offline); restart brings it back with its model', async () => {
    const id = 'sim-orin-002';
    const before = w.statuses.length;
    const killedAt = Date.now();
    await sim!.kill(id);
    await waitFor('last will', () => w.statuses.slice(before).some((s) => s.deviceId === id && s.online === false));
    const will = w.statuses.slice(before).find((s) => s.deviceId === id && s.online === false)!;
    // the broker's will, stamped when the agent connected, not an offline status the agent sent on its way out
    expect(Date.parse(will.ts as string)).toBeLessThan(killedAt);
    expect(w.statuses.slice(before).filter((s) => s.deviceId === id && s.online === false)).toHaveLength(1);
    expect(sim!.online.has(id)).toBe(false);
    expect(sim!.agent(id)).toBeUndefined();
    await sim!.restart(id);
    await waitFor('back online', () => sim!.online.has(id) && w.status.get(id)?.online === true);
    expect(w.status.get(id)).toMatchObject({ activeModel: { version: '1.0.0' } });
  });

  it('stop() turns every device offline, each saying so itself', async () => {
    const stoppedAt = Date.now();
    await sim!.stop();
    sim = undefined;
    await waitFor('5 offline statuses', () => IDS.every((id) => w.status.get(id)?.online === false));
    for (const id of IDS) expect(Date.parse(w.status.get(id)!.ts as string)).toBeGreaterThanOrEqual(stoppedAt);
  });

  it('with fail rate 1.0 every deploy fails with AGENT_INJECTED_FAULT and the old model keeps serving', async () => {
    // the same ids and data folders: the devices come back with 1.0.0 active
    sim = await FleetSimulator.start({
      devices: 2, profile: 'mix', broker: url(), fleet: FLEET, keys: [keyFile], root: join(root, 'devices'), failRate: 1, staggerMs: 0,
    });
    const ids = ['sim-nano-001', 'sim-orin-001'];
    for (const id of ids) expect(sim.agent(id)?.active()?.manifest.version).toBe('1.0.0');
    for (const id of ids) await send(w.client, FLEET, deployOf(v2, origin, id, `d2-${id}`));
    await waitFor('2 deploy outcomes', () => ids.every((id) => finalOf(w, `d2-${id}`) !== undefined), 60_000);
    for (const id of ids) {
      expect(finalOf(w, `d2-${id}`)).toMatchObject({ state: 'failed', code: 'AGENT_INJECTED_FAULT' });
      expect(sim.agent(id)?.active()?.manifest.version).toBe('1.0.0');
    }
    await sim.stop();
    sim = undefined;
  });
});

function url(): string {
  return broker.url;
}
