import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair, writeKeyPair } from '@kd-edge/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetSimulator } from '../src/simulator/fleet-simulator.js';
import { runSimulate } from '../src/simulator/run-simulate.js';
import { finalOf, send, startBroker, waitFor, watch, type Broker, type Watcher } from './simulator-helpers.js';

const FLEET = 'simproc';

let root: string;
let keyFile: string;
let broker: Broker;
let w: Watcher;
let sim: FleetSimulator | undefined;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-sim-proc-'));
  keyFile = join(root, 'fleet.pub');
  await writeKeyPair(generateKeyPair(), { privateKeyPath: join(root, 'fleet.key'), publicKeyPath: keyFile });
  broker = await startBroker();
  w = await watch(broker.url, FLEET);
});

afterAll(async () => {
  await sim?.stop();
  await w?.close();
  await broker?.close();
  await rm(root, { recursive: true, force: true });
});

describe('FleetSimulator over child processes', () => {
  it('runs 2 processes × 2 agents that answer commands, can be killed through their process, and stop cleanly', async () => {
    sim = await FleetSimulator.start({
      devices: 4, profile: 'mix', processes: 2, broker: broker.url, fleet: FLEET, keys: keyFile, root: join(root, 'devices'),
      killable: true, staggerMs: 0,
    });
    const pids = sim.processIds;
    expect(pids).toHaveLength(2);
    expect(new Set(pids).size).toBe(2);
    expect(pids).not.toContain(process.pid);
    const ids = ['sim-nano-001', 'sim-orin-001', 'sim-x86-001', 'sim-nano-002'];
    expect(sim.devices.map((d) => d.deviceId)).toEqual(ids);
    await waitFor('4 online statuses', () => ids.every((id) => w.status.get(id)?.online === true));
    expect((w.status.get('sim-nano-002')!.hardware as { jetson: { model: string } }).jetson.model).toMatch(/Jetson Nano/);

    for (const id of ids) await send(w.client, FLEET, { command: 'ping', id: `p-${id}`, deviceId: id });
    await waitFor('4 pongs', () => ids.every((id) => finalOf(w, `p-${id}`)?.state === 'succeeded'));

    const before = w.statuses.length;
    const killedAt = Date.now();
    await sim.kill('sim-x86-001');
    await waitFor('last will', () => w.statuses.slice(before).some((s) => s.deviceId === 'sim-x86-001' && s.online === false));
    const will = w.statuses.slice(before).find((s) => s.deviceId === 'sim-x86-001')!;
    expect(Date.parse(will.ts as string)).toBeLessThan(killedAt);
    await expect(sim.kill('sim-nope-001')).rejects.toMatchObject({ code: 'FLEET_SIM_UNKNOWN_DEVICE' });

    await sim.stop();
    sim = undefined;
    await waitFor('offline statuses', () => ids.every((id) => w.status.get(id)?.online === false));
    await waitFor('children gone', () => pids.every((pid) => !alive(pid)));
  });

  it('runSimulate runs the devices until its signal, saying what it does, then stops them', async () => {
    const lines: string[] = [];
    const stop = new AbortController();
    const done = runSimulate(
      { devices: '2', profile: 'nano', broker: broker.url, fleet: FLEET, key: keyFile, data: join(root, 'cli'), failRate: '0.5' },
      { write: (l) => lines.push(l), signal: stop.signal },
    );
    await waitFor('online line', () => lines.some((l) => l.includes('2 simulated devices online')));
    expect(lines[0]).toMatch(/^starting 2 simulated devices \(nano, fail rate 0\.5\) on mqtt:\/\/127\.0\.0\.1:\d+, fleet simproc, data /);
    // The line comes once the agents' own status publish is acknowledged; the watcher receives it a moment later.
    await waitFor('sim-nano-002 online at the watcher', () => w.status.get('sim-nano-002')?.online === true);
    stop.abort();
    expect(await done).toBe(0);
    expect(lines.at(-1)).toBe('stopping 2 simulated devices');
    await waitFor('offline statuses', () => ['sim-nano-001', 'sim-nano-002'].every((id) => w.status.get(id)?.online === false));
  });
});
