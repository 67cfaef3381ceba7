// Issue 17: each agent picks its model file with its own facts. Two real agents in one process (as in the fleet
// simulator), one told it is a Jetson Nano (aarch64, TensorRT 8.2.1) and one an x86-64 box without TensorRT, serve the
// same package's S8S8 and U8S8 files and say so in their own retained status, whatever this host is.
import { createHash } from 'node:crypto';
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildPackage, calibrate, decodeModel, encodeModel, fleetTopics, generateKeyPair, packDirectory, quantizeQdq, seededRandom, writeKeyPair,
  type ManifestTarget,
} from '@kd-edge/core';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, type AgentTargetFacts } from '../src/agent.js';
import { validateAgentConfig } from '../src/config/agent-config.js';
import { ModelStore } from '../src/store/model-store.js';
import { writeTinyYolo } from './fixtures/serve/models.js';
import { observer, startAedes, waitFor, type AedesHarness } from './mqtt-brokers.js';

const FLEET = 'lab';
const topics = fleetTopics(FLEET);
const NANO = 'tf-nano';
const X86 = 'tf-x86';
const FACTS: Record<string, AgentTargetFacts> = { [NANO]: { arch: 'aarch64', tensorrt: '8.2.1' }, [X86]: { arch: 'x86_64', tensorrt: null } };

let root: string;
let broker: AedesHarness;
let fleet: MqttClient;
const agents = new Map<string, Agent>();
const statuses = new Map<string, Array<Record<string, unknown>>>();

/** fp32, S8S8 and U8S8 files of one tiny YOLO with the targets `kd-trainer package` writes; installed and active in `dataDir`. */
async function installTargetsPackage(pkgDir: string, dataDirs: string[], privateKeyPem: string): Promise<void> {
  const work = `${pkgDir}-work`;
  await mkdir(pkgDir, { recursive: true });
  await mkdir(work, { recursive: true });
  const tiny = await writeTinyYolo(work, 64, 11);
  await copyFile(tiny.decoded, join(pkgDir, 'model.onnx'));
  const fp32 = decodeModel(new Uint8Array(await readFile(tiny.decoded)));
  const rand = seededRandom(3);
  const images = Array.from({ length: 2 }, () => Float32Array.from({ length: 3 * 64 * 64 }, () => rand()));
  const { ranges } = await calibrate(fp32, images, { method: 'minmax', inputShape: [1, 3, 64, 64] });
  await writeFile(join(pkgDir, 'model.int8.onnx'), encodeModel(quantizeQdq(fp32, { ranges, activationType: 'int8' }).model));
  await writeFile(join(pkgDir, 'model.int8.u8s8.onnx'), encodeModel(quantizeQdq(fp32, { ranges, activationType: 'uint8' }).model));
  const targets: ManifestTarget[] = [
    { file: 'model.int8.u8s8.onnx', precision: 'int8', runtime: 'onnxruntime', arch: ['x86_64'], quantization: 'u8s8' },
    { file: 'model.int8.onnx', precision: 'int8', runtime: 'onnxruntime', arch: ['aarch64'], quantization: 's8s8' },
    { file: 'model.onnx', precision: 'fp32', runtime: 'onnxruntime', arch: ['x86_64', 'aarch64'] },
  ];
  const m = tiny.decodedModel;
  await buildPackage({
    dir: pkgDir, name: 'shapes', version: '3.0.0', task: 'detect', createdAt: '2026-11-01T12:00:00Z',
    input: m.input, output: m.output, names: [...m.names], strides: [...m.strides], anchors: m.anchors.map((a) => [...a]),
    targets, privateKey: privateKeyPem,
  });
  await packDirectory(pkgDir, `${pkgDir}.tar`);
  const sha256 = createHash('sha256').update(await readFile(`${pkgDir}.tar`)).digest('hex');
  for (const dataDir of dataDirs) {
    // A store with the package active, as a deploy leaves it.
    const store = await ModelStore.open(join(dataDir, 'store'));
    const staging = await store.stagingPath();
    await cp(pkgDir, staging, { recursive: true });
    await store.activate((await store.install(staging, { name: 'shapes', version: '3.0.0', sha256 })).key);
  }
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-agent-facts-'));
  const key = generateKeyPair();
  const keyFile = join(root, 'fleet.pub');
  await writeKeyPair(key, { privateKeyPath: join(root, 'fleet.key'), publicKeyPath: keyFile });
  await installTargetsPackage(join(root, 'pkgs', 'shapes-3.0.0'), [NANO, X86].map((id) => join(root, id)), key.privateKeyPem);
  broker = await startAedes();
  fleet = await observer(broker.url, { clientId: 'test-fleet-facts' });
  for (const id of [NANO, X86]) statuses.set(id, []);
  fleet.on('message', (topic, payload) => {
    for (const id of [NANO, X86]) if (topic === topics.status(id)) statuses.get(id)!.push(JSON.parse(payload.toString()) as Record<string, unknown>);
  });
  await fleet.subscribeAsync([topics.status(NANO), topics.status(X86)], { qos: 1 });
  // Both start at once in this process: neither's facts may leak into the other's.
  await Promise.all([NANO, X86].map(async (id) => {
    agents.set(id, await Agent.start(validateAgentConfig({
      fleet: FLEET, deviceId: id, dataDir: join(root, id), keys: [keyFile],
      broker: { url: broker.url, protocolVersion: 4, reconnectMinMs: 50, reconnectMaxMs: 500 },
      runtime: { trtexec: false },
    }), { facts: { deviceTreeModel: join(root, 'absent'), tegraRelease: join(root, 'absent') }, targetFacts: FACTS[id] }));
  }));
  await Promise.all([...agents.values()].map((a) => a.online));
}, 180_000);

afterAll(async () => {
  for (const a of agents.values()) await a.stop();
  await fleet?.endAsync();
  await broker?.close();
  await rm(root, { recursive: true, force: true });
});

describe('two agents in one process, each with its own target facts', () => {
  it('each loads its own file at start: S8S8 for the aarch64 Nano (with a TensorRT choice), U8S8 for x86-64', () => {
    const nano = agents.get(NANO)!.active()!;
    const x86 = agents.get(X86)!.active()!;
    expect(nano.model.file).toBe('model.int8.onnx');
    expect(nano.target.reason).toMatch(/^int8 S8S8 for aarch64/);
    expect(nano.target.tensorrt).toBeDefined(); // the device "has" TensorRT 8.2.1: what it would serve is worked out
    expect(x86.model.file).toBe('model.int8.u8s8.onnx');
    expect(x86.target.reason).toMatch(/^int8 U8S8 for x86_64/);
    expect(x86.target.tensorrt).toBeUndefined();
  });

  it('each reports its own arch and TensorRT in its retained status, with the file it serves', async () => {
    const last = (id: string) => statuses.get(id)!.filter((s) => s.online === true).at(-1);
    await waitFor('both online statuses', () => last(NANO) !== undefined && last(X86) !== undefined);
    expect(last(NANO)).toMatchObject({ hardware: { arch: 'aarch64', tensorrt: '8.2.1', jetson: null }, activeModel: { file: 'model.int8.onnx' } });
    expect(last(X86)).toMatchObject({ hardware: { arch: 'x86_64', tensorrt: null }, activeModel: { file: 'model.int8.u8s8.onnx' } });
  });

  it('later loads, interleaved between the two agents (a deploy, a restore), keep picking each one\'s own file', async () => {
    const nano = agents.get(NANO)!;
    const x86 = agents.get(X86)!;
    const loaded = await Promise.all([
      nano.load(nano.store.current()!, 'deploy'), x86.load(x86.store.current()!, 'deploy'),
      x86.load(x86.store.current()!), nano.load(nano.store.current()!),
    ]);
    try {
      expect(loaded.map((l) => l.model.file)).toEqual(['model.int8.onnx', 'model.int8.u8s8.onnx', 'model.int8.u8s8.onnx', 'model.int8.onnx']);
    } finally {
      for (const l of loaded) await l.detector.dispose();
    }
  }, 60_000);
});
