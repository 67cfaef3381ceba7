// Shared by the adapt- tests: a real FleetServer (embedded aedes, SQLite, API) with a command key, real signed model
// and teacher packages, and MQTT clients playing devices (a retained status, the commands they receive, the retained
// adapt messages an agent publishes).
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  buildPackage, fleetTopics, generateKeyPair, makeAdapt, makeStatus, packDirectory, parseMessage, writeKeyPair,
  type AdaptFields, type CommandMessage, type KeyInput, type KeyPair,
} from '@kd-edge/core';
import mqtt, { type MqttClient } from 'mqtt';
import { vi } from 'vitest';
import { main } from '../src/cli.js';
import { FleetServer } from '../src/server/fleet-server.js';
import { webHandlers } from '../src/server/web-handlers.js';
import { recordingLogger } from './http-helpers.js';
import { makeTestPackage, tempDir, type TestPackage } from './registry-helpers.js';

export const FLEET = 'adapt';
export const TOKEN = 'adapt-test-token';
export const topics = fleetTopics(FLEET);

/** A signed teacher package (manifest `role: "teacher"`), built as `kd-trainer package --role teacher` does. */
export async function makeTeacherPackage(root: string, name: string, version: string, privateKey: KeyInput): Promise<TestPackage> {
  const dir = join(root, `${name}-${version}`);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'model.onnx'), Buffer.alloc(16 * 1024, 7));
  await buildPackage({
    dir, name, version, role: 'teacher', task: 'classify', createdAt: '2026-05-01T12:00:00Z',
    input: { name: 'images', shape: [1, 3, 32, 32], layout: 'NCHW', dtype: 'float32', normalisation: { scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] } },
    output: { name: 'logits', layout: 'logits', shape: [1, 2] },
    names: ['cat', 'dog'],
    privateKey,
  });
  const tar = `${dir}.tar`;
  await packDirectory(dir, tar);
  return { dir, tar, info: { name, version, sha256: createHash('sha256').update(await readFile(tar)).digest('hex') } };
}

/** A device played by an MQTT client: it keeps every command it is sent and publishes what an agent would. */
export interface FakeDevice {
  id: string;
  client: MqttClient;
  /** Commands received, raw JSON as sent (for signature checks), in order. */
  raw: unknown[];
  /** The same, parsed with core's parser. */
  commands: CommandMessage[];
  /** Publish the retained status; `version` is the active model's. */
  status(active?: { name: string; version: string }): Promise<void>;
  /** Publish a retained adapt message built with core's makeAdapt. */
  adapt(fields: Omit<AdaptFields, 'deviceId'>): Promise<void>;
  /** Publish raw bytes, retained, on the device's adapt topic. */
  adaptRaw(payload: string | Buffer): Promise<void>;
}

/** A running fleet with its keys and a few packages. */
export interface AdaptFleet {
  root: string;
  server: FleetServer;
  keys: { fleet: KeyPair; command: KeyPair; stranger: KeyPair };
  model: TestPackage;
  teacher: TestPackage;
  untrustedTeacher: TestPackage;
  log: ReturnType<typeof recordingLogger>;
  device(id: string, tags?: string[]): Promise<FakeDevice>;
  /** A JSON request; `token: null` sends none. */
  call(method: string, path: string, body?: unknown, token?: string | null): Promise<{ status: number; body: any }>;
  /** Run the kd-fleet CLI in process against the server; its exit code and output. */
  cli(...args: string[]): Promise<{ code: number; out: string; err: string }>;
  close(): Promise<void>;
}

/** Start a FleetServer on free ports with a control token and a command key, and build its packages. */
export async function startAdaptFleet(): Promise<AdaptFleet> {
  const { dir: root, cleanup } = await tempDir('kd-fleet-adapt-');
  const keys = { fleet: generateKeyPair(), command: generateKeyPair(), stranger: generateKeyPair() };
  await writeKeyPair(keys.fleet, { privateKeyPath: join(root, 'fleet.key'), publicKeyPath: join(root, 'fleet.pub') });
  await writeKeyPair(keys.command, { privateKeyPath: join(root, 'command.key'), publicKeyPath: join(root, 'command.pub') });
  const [model, teacher, untrustedTeacher] = await Promise.all([
    makeTestPackage(join(root, 'pkgs'), 'shapes', '1.0.0', keys.fleet.privateKeyPem),
    makeTeacherPackage(join(root, 'pkgs'), 'shapes-teacher', '1.0.0', keys.fleet.privateKeyPem),
    makeTeacherPackage(join(root, 'stranger'), 'shapes-teacher', '2.0.0', keys.stranger.privateKeyPem),
  ]);
  const log = recordingLogger();
  const server = await FleetServer.start({
    dataDir: join(root, 'fleet'), fleet: FLEET, httpPort: 0, mqttPort: 0, wsPort: false, token: TOKEN,
    trustedKeys: [join(root, 'fleet.pub')], signKey: join(root, 'command.key'), tickMs: 100_000, logger: log, handlers: webHandlers(),
  });
  const clients: MqttClient[] = [];

  const call: AdaptFleet['call'] = async (method, path, body, token = TOKEN) => {
    const headers: Record<string, string> = {};
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = typeof body === 'object' && body instanceof Uint8Array ? 'application/x-tar' : 'application/json';
    const res = await fetch(server.httpUrl + path, {
      method, headers, body: body === undefined ? undefined : body instanceof Uint8Array ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
  };

  return {
    root, server, keys, model, teacher, untrustedTeacher, log, call,
    async device(id, tags) {
      const client = await mqtt.connectAsync(server.mqttUrl, { clientId: id, protocolVersion: 4, reconnectPeriod: 0 });
      clients.push(client);
      const d: FakeDevice = {
        id, client, raw: [], commands: [],
        async status(active) {
          const msg = makeStatus({
            deviceId: id, online: true, agentVersion: '0.2.0',
            hardware: { arch: 'arm64', platform: 'linux', cpus: 4, memTotalMb: 4096, ort: { version: '1.18.0', executionProviders: ['CPUExecutionProvider'] } },
            activeModel: active ? { ...active, sha256: 'b'.repeat(64), precision: 'fp32', runtime: 'onnxruntime' } : null, freeDiskMb: 1000,
          });
          await client.publishAsync(topics.status(id), JSON.stringify(msg), { qos: 1, retain: true });
        },
        async adapt(fields) {
          await client.publishAsync(topics.adapt(id), JSON.stringify(makeAdapt({ ...fields, deviceId: id } as AdaptFields)), { qos: 1, retain: true });
        },
        async adaptRaw(payload) {
          await client.publishAsync(topics.adapt(id), payload, { qos: 1, retain: true });
        },
      };
      client.on('message', (topic, payload) => {
        if (topic !== topics.cmd(id)) return;
        d.raw.push(JSON.parse(payload.toString('utf8')));
        d.commands.push(parseMessage('cmd', payload));
      });
      await client.subscribeAsync(topics.cmd(id), { qos: 1 });
      await d.status();
      const t0 = Date.now();
      while (server.context.devices.get(id) === undefined) {
        if (Date.now() - t0 > 20_000) throw new Error(`the fleet never saw ${id}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      if (tags) server.context.devices.setTags(id, tags);
      return d;
    },
    async cli(...args) {
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
    },
    async close() {
      for (const c of clients) await c.endAsync(true);
      await server.close();
      await cleanup();
    },
  };
}
