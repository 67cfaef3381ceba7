import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fleetTopics, generateKeyPair, makeCommand, signCommand, writeKeyPair, type CommandFields, type EventMessage } from '@kd-edge/core';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../src/agent.js';
import { validateAgentConfig } from '../src/config/agent-config.js';
import { makeDetectorPackage, type DetectorPackage } from './fixtures/agent/detector-package.js';
import { PackageOrigin } from './fixtures/agent/package-origin.js';
import { observer, startAedes, waitFor, type AedesHarness } from './mqtt-brokers.js';

const FLEET = 'lab';
const DEVICE = 'cam-01';
const topics = fleetTopics(FLEET);

let root: string;
let broker: AedesHarness;
let origin: PackageOrigin;
let fleet: MqttClient;
let agent: Agent;
let keyFile: string;
let fleetKey: ReturnType<typeof generateKeyPair>;
const pkgs: Record<string, DetectorPackage> = {};
const events: EventMessage[] = [];
const benches: Array<Record<string, unknown>> = [];

function config(over: Record<string, unknown> = {}) {
  return validateAgentConfig({
    fleet: FLEET, deviceId: DEVICE, dataDir: join(root, 'agent'), keys: [keyFile],
    // The default protocol version ('auto'): aedes refuses MQTT 5, so the agent falls back to 3.1.1 (MQTT 5 is exercised against Mosquitto)
    broker: { url: broker.url, reconnectMinMs: 50, reconnectMaxMs: 500 },
    runtime: { trtexec: false },
    benchmark: { warmup: 1, iterations: 5 },
    limits: { chunkTimeoutMs: 500 },
    ...over,
  });
}

async function send(fields: CommandFields | Record<string, unknown> | string, raw = false): Promise<void> {
  const payload = raw ? (fields as string) : JSON.stringify(makeCommand(fields as CommandFields));
  await fleet.publishAsync(topics.cmd(DEVICE), payload, { qos: 1 });
}

function deployOf(p: DetectorPackage, id: string, over: Record<string, unknown> = {}): CommandFields {
  return {
    command: 'deploy', id, deviceId: DEVICE,
    package: { name: p.name, version: p.version, sha256: p.sha256, size: p.size, http: { url: origin.add(p.tar, p.sha256) } },
    manifest: p.manifest,
    ...over,
  } as CommandFields;
}

const finalOf = (id: string): EventMessage | undefined =>
  [...events].reverse().find((e) => e.commandId === id && ['succeeded', 'failed', 'rolled_back'].includes(e.state));
const statesOf = (id: string): string[] => events.filter((e) => e.commandId === id && !e.repeat).map((e) => e.state);
async function settle(id: string, state?: string): Promise<EventMessage> {
  await waitFor(`final event of ${id}`, () => finalOf(id) !== undefined && (state === undefined || finalOf(id)!.state === state), 60_000);
  return finalOf(id)!;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-agent-deploy-'));
  fleetKey = generateKeyPair();
  keyFile = join(root, 'fleet.pub');
  await writeKeyPair(fleetKey, { privateKeyPath: join(root, 'fleet.key'), publicKeyPath: keyFile });
  const otherKey = generateKeyPair();
  pkgs.v1 = await makeDetectorPackage(join(root, 'pkgs'), 'shapes', '1.0.0', fleetKey.privateKeyPem, 7);
  pkgs.v2 = await makeDetectorPackage(join(root, 'pkgs'), 'shapes', '1.1.0', fleetKey.privateKeyPem, 8);
  pkgs.old = await makeDetectorPackage(join(root, 'pkgs'), 'shapes', '0.9.0', fleetKey.privateKeyPem, 9);
  pkgs.foreign = await makeDetectorPackage(join(root, 'pkgs-other'), 'shapes', '2.0.0', otherKey.privateKeyPem, 10);
  broker = await startAedes();
  origin = new PackageOrigin();
  await origin.start(broker.url, FLEET);
  fleet = await observer(broker.url, { clientId: 'test-fleet' });
  await fleet.subscribeAsync([topics.events(DEVICE), topics.bench(DEVICE), topics.status(DEVICE)], { qos: 1 });
  fleet.on('message', (topic, payload) => {
    if (topic === topics.events(DEVICE)) events.push(JSON.parse(payload.toString()) as EventMessage);
    if (topic === topics.bench(DEVICE)) benches.push(JSON.parse(payload.toString()) as Record<string, unknown>);
  });
  agent = await Agent.start(config());
  await agent.online;
  if (process.env.KD_DEBUG) {
    agent.on('event', (e) => console.log('event', JSON.stringify(e)));
    agent.on('error', (e) => console.log('error', e));
  }
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await fleet?.endAsync();
  await origin?.stop();
  await broker?.close();
  await rm(root, { recursive: true, force: true });
});

describe('kd-agent deploy over a real broker', () => {
  it('answers the adaptation commands it cannot act on with a failed event naming why (agent-adapt.test.ts runs the jobs)', async () => {
    await send({ command: 'adapt', id: 'ad-1', deviceId: DEVICE, jobId: 'job-1' });
    await send({ command: 'adapt-cancel', id: 'ad-2', deviceId: DEVICE, jobId: 'job-1' });
    expect(await settle('ad-1')).toMatchObject({ state: 'failed', code: 'AGENT_NO_ACTIVE_MODEL' });
    expect(await settle('ad-2')).toMatchObject({ state: 'failed', code: 'AGENT_ADAPT_UNKNOWN_JOB' });
    for (const id of ['ad-1', 'ad-2']) expect(statesOf(id)).toEqual(['accepted', 'failed']);
  });

  it('downloads, verifies, benchmarks, activates and reports a signed package, step by step', async () => {
    await send({ command: 'rollback', id: 'r-none', deviceId: DEVICE });
    expect((await settle('r-none')).code).toBe('AGENT_NO_ACTIVE_MODEL');
    await send(deployOf(pkgs.v1!, 'd-1'));
    const done = await settle('d-1');
    expect(done.state, done.message).toBe('succeeded');
    const states = statesOf('d-1');
    expect(states[0]).toBe('accepted');
    expect(states.slice(-4)).toEqual(['verifying', 'activating', 'benchmarking', 'succeeded']);
    expect(states).toContain('downloading');
    expect(agent.active()?.manifest.version).toBe('1.0.0');
    const bench = benches.find((b) => b.commandId === 'd-1')!;
    expect(bench).toMatchObject({ runtime: 'onnxruntime', executionProvider: 'cpu', iterations: 5, model: { version: '1.0.0', sha256: pkgs.v1!.sha256 } });
    expect((bench.accuracy as { images: number }).images).toBe(3);
    expect(done.result).toMatchObject({ version: '1.0.0', runtime: 'onnxruntime' });
    // the retained status now names the active model
    const status = JSON.parse((await readRetained(topics.status(DEVICE))).toString()) as Record<string, unknown>;
    expect(status).toMatchObject({ online: true, activeModel: { name: 'shapes', version: '1.0.0', sha256: pkgs.v1!.sha256 } });
    // the first version has nothing to roll back to
    await send({ command: 'rollback', id: 'r-first', deviceId: DEVICE, fromVersion: '1.0.0' });
    const refused = await settle('r-first');
    expect([refused.state, refused.code]).toEqual(['failed', 'AGENT_NO_PREVIOUS_MODEL']);
    expect(agent.active()?.manifest.version).toBe('1.0.0');
  });

  it('answers a repeated command id with its recorded outcome and does not redo it', async () => {
    const before = origin.httpRequests;
    await send(deployOf(pkgs.v1!, 'd-1'));
    await waitFor('repeat answer', () => events.some((e) => e.commandId === 'd-1' && e.repeat === true));
    expect(events.find((e) => e.commandId === 'd-1' && e.repeat)!.state).toBe('succeeded');
    expect(origin.httpRequests).toBe(before);
  });

  it('refuses a tampered package, a package signed by an unknown key, an older version and an oversized one; v1 keeps serving', async () => {
    // tampered: one byte of the model inside the tar flipped, manifest unchanged
    const bytes = Buffer.from(await readFile(pkgs.v2!.tar));
    const at = bytes.indexOf(Buffer.from('onnx')) + 2048;
    bytes[at] = bytes[at]! ^ 0xff;
    const tampered = join(root, 'pkgs', 'tampered.tar');
    await writeFile(tampered, bytes);
    const sha = (await import('node:crypto')).createHash('sha256').update(bytes).digest('hex');
    await send({ ...deployOf(pkgs.v2!, 't-1'), package: { name: 'shapes', version: '1.1.0', sha256: sha, size: bytes.length, http: { url: origin.add(tampered, sha) } } } as CommandFields);
    expect((await settle('t-1')).code).toBe('PACKAGE_HASH_MISMATCH');

    await send(deployOf(pkgs.foreign!, 'k-1'));
    expect((await settle('k-1')).code).toBe('PACKAGE_KEY_UNTRUSTED');

    await send(deployOf(pkgs.old!, 'o-1'));
    const old = await settle('o-1');
    expect(old.code).toBe('AGENT_DOWNGRADE_REFUSED');
    expect(old.message).toMatch(/0\.9\.0 is older than shapes@1\.0\.0, the highest version of shapes active on this device/);

    const big = deployOf(pkgs.v2!, 's-1') as unknown as { package: Record<string, unknown> };
    await send({ ...big, package: { ...big.package, size: 10 * 2 ** 30 } });
    expect((await settle('s-1')).code).toBe('AGENT_PACKAGE_TOO_LARGE');

    // a manifest in the command that is not the package's (the signature inside the package still holds)
    const forged = { ...pkgs.v2!.manifest, metrics: { 'metrics/mAP50(B)': 0.99 } };
    await send(deployOf(pkgs.v2!, 'm-1', { manifest: forged }));
    expect((await settle('m-1')).code).toBe('AGENT_MANIFEST_MISMATCH');

    expect(agent.active()?.manifest.version).toBe('1.0.0');
    // nothing of the refused packages was left installed
    expect(agent.store.list().map((v) => v.info.version)).toEqual(['1.0.0']);
  });

  it('answers garbage, unknown commands and commands for another device with an error event, and keeps working', async () => {
    const before = events.length;
    await send('\u0000\u00ffnot json', true);
    await send(JSON.stringify({ v: 1, type: 'cmd', id: 'u-1', command: 'reboot', deviceId: DEVICE }), true);
    await send(JSON.stringify({ v: 2, type: 'cmd', id: 'v-2', command: 'ping', deviceId: DEVICE }), true);
    await send({ command: 'ping', id: 'w-1', deviceId: 'cam-02' });
    await waitFor('four error events', () => events.slice(before).filter((e) => e.state === 'failed').length >= 4);
    const errs = events.slice(before).filter((e) => e.state === 'failed');
    expect(errs.map((e) => [e.commandId, e.code])).toEqual([
      [null, 'PROTOCOL_JSON'], ['u-1', 'PROTOCOL_SCHEMA'], ['v-2', 'PROTOCOL_VERSION'], ['w-1', 'AGENT_WRONG_DEVICE'],
    ]);
    await send({ command: 'ping', id: 'p-1', deviceId: DEVICE });
    expect((await settle('p-1')).result).toMatchObject({ pong: true, active: '1.0.0' });
  });

  it('a failed latency gate leaves the serving model in place and says so', async () => {
    await send(deployOf(pkgs.v2!, 'g-1', { gates: { maxP95Ms: 0.001 } }));
    const done = await settle('g-1', 'rolled_back');
    expect(statesOf('g-1').slice(-3)).toEqual(['benchmarking', 'failed', 'rolled_back']);
    expect(done.code).toBe('AGENT_GATE_LATENCY');
    expect(done.message).toMatch(/over the budget of 0\.001 ms; shapes@1\.0\.0 keeps serving/);
    expect(agent.active()?.manifest.version).toBe('1.0.0');
  });

  it('an accuracy gate is checked on the package\'s val/ set on the device', async () => {
    await send(deployOf(pkgs.v2!, 'a-1', { gates: { minMap50: 0.999 } }));
    const done = await settle('a-1', 'rolled_back');
    expect(done.code).toBe('AGENT_GATE_ACCURACY');
    expect(done.message).toMatch(/on-device mAP50 0\.\d{3} on 3 val images is under the required 0\.999/);
    expect(agent.active()?.manifest.version).toBe('1.0.0');
  });

  it('deploys over MQTT chunks alone, re-asking for a corrupted chunk, then rolls back on command', async () => {
    const p = pkgs.v2!;
    origin.add(p.tar, p.sha256);
    origin.corruptOnce.add(1);
    const sent = origin.chunksSent;
    await send({ ...deployOf(p, 'c-1'), package: { name: p.name, version: p.version, sha256: p.sha256, size: p.size, mqtt: { chunkSize: 16 * 1024 } } } as CommandFields);
    const done = await settle('c-1');
    expect(done.state, done.message).toBe('succeeded');
    expect(agent.active()?.manifest.version).toBe('1.1.0');
    expect(origin.chunksSent - sent).toBe(Math.ceil(p.size / (16 * 1024)) + 1);

    await send({ command: 'rollback', id: 'r-1', deviceId: DEVICE, fromVersion: '1.0.0' });
    expect((await settle('r-1')).code).toBe('AGENT_ROLLBACK_STALE');
    await send({ command: 'rollback', id: 'r-2', deviceId: DEVICE, fromVersion: '1.1.0' });
    expect((await settle('r-2')).state).toBe('rolled_back');
    expect(agent.active()?.manifest.version).toBe('1.0.0');
  }, 90_000);

  it('takes an older version only from a signed downgrade command', async () => {
    const fields = deployOf(pkgs.old!, 'dg-1', { allowDowngrade: true });
    const unsigned = makeCommand(fields);
    await send(unsigned as unknown as CommandFields);
    expect((await settle('dg-1')).code).toBe('AGENT_DOWNGRADE_REFUSED');
    const signed = signCommand(makeCommand({ ...fields, id: 'dg-2' }), fleetKey.privateKeyPem);
    await fleet.publishAsync(topics.cmd(DEVICE), JSON.stringify(signed), { qos: 1 });
    const done = await settle('dg-2');
    expect(done.state, done.message).toBe('succeeded');
    expect(agent.active()?.manifest.version).toBe('0.9.0');
  });

  it('comes back after a restart with the same active model, and benchmarks it on command', async () => {
    await agent.stop();
    agent = await Agent.start(config());
    await agent.online;
    expect(agent.active()?.manifest.version).toBe('0.9.0');
    await send({ command: 'benchmark', id: 'b-1', deviceId: DEVICE, iterations: 3 });
    const done = await settle('b-1');
    expect(done.result).toMatchObject({ version: '0.9.0' });
    expect(benches.find((b) => b.commandId === 'b-1')).toMatchObject({ iterations: 3 });
  });
});

async function readRetained(topic: string): Promise<Buffer> {
  const c = await observer(broker.url);
  try {
    return await new Promise<Buffer>((resolve) => {
      c.on('message', (t, payload) => {
        if (t === topic) resolve(payload);
      });
      void c.subscribeAsync(topic);
    });
  } finally {
    await c.endAsync();
  }
}
