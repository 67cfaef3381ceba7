// Pull and promote end to end with a real kd-agent (issue 16): kd-fleet on its embedded broker with the API, one
// in-process kd-agent on toy models (64 px, 12 frames, one epoch) running a real `kd-trainer adapt` child. The job is
// started through the fleet's API with activate: false; the fleet pulls the result (the agent really PUTs its
// device-signed package), stores it unpromoted, promotes it (re-signed with the fleet key) and rolls it out to the same
// agent, which verifies the fleet's signature and activates it; a rollback on the device returns to the fleet's base.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  fleetTopics, generateKeyPair, makeCommand, parseAdaptedVersion, signCommand, verifyPackage, writeKeyPair, type CommandFields,
} from '@kd-edge/core';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../edge-agent/src/agent.js';
import { validateAgentConfig } from '../../edge-agent/src/config/agent-config.js';
import { KD_TRAINER_FROM_SOURCE, makeStudentPackage, makeTeacherPackage, writeFrames, type BuiltPackage } from '../../edge-agent/test/agent-adapt-fixtures.js';
import type { AdaptJobInfo } from '../src/adapt/adapt-job.js';
import { FleetServer } from '../src/server/fleet-server.js';
import { webHandlers } from '../src/server/web-handlers.js';
import { waitFor } from './http-helpers.js';

const FLEET = 'pull-agent';
const TOKEN = 'pull-agent-token';
const DEVICE = 'cam-01';
const ADAPTED = `1.0.0+adapt.${DEVICE}.1`;
const fleetKey = generateKeyPair();

let root: string;
let server: FleetServer;
let agent: Agent | undefined;
let base: BuiltPackage;
let teacher: BuiltPackage;
const t0 = Date.now();

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(server.httpUrl + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
}

/** Roll `version` of shapes out to the device and wait for the rollout to end; its final state. */
async function rollOut(version: string): Promise<string> {
  const r = await call('POST', '/api/rollouts', { package: { name: 'shapes', version }, target: { deviceIds: [DEVICE] }, waves: { canary: { count: 1 }, percents: [100] } });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  const id = r.body.id as string;
  const ended = (): boolean => ['succeeded', 'aborted', 'failed'].includes(server.context.rollouts.get(id)?.state ?? '');
  await waitFor(`rollout of ${version}`, ended, 180_000);
  const state = server.context.rollouts.get(id)!.state;
  if (state !== 'succeeded') console.log(JSON.stringify(server.context.rollouts.executions(id)));
  return state;
}

const job = (): AdaptJobInfo | undefined => server.context.adaptJobs.get(DEVICE, 'job-1');

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-fleet-pull-agent-'));
  await writeKeyPair(fleetKey, { privateKeyPath: join(root, 'fleet.key'), publicKeyPath: join(root, 'fleet.pub') });
  base = await makeStudentPackage(join(root, 'pkgs'), 'shapes', '1.0.0', join(root, 'fleet.key'));
  teacher = await makeTeacherPackage(join(root, 'pkgs'), 'shapes-teacher', '1.0.0', fleetKey.privateKeyPem);
  await writeFrames(root, join(root, 'camera'), 12);
  // One fleet key signs the packages, the commands and the promotions: the agent pins it, and it is among --trust.
  server = await FleetServer.start({
    dataDir: join(root, 'fleet'), fleet: FLEET, httpPort: 0, mqttPort: 0, wsPort: false, token: TOKEN,
    trustedKeys: [join(root, 'fleet.pub')], signKey: join(root, 'fleet.key'), tickMs: 200, handlers: webHandlers(),
  });
  await server.context.pushPackage(base.tar);
  await server.context.pushPackage(teacher.tar);
  agent = await Agent.start(validateAgentConfig({
    fleet: FLEET, deviceId: DEVICE, dataDir: join(root, 'agent'), keys: [join(root, 'fleet.pub')],
    broker: { url: server.mqttUrl, reconnectMinMs: 50, reconnectMaxMs: 500 },
    runtime: { trtexec: false },
    benchmark: { warmup: 1, iterations: 5 },
    serve: { source: { replay: join(root, 'camera'), fps: 20, loop: true } },
    capture: { enabled: true, everyN: 1, maxFrames: 100 },
    adapt: {
      trainer: KD_TRAINER_FROM_SOURCE, extraArgs: ['--backend', 'wasm', '--workers', '0', '--calib-images', '4', '--formats', 'onnx'],
      minFrames: 12, epochs: 1, memoryBaseMb: 32,
    },
  }));
  await agent.online;
  await waitFor('the device key pinned', () => server.context.devices.get(DEVICE)?.deviceKey?.keyId === agent!.deviceKey.keyId, 30_000);
}, 300_000);

afterAll(async () => {
  await agent?.stop();
  await server?.close();
  if (root) await rm(root, { recursive: true, force: true });
  console.log(`adapt-pull-agent.test.ts: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}, 60_000);

describe('pull and promote with a real kd-agent', () => {
  it('adapts with activate: false, pulls the device-signed package, promotes it, rolls it out, and rolls back to the fleet\'s base', async () => {
    const a = agent!;
    expect(await rollOut('1.0.0')).toBe('succeeded');
    expect(a.active()?.manifest.version).toBe('1.0.0');
    const pushed = await call('POST', `/api/devices/${DEVICE}/teacher`, { name: 'shapes-teacher', version: '1.0.0' });
    expect(pushed.status, JSON.stringify(pushed.body)).toBe(202);
    await waitFor('the teacher installed', () => a.teachers.current()?.info.version === '1.0.0', 60_000);
    await waitFor('12 captured frames', () => (a.captureInfo()?.frames ?? 0) >= 12, 60_000);

    // The job, started through the fleet's API, keeps its result for review.
    const started = await call('POST', `/api/devices/${DEVICE}/adapt`, { jobId: 'job-1', activate: false, recipe: { minGain: -1 } });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    await waitFor('job-1 to end', () => job()?.final === true, 400_000);
    expect(job(), job()?.message ?? '').toMatchObject({ state: 'succeeded', accepted: true, activated: false, version: ADAPTED, pull: null });
    expect(parseAdaptedVersion(ADAPTED)).toEqual({ base: '1.0.0', deviceId: DEVICE, n: 1 });
    expect(a.active()?.manifest.version).toBe('1.0.0');

    // Pull: the agent PUTs the package it keeps, signed by its own key; the fleet stores it unpromoted.
    const pull = await call('POST', `/api/devices/${DEVICE}/adapt-jobs/job-1/pull`);
    expect(pull.status, JSON.stringify(pull.body)).toBe(202);
    expect(pull.body).toMatchObject({ deviceId: DEVICE, jobId: 'job-1', version: ADAPTED });
    await waitFor('the package pulled', () => job()?.pull?.state === 'pulled', 60_000);
    const pulled = server.context.registry.get('shapes', ADAPTED)!;
    expect(pulled).toMatchObject({ role: 'model', keyId: a.deviceKey.keyId, origin: { deviceId: DEVICE, jobId: 'job-1' }, promotedAt: null });
    expect(job()!.pull).toMatchObject({ commandId: pull.body.commandId, code: null, package: { version: ADAPTED, keyId: a.deviceKey.keyId, sha256: pulled.sha256, promotedAt: null } });
    await waitFor('the agent\'s answer', () => server.context.devices.get(DEVICE)?.lastEvent?.commandId === pull.body.commandId
      && server.context.devices.get(DEVICE)?.lastEvent?.state === 'succeeded', 30_000);
    const devTar = join(root, 'device-signed.tar');
    await writeFile(devTar, new Uint8Array(await (await fetch(server.httpUrl + `/artifacts/shapes/${encodeURIComponent(ADAPTED)}.tar`)).arrayBuffer()));
    expect((await verifyPackage(devTar, { trustedKeys: [a.deviceKey.publicKeyPem] })).keyId).toBe(a.deviceKey.keyId);
    await expect(verifyPackage(devTar, { trustedKeys: [fleetKey.publicKeyPem] })).rejects.toMatchObject({ code: 'PACKAGE_KEY_UNTRUSTED' });
    expect((await call('POST', `/api/devices/${DEVICE}/adapt-jobs/job-1/pull`)).body.error.code).toBe('FLEET_PACKAGE_EXISTS');
    const early = await call('POST', '/api/rollouts', { package: { name: 'shapes', version: ADAPTED }, target: { deviceIds: [DEVICE] }, waves: { canary: { count: 1 }, percents: [100] } });
    expect([early.status, early.body.error?.code]).toEqual([409, 'FLEET_PACKAGE_NOT_PROMOTED']);

    // Promote: re-signed with the fleet key, the files and the adapted version kept.
    const promoted = await call('POST', `/api/models/shapes/${encodeURIComponent(ADAPTED)}/promote`);
    expect(promoted.status, JSON.stringify(promoted.body)).toBe(200);
    expect(promoted.body).toMatchObject({ version: ADAPTED, keyId: fleetKey.keyId, promotedAt: expect.any(Number), origin: { deviceId: DEVICE, jobId: 'job-1' } });
    expect(promoted.body.manifest.files).toEqual(pulled.manifest.files);
    expect(job()!.pull).toMatchObject({ state: 'pulled', package: { keyId: fleetKey.keyId, sha256: promoted.body.sha256, promotedAt: promoted.body.promotedAt } });

    // Rolled out to the same agent, which holds the device-signed copy already: it verifies the fleet's signature and serves it.
    expect(await rollOut(ADAPTED)).toBe('succeeded');
    const active = a.active()!;
    expect(active.manifest.version).toBe(ADAPTED);
    expect(active.manifest.signature?.keyId).toBe(fleetKey.keyId);
    expect(active.stored.info.sha256).toBe(promoted.body.sha256);
    await waitFor('the fleet to see it served', () => server.context.devices.get(DEVICE)?.activeModel?.version === ADAPTED, 30_000);

    // A rollback on the device returns to the fleet's base version.
    const watcher = await mqtt.connectAsync(server.mqttUrl, { protocolVersion: 4, reconnectPeriod: 0 });
    try {
      const rollback = signCommand(makeCommand({ command: 'rollback', id: 'rb-1', deviceId: DEVICE } as CommandFields), fleetKey.privateKeyPem);
      await watcher.publishAsync(fleetTopics(FLEET).cmd(DEVICE), JSON.stringify(rollback), { qos: 1 });
      await waitFor('the rollback', () => server.context.devices.get(DEVICE)?.lastEvent?.commandId === 'rb-1' && server.context.devices.get(DEVICE)?.lastEvent?.state === 'rolled_back', 60_000);
    } finally {
      await watcher.endAsync();
    }
    expect(a.active()!.manifest.version).toBe('1.0.0');
    expect(a.active()!.stored.info.sha256).toBe(base.sha256);
    await waitFor('the fleet to see the base served', () => server.context.devices.get(DEVICE)?.activeModel?.version === '1.0.0', 30_000);
  }, 900_000);
});
