import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fleetTopics, generateKeyPair, makeCommand, writeKeyPair, type EventMessage } from '@kd-edge/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../src/agent.js';
import { validateAgentConfig } from '../src/config/agent-config.js';
import { makeDetectorPackage, type DetectorPackage } from './fixtures/agent/detector-package.js';
import { PackageOrigin } from './fixtures/agent/package-origin.js';
import { observer, startAedes, waitFor, type AedesHarness } from './mqtt-brokers.js';

// TensorRT needs an NVIDIA GPU: trtexec here is the test stand-in, which prints trtexec's real output format.
const TRTEXEC_STANDIN = fileURLToPath(new URL('./fixtures/trtexec-standin.mjs', import.meta.url));
const topics = fleetTopics('lab');
let root: string;
let broker: AedesHarness;
let origin: PackageOrigin;
let pkg: DetectorPackage;
let keyFile: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-agent-trt-'));
  const pair = generateKeyPair();
  keyFile = join(root, 'fleet.pub');
  await writeKeyPair(pair, { privateKeyPath: join(root, 'fleet.key'), publicKeyPath: keyFile });
  pkg = await makeDetectorPackage(join(root, 'pkgs'), 'shapes', '1.0.0', pair.privateKeyPem, 7, true);
  broker = await startAedes();
  origin = new PackageOrigin();
  await origin.start(broker.url, 'lab');
}, 120_000);
afterAll(async () => {
  await origin?.stop();
  await broker?.close();
  await rm(root, { recursive: true, force: true });
});

describe('kd-agent with trtexec (stand-in)', () => {
  it('builds the engine from the package plan on the device, benchmarks it with trtexec, and reports both runtimes', async () => {
    const fleet = await observer(broker.url);
    await fleet.subscribeAsync([topics.events('trt'), topics.bench('trt')], { qos: 1 });
    const events: EventMessage[] = [];
    const benches: Array<Record<string, unknown>> = [];
    fleet.on('message', (topic, payload) => {
      if (topic === topics.events('trt')) events.push(JSON.parse(payload.toString()) as EventMessage);
      else benches.push(JSON.parse(payload.toString()) as Record<string, unknown>);
    });
    const dataDir = join(root, 'agent');
    const agent = await Agent.start(validateAgentConfig({
      fleet: 'lab', deviceId: 'trt', dataDir, keys: [keyFile], runtime: { trtexec: TRTEXEC_STANDIN },
      broker: { url: broker.url, protocolVersion: 4 }, benchmark: { warmup: 1, iterations: 5 },
    }), { facts: { deviceTreeModel: join(root, 'absent') } });
    try {
      await agent.online;
      const url = origin.add(pkg.tar, pkg.sha256);
      const cmd = makeCommand({ command: 'deploy', id: 'trt-1', deviceId: 'trt', package: { name: pkg.name, version: pkg.version, sha256: pkg.sha256, size: pkg.size, http: { url } }, manifest: pkg.manifest });
      await fleet.publishAsync(topics.cmd('trt'), JSON.stringify(cmd), { qos: 1 });
      await waitFor('deploy', () => events.some((e) => e.commandId === 'trt-1' && e.state === 'succeeded'), 60_000);
      const ok = events.find((e) => e.commandId === 'trt-1' && e.state === 'succeeded')!;
      expect(ok.result).toMatchObject({ runtime: 'onnxruntime', tensorrt: { runtime: 'tensorrt' } });
      expect(benches.map((b) => b.runtime).sort()).toEqual(['onnxruntime', 'tensorrt']);
      const trt = benches.find((b) => b.runtime === 'tensorrt') as { executionProvider: string; latencyMs: { p50: number; p95: number }; model: { file: string } };
      expect(trt.executionProvider).toMatch(/^tensorrt \d+\.\d+\.\d+$/);
      expect(trt.model.file).toBe('model.engine');
      expect(trt.latencyMs.p95).toBeGreaterThanOrEqual(trt.latencyMs.p50);
      // the engine is cached under the package's hash for the next deploy of the same bytes
      expect(await readdir(join(dataDir, 'engines'))).toEqual([pkg.sha256]);
    } finally {
      await agent.stop();
      await fleet.endAsync(true);
    }
  }, 120_000);
});
