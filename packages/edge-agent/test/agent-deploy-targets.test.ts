// Issue 17: a real agent on a real broker deploys a package with per-target int8 files and serves the one for its device.
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { arch, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildPackage, calibrate, decodeModel, encodeModel, fleetTopics, generateKeyPair, makeCommand, packDirectory, quantizeQdq, seededRandom,
  writeKeyPair, type CommandFields, type EventMessage, type Manifest, type ManifestTarget,
} from '@kd-edge/core';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../src/agent.js';
import { validateAgentConfig } from '../src/config/agent-config.js';
import { PackageOrigin } from './fixtures/agent/package-origin.js';
import { writeTinyYolo } from './fixtures/serve/models.js';
import { observer, startAedes, waitFor, type AedesHarness } from './mqtt-brokers.js';

const FLEET = 'lab';
const DEVICE = 'cam-t1';
const topics = fleetTopics(FLEET);

let root: string;
let broker: AedesHarness;
let origin: PackageOrigin;
let fleet: MqttClient;
let agent: Agent | undefined;
const events: EventMessage[] = [];
const benches: Array<Record<string, unknown>> = [];
const statuses: Array<Record<string, unknown>> = [];
let pkg: { tar: string; sha256: string; size: number; manifest: Manifest };

/** A package as `kd-trainer package` writes it since issue 17: fp32, S8S8 and U8S8 from one calibration, with targets. */
async function makeTargetsPackage(dir: string, privateKeyPem: string): Promise<typeof pkg> {
  const work = `${dir}-work`;
  await mkdir(dir, { recursive: true });
  await mkdir(work, { recursive: true });
  const tiny = await writeTinyYolo(work, 64, 7);
  await copyFile(tiny.decoded, join(dir, 'model.onnx'));
  const fp32 = decodeModel(new Uint8Array(await readFile(tiny.decoded)));
  const rand = seededRandom(5);
  const images = Array.from({ length: 4 }, () => Float32Array.from({ length: 3 * 64 * 64 }, () => rand()));
  const { ranges } = await calibrate(fp32, images, { method: 'minmax', inputShape: [1, 3, 64, 64] });
  const { writeFile } = await import('node:fs/promises');
  await writeFile(join(dir, 'model.int8.onnx'), encodeModel(quantizeQdq(fp32, { ranges, activationType: 'int8' }).model));
  await writeFile(join(dir, 'model.int8.u8s8.onnx'), encodeModel(quantizeQdq(fp32, { ranges, activationType: 'uint8' }).model));
  const targets: ManifestTarget[] = [
    { file: 'model.int8.u8s8.onnx', precision: 'int8', runtime: 'onnxruntime', arch: ['x86_64'], quantization: 'u8s8' },
    { file: 'model.int8.onnx', precision: 'int8', runtime: 'onnxruntime', arch: ['aarch64'], quantization: 's8s8' },
    { file: 'model.onnx', precision: 'fp32', runtime: 'onnxruntime', arch: ['x86_64', 'aarch64'] },
  ];
  const m = tiny.decodedModel;
  const manifest = await buildPackage({
    dir, name: 'shapes', version: '3.0.0', task: 'detect', createdAt: '2026-11-01T12:00:00Z',
    input: m.input, output: m.output, names: [...m.names], strides: [...m.strides], anchors: m.anchors.map((a) => [...a]),
    targets, privateKey: privateKeyPem,
  });
  const tar = `${dir}.tar`;
  await packDirectory(dir, tar);
  const bytes = await readFile(tar);
  return { tar, manifest, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-agent-targets-'));
  const fleetKey = generateKeyPair();
  const keyFile = join(root, 'fleet.pub');
  await writeKeyPair(fleetKey, { privateKeyPath: join(root, 'fleet.key'), publicKeyPath: keyFile });
  pkg = await makeTargetsPackage(join(root, 'pkgs', 'shapes-3.0.0'), fleetKey.privateKeyPem);
  broker = await startAedes();
  origin = new PackageOrigin();
  await origin.start(broker.url, FLEET);
  fleet = await observer(broker.url, { clientId: 'test-fleet-targets' });
  await fleet.subscribeAsync([topics.events(DEVICE), topics.bench(DEVICE), topics.status(DEVICE)], { qos: 1 });
  fleet.on('message', (topic, payload) => {
    const msg = JSON.parse(payload.toString()) as Record<string, unknown>;
    if (topic === topics.events(DEVICE)) events.push(msg as EventMessage);
    if (topic === topics.bench(DEVICE)) benches.push(msg);
    if (topic === topics.status(DEVICE)) statuses.push(msg);
  });
  agent = await Agent.start(validateAgentConfig({
    fleet: FLEET, deviceId: DEVICE, dataDir: join(root, 'agent'), keys: [keyFile],
    broker: { url: broker.url, reconnectMinMs: 50, reconnectMaxMs: 500 },
    runtime: { trtexec: false },
    benchmark: { warmup: 1, iterations: 3 },
  }));
  await agent.online;
}, 180_000);

afterAll(async () => {
  await agent?.stop();
  await fleet?.endAsync();
  await origin?.stop();
  await broker?.close();
  await rm(root, { recursive: true, force: true });
});

describe('kd-agent serves the file of its device from a package with targets', () => {
  it('deploys, serves the int8 file for this architecture and reports it in the bench and the status', async () => {
    // This machine's file, as the package's targets say: U8S8 on x86-64, S8S8 on ARM64 (never S8S8 on x86).
    const expected = arch() === 'arm64' ? 'model.int8.onnx' : 'model.int8.u8s8.onnx';
    const cmd = makeCommand({
      command: 'deploy', id: 'dt-1', deviceId: DEVICE,
      package: { name: 'shapes', version: '3.0.0', sha256: pkg.sha256, size: pkg.size, http: { url: origin.add(pkg.tar, pkg.sha256) } },
      manifest: pkg.manifest,
    } as CommandFields);
    await fleet.publishAsync(topics.cmd(DEVICE), JSON.stringify(cmd), { qos: 1 });
    await waitFor('deploy dt-1 ends', () => events.some((e) => e.commandId === 'dt-1' && ['succeeded', 'failed', 'rolled_back'].includes(e.state)), 120_000);
    const done = events.find((e) => e.commandId === 'dt-1' && e.state !== 'accepted' && ['succeeded', 'failed', 'rolled_back'].includes(e.state))!;
    expect(done.state, done.message).toBe('succeeded');

    const active = agent!.active()!;
    expect(active.model.file).toBe(expected);
    expect(active.target.target?.file).toBe(expected);
    expect(active.target.reason).toMatch(arch() === 'arm64' ? /^int8 S8S8 for aarch64/ : /^int8 U8S8 for x86_64/);
    // The ONNX Runtime session runs that file: its input is the model's, and it detects (the serving path).
    expect(active.runtime.executionProvider).toBe('cpu');

    const bench = benches.find((b) => b.commandId === 'dt-1') as { model: { file: string; precision: string }; runtime: string };
    expect(bench.runtime).toBe('onnxruntime');
    expect(bench.model).toMatchObject({ file: expected, precision: 'int8' });

    await waitFor('status with the new model', () => statuses.some((s) => (s.activeModel as { version?: string } | null)?.version === '3.0.0'), 30_000);
    const status = [...statuses].reverse().find((s) => (s.activeModel as { version?: string } | null)?.version === '3.0.0')!;
    expect(status.activeModel).toMatchObject({ name: 'shapes', version: '3.0.0', precision: 'int8', file: expected, runtime: 'onnxruntime' });
  }, 180_000);
});
