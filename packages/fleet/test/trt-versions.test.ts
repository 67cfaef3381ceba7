// Issue 17, the fleet side: kd-fleet lists the TensorRT versions its devices report (API and CLI, `--plain` for
// `kd-trainer export --trt-versions`), and a rollout whose package has no int8 calibration cache for some targets'
// TensorRT answers with a warning naming them (they build fp16) instead of being refused. A real FleetServer (SQLite,
// HTTP, embedded broker); the devices are MQTT clients that publish retained statuses as kd-agent does.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fleetTopics, generateKeyPair, makeStatus, writeKeyPair, type KeyPair } from '@kd-edge/core';
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { main } from '../src/cli.js';
import { FleetServer } from '../src/server/fleet-server.js';
import { webHandlers } from '../src/server/web-handlers.js';
import { connect, waitFor } from './devices-broker.js';
import { openEvents, type ApiFixture } from './http-helpers.js';
import { makeTrtPackage } from './trt-helpers.js';

const FLEET = 'trt';
const TOKEN = 'trt-t0ken';
const topics = fleetTopics(FLEET);
const NANO = { model: 'NVIDIA Jetson Nano Developer Kit', l4t: '32.7.1' };
const ORIN = { model: 'NVIDIA Jetson AGX Orin Developer Kit', l4t: '36.3.0' };

let root: string;
let key: KeyPair;
let server: FleetServer;
let device: MqttClient;

/** A device's retained status with its TensorRT (null: none) and Jetson facts (null: off Jetson), as kd-agent publishes it. */
async function report(deviceId: string, tensorrt: string | null, jetson: { model: string; l4t: string } | null): Promise<void> {
  const status = makeStatus({
    deviceId, online: true, agentVersion: '0.2.0',
    hardware: {
      arch: jetson ? 'arm64' : 'x64', platform: 'linux', cpus: 4, memTotalMb: 4096, jetson, tensorrt,
      ort: { version: '1.18.0', executionProviders: ['CPUExecutionProvider'] },
    },
    activeModel: null, freeDiskMb: 1000,
  });
  await device.publishAsync(topics.status(deviceId), JSON.stringify(status), { qos: 1, retain: true });
  await waitFor(`${deviceId} reports TensorRT ${String(tensorrt)}`, () => {
    const hw = server.context.devices.get(deviceId)?.status?.hardware;
    return hw !== undefined && (hw.tensorrt ?? null) === tensorrt;
  });
}

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const stdout = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => ((out += String(chunk)), true));
  const stderr = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((err += String(chunk)), true));
  try {
    const code = await main(['node', 'kd-fleet', ...args, '--server', server.httpUrl, '--token', TOKEN]);
    return { code, out, err };
  } finally {
    stdout.mockRestore();
    stderr.mockRestore();
  }
}

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(server.httpUrl + path, {
    method, body: body === undefined ? undefined : JSON.stringify(body),
    headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
  });
  return { status: res.status, body: await res.json() };
}

/** `shapes@version` with TensorRT files for `versions` (see makeTrtPackage), pushed to the fleet. */
async function trtPackage(version: string, versions: string[], single = false): Promise<string> {
  await server.context.pushPackage(await makeTrtPackage(join(root, 'pkgs'), 'shapes', version, versions, key.privateKeyPem, single));
  return version;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-fleet-trt-'));
  key = generateKeyPair();
  await writeKeyPair(key, { privateKeyPath: join(root, 'fleet.key'), publicKeyPath: join(root, 'fleet.pub') });
  server = await FleetServer.start({
    dataDir: join(root, 'fleet'), fleet: FLEET, httpPort: 0, mqttPort: 0, wsPort: false,
    trustedKeys: [join(root, 'fleet.pub')], signKey: join(root, 'fleet.key'), token: TOKEN, tickMs: 50, handlers: webHandlers(),
  });
  device = await connect(server.mqttUrl, { clientId: 'trt-devices' });
}, 60_000);

afterAll(async () => {
  await device?.endAsync(true);
  await server?.close();
  await rm(root, { recursive: true, force: true });
});

describe('the TensorRT versions of the fleet (GET /api/tensorrt-versions, kd-fleet devices trt-versions)', () => {
  it('with no device yet: an empty list, a clear message, and --plain exits 1 with nothing on stdout', async () => {
    const res = await api('GET', '/api/tensorrt-versions');
    expect(res).toEqual({ status: 200, body: { devices: 0, versions: [], withoutTensorrt: 0, notReported: 0, unrecognised: [] } });
    const table = await cli('devices', 'trt-versions');
    expect(table).toEqual({ code: 0, out: 'no device reports a TensorRT version (0 devices: 0 without TensorRT, 0 without a status yet)\n', err: '' });
    const plain = await cli('devices', 'trt-versions', '--plain');
    expect(plain.code).toBe(1);
    expect(plain.out).toBe('');
    expect(plain.err).toBe('kd-fleet: no device reports a TensorRT version (0 devices: 0 without TensorRT, 0 without a status yet)\n');
  });

  it('lists the distinct versions from the statuses, with devices and Jetson models; a device that changes version moves', async () => {
    await report('x86-1', null, null);
    // Devices without TensorRT only: still nothing to export for.
    const plainNone = await cli('devices', 'trt-versions', '--plain');
    expect([plainNone.code, plainNone.out, plainNone.err]).toEqual([1, '', 'kd-fleet: no device reports a TensorRT version (1 device: 1 without TensorRT, 0 without a status yet)\n']);

    await report('nano-1', '8.2.1', NANO);
    await report('nano-2', '8.2.1.8', NANO); // trtexec's four-part spelling counts as 8.2.1
    await report('orin-1', '10.3.0', ORIN);
    await report('odd-1', 'unknown', null);
    const res = await api('GET', '/api/tensorrt-versions');
    expect(res.body).toEqual({
      devices: 5,
      versions: [
        { tensorrt: '8.2.1', devices: 2, deviceIds: ['nano-1', 'nano-2'], reported: ['8.2.1.8'], platforms: [{ jetson: NANO.model, l4t: NANO.l4t, devices: 2 }] },
        { tensorrt: '10.3.0', devices: 1, deviceIds: ['orin-1'], reported: [], platforms: [{ jetson: ORIN.model, l4t: ORIN.l4t, devices: 1 }] },
      ],
      withoutTensorrt: 1,
      notReported: 0,
      unrecognised: [{ tensorrt: 'unknown', deviceIds: ['odd-1'] }],
    });
    expect(await cli('devices', 'trt-versions', '--plain')).toEqual({ code: 0, out: '8.2.1,10.3.0\n', err: '' });
    const table = await cli('devices', 'trt-versions');
    expect(table.code).toBe(0);
    expect(table.out.split('\n')).toEqual([
      'TENSORRT   DEVICES  REPORTED BY',
      `8.2.1      2        ${NANO.model}, L4T ${NANO.l4t} (2)`,
      `10.3.0     1        ${ORIN.model}, L4T ${ORIN.l4t} (1)`,
      'without TensorRT: 1 device; no status yet: 0 devices',
      'not a TensorRT version: "unknown" (odd-1)',
      'export for them: kd-trainer export … --trt-versions 8.2.1,10.3.0',
      '',
    ]);
    // Only the devices of a tag.
    server.context.devices.setTags('orin-1', ['lab']);
    expect((await cli('devices', 'trt-versions', '--plain', '--tag', 'lab')).out).toBe('10.3.0\n');
    expect((await api('GET', '/api/tensorrt-versions?tag=lab')).body.versions.map((v: { tensorrt: string }) => v.tensorrt)).toEqual(['10.3.0']);

    // The Orin is reflashed with an older JetPack: it leaves 10.3.0, which no device reports any more.
    await report('orin-1', '8.2.1', ORIN);
    const after = await api('GET', '/api/tensorrt-versions');
    expect(after.body.versions).toEqual([{
      tensorrt: '8.2.1', devices: 3, deviceIds: ['nano-1', 'nano-2', 'orin-1'], reported: ['8.2.1.8'],
      platforms: [{ jetson: NANO.model, l4t: NANO.l4t, devices: 2 }, { jetson: ORIN.model, l4t: ORIN.l4t, devices: 1 }],
    }]);
    expect((await cli('devices', 'trt-versions', '--plain')).out).toBe('8.2.1\n');
  });
});

describe('a rollout compares the package\'s calibration caches with its targets\' TensorRT versions', () => {
  const targets = ['nano-1', 'nano-2', 'orin-1', 'x86-1'];
  const spec = (version: string) => ({ package: { name: 'shapes', version }, target: { deviceIds: targets }, waves: { canary: { count: 1 }, percents: [100] } });
  const abort = async (id: string): Promise<void> => expect((await api('POST', `/api/rollouts/${id}/abort`, {})).status).toBe(200);

  // A mixed fleet: two devices on 8.2.1, one on 10.3.0, one without TensorRT (whatever the tests above left).
  beforeAll(async () => {
    await report('nano-1', '8.2.1', NANO);
    await report('nano-2', '8.2.1.8', NANO);
    await report('orin-1', '10.3.0', ORIN);
    await report('x86-1', null, null);
  });
  // A device is in one active rollout at a time: end any a failed test left running.
  afterEach(async () => {
    for (const r of server.context.rollouts.list(['running', 'paused', 'awaiting_approval'])) await server.context.rollouts.abort(r.id);
  });

  it('warns, naming the 8.2.1 devices, when the package covers only 10.3.0; starts the rollout all the same', async () => {
    await trtPackage('1.0.0', ['10.3.0']);
    const sse = await openEvents({ url: server.httpUrl } as ApiFixture);
    onTestFinished(() => sse.close());
    const started = await api('POST', '/api/rollouts', spec('1.0.0'));
    expect(started.status).toBe(201);
    expect(started.body.warnings).toHaveLength(1);
    const w = started.body.warnings[0];
    expect(w).toMatchObject({ code: 'FLEET_TRT_NO_CACHE', tensorrt: '8.2.1', devices: ['nano-1', 'nano-2'] });
    expect(w.message).toContain('build fp16');
    expect(w.message).toContain('--trt-versions 8.2.1,10.3.0');
    // The rollout is under way, and its record keeps the warning.
    const shown = await api('GET', `/api/rollouts/${started.body.id as string}`);
    expect(shown.body.rollout).toMatchObject({ state: 'running', warnings: [w] });
    expect((await api('GET', '/api/rollouts')).body.find((r: { id: string }) => r.id === started.body.id).warnings).toEqual([w]);
    // The live stream (the dashboard's) sends the rollout again with it once recorded, and keeps it on later changes.
    await waitFor('the rollout event with its warning', () => sse.of('rollout').some((r) => r.id === started.body.id && r.warnings.length === 1));
    expect(sse.of('rollout').find((r) => r.warnings.length === 1)).toMatchObject({ id: started.body.id, state: 'running', warnings: [w] });
    await abort(started.body.id);
    await waitFor('the aborted rollout event', () => sse.of('rollout').some((r) => r.state === 'aborted'));
    expect(sse.of('rollout').find((r) => r.state === 'aborted').warnings).toEqual([w]);

    // The CLI prints it.
    const out = await cli('rollout', 'start', 'shapes', '1.0.0', '--device', ...targets);
    expect(out.code).toBe(0);
    const [line, warning, ...rest] = out.out.split('\n');
    expect(line).toMatch(/^rollout \w+ started: shapes@1\.0\.0$/);
    expect(warning).toBe(`warning FLEET_TRT_NO_CACHE: ${w.message as string}`);
    expect(rest).toEqual(['']);
    const id = line!.split(' ')[1]!;
    expect((await cli('rollout', 'status', id)).out.split('\n').slice(0, 2)).toEqual([`rollout ${id}: running`, warning]);
    await abort(id);
  });

  it('the single legacy plan is read from the package: 10.3.0 only, the same warning', async () => {
    await trtPackage('1.0.1', ['10.3.0'], true);
    const started = await api('POST', '/api/rollouts', spec('1.0.1'));
    expect(started.status).toBe(201);
    expect(started.body.warnings.map((x: { code: string; tensorrt: string; devices: string[] }) => [x.code, x.tensorrt, x.devices]))
      .toEqual([['FLEET_TRT_NO_CACHE', '8.2.1', ['nano-1', 'nano-2']]]);
    await abort(started.body.id);
  });

  it('no warning when the package has a cache for each version the targets report', async () => {
    await trtPackage('1.1.0', ['8.2.1', '10.3.0']);
    const started = await api('POST', '/api/rollouts', spec('1.1.0'));
    expect(started.status).toBe(201);
    expect(started.body.warnings).toEqual([]);
    expect((await api('GET', `/api/rollouts/${started.body.id as string}`)).body.rollout.warnings).toEqual([]);
    const out = await cli('rollout', 'status', started.body.id);
    expect(out.out).not.toContain('warning');
    await abort(started.body.id);
  });
});
