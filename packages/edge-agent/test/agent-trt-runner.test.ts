// kd-agent serving through the TensorRT runner (issue 17), with the ONNX Runtime STAND-IN as the runner (there is no
// TensorRT here): a real agent on aedes deploys, gates on the runner's latency, serves through it, survives a SIGKILL
// of it, falls back to ONNX Runtime after repeated crashes, and swaps versions under continuous serving.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fleetTopics, generateKeyPair, makeCommand, parseMessage, writeKeyPair, type CommandFields, type EventMessage, type Logger } from '@kd-edge/core';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../src/agent.js';
import { validateAgentConfig } from '../src/config/agent-config.js';
import { makeDetectorPackage, type DetectorPackage } from './fixtures/agent/detector-package.js';
import { PackageOrigin } from './fixtures/agent/package-origin.js';
import { picturePng } from './fixtures/serve/models.js';
import { observer, startAedes, waitFor, type AedesHarness } from './mqtt-brokers.js';
import { shmTempDir, standinCommand } from './trt-runner-helpers.js';

const FLEET = 'lab';
const DEVICE = 'trt-01';
const topics = fleetTopics(FLEET);

let root: string;
let shm: { dir: string; remove: () => Promise<void> };
let broker: AedesHarness;
let origin: PackageOrigin;
let fleet: MqttClient;
let agent: Agent;
let keyFile: string;
const pkgs: Record<string, DetectorPackage> = {};
const events: EventMessage[] = [];
const benches: Array<Record<string, unknown>> = [];
const statuses: Array<Record<string, unknown>> = [];
/** Frames that failed to infer (the agent logs each as a `frame:` warning). */
const frameErrors: string[] = [];
const logger: Logger = {
  debug: () => {}, info: () => {}, error: () => {},
  warn: (m: string) => {
    if (m.startsWith('frame:')) frameErrors.push(m);
  },
};

const finalOf = (id: string): EventMessage | undefined =>
  [...events].reverse().find((e) => e.commandId === id && ['succeeded', 'failed', 'rolled_back'].includes(e.state));
async function settle(id: string, state?: string): Promise<EventMessage> {
  await waitFor(`final event of ${id}`, () => finalOf(id) !== undefined && (state === undefined || finalOf(id)!.state === state), 90_000);
  return finalOf(id)!;
}
function deployOf(p: DetectorPackage, id: string, over: Record<string, unknown> = {}): CommandFields {
  return {
    command: 'deploy', id, deviceId: DEVICE,
    package: { name: p.name, version: p.version, sha256: p.sha256, size: p.size, http: { url: origin.add(p.tar, p.sha256) } },
    manifest: p.manifest, ...over,
  } as CommandFields;
}
async function send(fields: CommandFields): Promise<void> {
  await fleet.publishAsync(topics.cmd(DEVICE), JSON.stringify(makeCommand(fields)), { qos: 1 });
}
const frames = (): number => agent.servingStats()!.frames;
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-agent-trt-runner-'));
  shm = await shmTempDir();
  const pair = generateKeyPair();
  keyFile = join(root, 'fleet.pub');
  await writeKeyPair(pair, { privateKeyPath: join(root, 'fleet.key'), publicKeyPath: keyFile });
  pkgs.v1 = await makeDetectorPackage(join(root, 'pkgs'), 'shapes', '1.0.0', pair.privateKeyPem, 7);
  pkgs.slow = await makeDetectorPackage(join(root, 'pkgs'), 'shapes', '1.1.0', pair.privateKeyPem, 8);
  pkgs.v2 = await makeDetectorPackage(join(root, 'pkgs'), 'shapes', '1.2.0', pair.privateKeyPem, 9);
  await mkdir(join(root, 'camera'));
  for (let i = 0; i < 3; i++) await writeFile(join(root, 'camera', `f${i}.png`), await picturePng(80, 64, i + 1));
  broker = await startAedes();
  origin = new PackageOrigin();
  await origin.start(broker.url, FLEET);
  fleet = await observer(broker.url, { clientId: 'test-fleet-trt' });
  await fleet.subscribeAsync([topics.events(DEVICE), topics.bench(DEVICE), topics.status(DEVICE)], { qos: 1 });
  fleet.on('message', (topic, payload) => {
    const msg = JSON.parse(payload.toString()) as Record<string, unknown>;
    if (topic === topics.events(DEVICE)) events.push(msg as unknown as EventMessage);
    if (topic === topics.bench(DEVICE)) benches.push(msg);
    if (topic === topics.status(DEVICE)) statuses.push(msg);
  });
}, 180_000);

afterAll(async () => {
  await agent?.stop();
  await fleet?.endAsync();
  await origin?.stop();
  await broker?.close();
  await shm?.remove();
  await rm(root, { recursive: true, force: true });
});

describe('runtime.trtRunner configuration', () => {
  const base = { deviceId: DEVICE, keys: ['k.pub'] };
  it('is absent by default, fills its defaults, and refuses bad values naming the field', () => {
    expect(validateAgentConfig(base).runtime.trtRunner).toBeUndefined();
    expect(validateAgentConfig({ ...base, runtime: { trtRunner: { command: ['/opt/kd-trt-runner'] } } }).runtime.trtRunner)
      .toEqual({ command: ['/opt/kd-trt-runner'], shmDir: '/dev/shm', maxCrashes: 3, crashWindowSec: 600 });
    expect(() => validateAgentConfig({ ...base, runtime: { trtRunner: { command: [] } } })).toThrow(/runtime\.trtRunner\.command: the runner's argv/);
    expect(() => validateAgentConfig({ ...base, runtime: { trtRunner: { command: ['x'], maxCrashes: 0 } } })).toThrow(/runtime\.trtRunner\.maxCrashes/);
    expect(() => validateAgentConfig({ ...base, runtime: { trtRunner: { command: ['x'], shmdir: '/tmp' } } })).toThrow(/runtime\.trtRunner.*shmdir/);
  });
});

describe('kd-agent serving through the TensorRT runner (stand-in)', () => {
  it('removes only its own stale shared-memory files at start, and starts the runner', async () => {
    const dataDir = join(root, 'agent');
    const tag = createHash('sha256').update(dataDir).digest('hex').slice(0, 8);
    // A pid above Linux's largest pid_max: no such process, as after a killed agent.
    const stale = `kd-trt-${tag}-4194305-abcdef012345`;
    const foreign = 'kd-trt-4194305-abcdef012345';
    await writeFile(join(shm.dir, stale), 'x');
    await writeFile(join(shm.dir, foreign), 'x');
    agent = await Agent.start(validateAgentConfig({
      fleet: FLEET, deviceId: DEVICE, dataDir, keys: [keyFile],
      broker: { url: broker.url, protocolVersion: 4, reconnectMinMs: 50, reconnectMaxMs: 500 },
      runtime: { trtexec: false, trtRunner: { command: standinCommand(shm.dir), shmDir: shm.dir, maxCrashes: 2 } },
      benchmark: { warmup: 1, iterations: 5 },
      serve: { source: { replay: join(root, 'camera'), fps: 20, loop: true } },
    }), { logger });
    await agent.online;
    const names = await readdir(shm.dir);
    expect(names).not.toContain(stale);
    expect(names).toContain(foreign);
    expect(agent.trtRunner?.state).toBe('ready');
  }, 120_000);

  it('deploys through the runner: the bench says the runner served, and the gates judge its latency', async () => {
    await send(deployOf(pkgs.v1!, 'd-1'));
    const done = await settle('d-1');
    expect(done.state, done.message).toBe('succeeded');
    const bench = benches.find((b) => b.commandId === 'd-1')!;
    // The stand-in computes with ONNX Runtime: served through the runner, never reported as TensorRT.
    expect(bench).toMatchObject({ serving: 'tensorrt-runner', runtime: 'onnxruntime', executionProvider: expect.stringMatching(/^kd-trt-standin onnxruntime-standin /) });
    expect(parseMessage('bench', JSON.stringify(bench))).toMatchObject({ serving: 'tensorrt-runner' });
    expect(agent.active()?.serving).toBe('tensorrt-runner');

    await send(deployOf(pkgs.slow!, 'd-slow', { gates: { maxP95Ms: 0.0001 } }));
    const refused = await settle('d-slow', 'rolled_back');
    expect(refused).toMatchObject({ state: 'rolled_back', code: 'AGENT_GATE_LATENCY' });
    expect(benches.find((b) => b.commandId === 'd-slow')).toMatchObject({ serving: 'tensorrt-runner' });
    expect(agent.active()?.manifest.version).toBe('1.0.0');
  }, 180_000);

  it('serves frames through the runner, and a second deploy swaps under continuous serving with no dropped inference', async () => {
    const pid = agent.trtRunner!.pid!;
    expect(alive(pid)).toBe(true);
    const start = frames();
    await waitFor('frames served', () => frames() >= start + 5, 30_000);
    const status = statuses.at(-1) as { activeModel?: Record<string, unknown> };
    expect(status.activeModel).toMatchObject({ version: '1.0.0', serving: 'tensorrt-runner' });
    const errorsBefore = frameErrors.length;
    const before = frames();
    let atSwap = -1;
    agent.once('activated', () => {
      atSwap = frames();
    });
    await send(deployOf(pkgs.v2!, 'd-2'));
    const done = await settle('d-2');
    expect(done.state, done.message).toBe('succeeded');
    await waitFor('frames after the swap', () => frames() >= atSwap + 10, 30_000);
    // Frames were served while the new version loaded and was benchmarked beside the old one, and after the swap.
    expect(atSwap).toBeGreaterThan(before);
    expect(agent.active()).toMatchObject({ serving: 'tensorrt-runner', manifest: { version: '1.2.0' } });
    expect(frameErrors.slice(errorsBefore)).toEqual([]);
  }, 180_000);

  it('restarts a SIGKILLed runner and serving goes on through it', async () => {
    const sup = agent.trtRunner!;
    const pid = sup.pid!;
    const errorsBefore = frameErrors.length;
    process.kill(pid, 'SIGKILL');
    await waitFor('the restart', () => sup.state === 'ready' && sup.pid !== undefined && sup.pid !== pid, 60_000);
    const after = frames();
    await waitFor('frames after the restart', () => frames() >= after + 5, 30_000);
    expect(sup.restarts).toBe(1);
    expect(agent.active()?.serving).toBe('tensorrt-runner');
    // The supervisor sends the interrupted inference again.
    expect(frameErrors.slice(errorsBefore)).toEqual([]);
  }, 120_000);

  it('after repeated crashes falls back to ONNX Runtime: an event names why, ONNX Runtime serves, the status says so', async () => {
    const sup = agent.trtRunner!;
    process.kill(sup.pid!, 'SIGKILL');
    await waitFor('the fallback event', () => events.some((e) => e.code === 'TRT_RUNNER_GAVE_UP'), 60_000);
    const ev = events.find((e) => e.code === 'TRT_RUNNER_GAVE_UP')!;
    expect(ev).toMatchObject({ state: 'failed', commandId: null, result: { fallback: 'onnxruntime', active: 'shapes@1.2.0' } });
    expect(ev.message).toMatch(/crashed 2 times/);
    await waitFor('ONNX Runtime serving', () => agent.active()?.serving === 'onnxruntime', 60_000);
    expect(agent.active()?.manifest.version).toBe('1.2.0');
    const after = frames();
    await waitFor('frames on ONNX Runtime', () => frames() >= after + 5, 30_000);
    await waitFor('the status', () => (statuses.at(-1) as { activeModel?: { serving?: string } }).activeModel?.serving === 'onnxruntime', 30_000);
    expect((statuses.at(-1) as { activeModel: unknown }).activeModel).toMatchObject({ runtime: 'onnxruntime', executionProvider: 'cpu', serving: 'onnxruntime' });
  }, 120_000);
});
