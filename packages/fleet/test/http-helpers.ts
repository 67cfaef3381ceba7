// Shared by the http- tests: a real FleetContext over temporary state (SQLite, a registry data directory,
// a DeviceRegistry fed real protocol messages, a RolloutEngine whose commands are recorded), served by
// node:http on a free port, and a small Server-Sent Events client.
import { request as httpRequest, createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fleetTopics, makeBench, makeEvent, makeStatus, type BenchMessage, type EventState, type Logger } from '@kd-edge/core';
import type Database from 'better-sqlite3';
import { AdaptJobStore } from '../src/adapt/adapt-job-store.js';
import { ADAPT_MIGRATIONS } from '../src/adapt/adapt-migrations.js';
import { DeviceCommands } from '../src/adapt/device-commands.js';
import { coreMigrations } from '../src/db/core-migrations.js';
import { migrate } from '../src/db/migrate.js';
import { openDatabase } from '../src/db/open-database.js';
import { DeviceRegistry } from '../src/devices/device-registry.js';
import { ApiError } from '../src/http/api-error.js';
import { createApiHandler, type ApiHandler, type ApiHandlerOptions } from '../src/http/api-handler.js';
import { PackageRegistry } from '../src/registry/package-registry.js';
import { RolloutEngine, type RolloutCommand } from '../src/rollout/rollout-engine.js';
import { ROLLOUT_MIGRATIONS } from '../src/rollout/rollout-migrations.js';
import type { RolloutTarget } from '../src/rollout/rollout-spec.js';
import type { FleetContext } from '../src/server/fleet-context.js';
import { makeTestPackage, tempDir, testKeys, type TestPackage } from './registry-helpers.js';

export const FLEET = 'lab';
export const TOKEN = 'correct-horse-battery-staple';
const topics = fleetTopics(FLEET);

/** A logger that keeps every line, to check what the server logged (and that it was not told to the client). */
export function recordingLogger(): Logger & { lines: Array<{ level: string; message: string }> } {
  const lines: Array<{ level: string; message: string }> = [];
  const at = (level: string) => (message: string): void => void lines.push({ level, message });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** A running API over a real FleetContext. */
export interface ApiFixture {
  url: string;
  dir: string;
  db: Database.Database;
  ctx: FleetContext;
  api: ApiHandler;
  server: Server;
  logger: ReturnType<typeof recordingLogger>;
  /** Every command the rollout engine handed to sendCommand, and every one the per-device commands sent (teacher pushes, adapt). */
  sent: Array<{ deviceId: string; command: RolloutCommand }>;
  /** The fleet's clock (ms), moved by the test. */
  clock: { t: number };
  /** A device reports its retained status (online, or its will). */
  status(deviceId: string, online?: boolean): void;
  /** A device reports a bench run. */
  /** A bench report with p50 = p95/2 and fps = 1000/p95; `extra` fields (e.g. `tegrastats`) are merged in. */
  bench(deviceId: string, p95: number, ts: string, commandId?: string | null, extra?: Record<string, unknown>): BenchMessage;
  /** A device publishes an event about a command. */
  event(deviceId: string, commandId: string, state: EventState): void;
  /** A signed package `.tar` built in the fixture's directory. */
  makePackage(name: string, version: string, opts?: { untrusted?: boolean; modelSize?: number; root?: string }): Promise<TestPackage>;
  close(): Promise<void>;
}

export interface FixtureOptions {
  /** The control token; `null` for a read-only server. */
  token?: string | null;
  api?: ApiHandlerOptions;
}

/** Build a FleetContext over temporary state and serve its API on 127.0.0.1, port 0. */
export async function startApi(options: FixtureOptions = {}): Promise<ApiFixture> {
  const { dir, cleanup } = await tempDir('kd-fleet-http-');
  const db = openDatabase(join(dir, 'fleet.db'));
  migrate(db, [...coreMigrations, ...ROLLOUT_MIGRATIONS, ...ADAPT_MIGRATIONS]);
  const clock = { t: Date.parse('2026-05-01T12:00:00Z') };
  const now = (): number => clock.t;
  const logger = recordingLogger();
  const registry = new PackageRegistry(db, { dataDir: join(dir, 'data'), now });
  const devices = new DeviceRegistry(db, { fleet: FLEET, now });
  const sent: ApiFixture['sent'] = [];
  let n = 0;
  const rollouts = new RolloutEngine({
    db,
    now,
    sendCommand: async (deviceId, command) => void sent.push({ deviceId, command }),
    deviceOnline: (id) => devices.get(id)?.online ?? false,
    resolveTargets: (target: RolloutTarget) => {
      if ('deviceIds' in target) return target.deviceIds;
      if ('tags' in target) return [...new Set(target.tags.flatMap((tag) => devices.list({ tag }).map((d) => d.id)))];
      return devices.list().map((d) => d.id);
    },
    makeDeployCommand: (rollout, deviceId, commandId) => ({
      v: 1, type: 'cmd', id: commandId, deviceId, rolloutId: rollout.id, command: 'deploy', package: rollout.package,
    }),
    newId: () => `r${++n}`,
  });
  // As FleetServer wires them: device events and bench reports drive the rollouts.
  devices.on('event', (e) => rollouts.onEvent(e.deviceId, e));
  devices.on('bench', (b) => rollouts.onBench(b.deviceId, b));
  const { trusted } = testKeys();
  const adaptJobs = new AdaptJobStore(db, { fleet: FLEET, now });
  const commands = new DeviceCommands({ registry, devices, publicUrl: 'http://fleet.test', send: async (deviceId, command) => void sent.push({ deviceId, command }) });
  const ctx: FleetContext = {
    fleet: FLEET,
    registry,
    devices,
    rollouts,
    adaptJobs,
    commands,
    token: options.token === null ? undefined : (options.token ?? TOKEN),
    logger,
    pushPackage: (tarPath) => registry.push(tarPath, { trustedKeys: [trusted.publicKeyPem] }),
    startRollout: (input) => {
      // As FleetServer does: the client names the package, the registry supplies its hash.
      const i = input as { package?: { name?: unknown; version?: unknown } };
      const name = i.package?.name;
      const version = i.package?.version;
      if (typeof name !== 'string' || typeof version !== 'string') throw new ApiError('FLEET_BAD_REQUEST', 'package: expected {name, version}');
      const pkg = registry.get(name, version);
      if (pkg === undefined) throw new ApiError('FLEET_NOT_FOUND', `package ${name}@${version} is not in the registry`);
      return rollouts.start({ ...(input as object), package: { name, version, sha256: pkg.sha256 } } as Parameters<RolloutEngine['start']>[0]);
    },
    info: () => ({
      version: '0.1.0-test',
      mqtt: { tcp: 'mqtt://127.0.0.1:1883' },
      uptimeSec: 0,
      counts: { devices: devices.list().length, online: devices.list({ online: true }).length, packages: registry.list().length, rollouts: rollouts.list().length },
    }),
  };
  const api = createApiHandler(ctx, { tempDir: dir, ...options.api });
  const server = createServer((req, res) => {
    void api(req, res).then((done) => {
      if (!done) res.writeHead(404, { 'content-type': 'text/plain' }).end('not the API\n');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url, dir, db, ctx, api, server, logger, sent, clock,
    status(deviceId, online = true) {
      const msg = online
        ? makeStatus({
            deviceId, online: true, agentVersion: '0.1.0',
            hardware: { arch: 'arm64', platform: 'linux', cpus: 6, memTotalMb: 7620, ort: { version: '1.18.0', executionProviders: ['CPUExecutionProvider'] } },
            activeModel: null, freeDiskMb: 1000,
          })
        : makeStatus({ deviceId, online: false });
      devices.handleMessage(topics.status(deviceId), Buffer.from(JSON.stringify(msg)));
    },
    bench(deviceId, p95, ts, commandId = null, extra = {}) {
      const msg = makeBench({
        deviceId, commandId, ts,
        model: { name: 'pets', version: '1.0.0', sha256: 'a'.repeat(64), file: 'model.onnx' },
        runtime: 'onnxruntime', executionProvider: 'CPUExecutionProvider', input: { name: 'images', shape: [1, 3, 32, 32] },
        batch: 1, warmup: 1, iterations: 10,
        latencyMs: { min: 1, mean: p95 / 2, p50: p95 / 2, p90: p95 - 1, p95, p99: p95 + 1, max: p95 + 2 },
        throughputFps: 1000 / p95, splitMs: { pre: 0.1, infer: 1, post: 0.1 }, rssMb: 100, cpuLoadPct: 20,
        ...extra,
      });
      devices.handleMessage(topics.bench(deviceId), Buffer.from(JSON.stringify(msg)));
      return msg;
    },
    event(deviceId, commandId, state) {
      const msg = makeEvent({ deviceId, commandId, command: 'deploy', state });
      devices.handleMessage(topics.events(deviceId), Buffer.from(JSON.stringify(msg)));
    },
    makePackage: (name, version, opts = {}) => {
      const keys = testKeys();
      return makeTestPackage(join(dir, opts.root ?? 'src'), name, version, (opts.untrusted ? keys.other : keys.trusted).privateKeyPem, opts.modelSize);
    },
    async close() {
      api.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      db.close();
      await cleanup();
    },
  };
}

/** A JSON request to the fixture; `token: null` sends no Authorization header. */
export async function call(
  fx: ApiFixture,
  method: string,
  path: string,
  options: { body?: unknown; raw?: string | Buffer; token?: string | null; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Headers; body: any }> {
  const headers: Record<string, string> = { ...options.headers };
  const token = options.token === undefined ? TOKEN : options.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | Buffer | undefined = options.raw;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(fx.url + path, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: the test looks at the text
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

export { waitFor } from '../../edge-agent/test/mqtt-brokers.js';

/** One Server-Sent Event as received. */
export interface SseEvent {
  event: string;
  data: any;
}

/** A Server-Sent Events client over node:http that keeps every event and comment it receives. */
export interface SseClient {
  status: number;
  headers: IncomingMessage['headers'];
  events: SseEvent[];
  comments: string[];
  /** Whether the server ended or cut the stream. */
  ended: boolean;
  /** Events of one type. */
  of(event: string): any[];
  /** Stop reading (the server's buffer for this client then fills). */
  pause(): void;
  close(): void;
}

/** Connect to `/api/events` and resolve once the response headers are in. */
export function openEvents(fx: ApiFixture): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${fx.url}/api/events`, { headers: { accept: 'text/event-stream' } }, (res) => {
      const client: SseClient = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        events: [],
        comments: [],
        ended: false,
        of: (event) => client.events.filter((e) => e.event === event).map((e) => e.data),
        pause: () => res.pause(),
        close: () => req.destroy(),
      };
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of frame.split('\n')) {
            if (line.startsWith(':')) client.comments.push(line.slice(1).trim());
            else if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (data.length > 0) client.events.push({ event, data: JSON.parse(data.join('\n')) });
        }
      });
      const ended = (): void => void (client.ended = true);
      res.on('end', ended);
      res.on('close', ended);
      res.on('error', ended);
      resolve(client);
    });
    req.on('error', reject);
    req.end();
  });
}
