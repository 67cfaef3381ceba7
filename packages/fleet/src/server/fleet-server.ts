import { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { loadPrivateKey, loadPublicKey, type KeyInput } from '@kd-edge/core/package';
import { fleetTopics, makeCommand, signCommand, type CommandFields } from '@kd-edge/core/protocol';
import { silentLogger, type Logger } from '@kd-edge/core/util';
import type Database from 'better-sqlite3';
import { AdaptError } from '../adapt/adapt-error.js';
import { AdaptJobStore } from '../adapt/adapt-job-store.js';
import { AdaptPulls } from '../adapt/adapt-pulls.js';
import { ADAPT_MIGRATIONS } from '../adapt/adapt-migrations.js';
import { deployCommandFor, DeviceCommands } from '../adapt/device-commands.js';
import { ChunkService } from '../artifacts/chunk-service.js';
import { serveArtifact } from '../artifacts/serve-artifact.js';
import { coreMigrations } from '../db/core-migrations.js';
import { FleetError } from '../db/fleet-error.js';
import { migrate } from '../db/migrate.js';
import { openDatabase } from '../db/open-database.js';
import { DeviceRegistry } from '../devices/device-registry.js';
import { PackageRegistry } from '../registry/package-registry.js';
import type { PackageRecord } from '../registry/package-record.js';
import { RolloutEngine, type RolloutCommand } from '../rollout/rollout-engine.js';
import { ROLLOUT_MIGRATIONS } from '../rollout/rollout-migrations.js';
import { ROLLOUT_WARNING_MIGRATIONS, RolloutWarningStore } from '../rollout/rollout-warnings.js';
import type { RolloutSpecInput, RolloutTarget } from '../rollout/rollout-spec.js';
import type { RolloutInfo } from '../rollout/rollout-types.js';
import { startEmbeddedBroker, type EmbeddedBroker } from './embedded-broker.js';
import { connectFleetClient } from './fleet-client.js';
import type { FleetContext } from './fleet-context.js';
import { listen, portOf } from './listen.js';

/** A request handler of the server: true when it answered. */
export type FleetHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

/** Options of {@link FleetServer.start}. */
export interface FleetServerOptions {
  /** SQLite database, package store. */
  dataDir: string;
  fleet?: string;
  /** HTTP (dashboard, API, artifacts): default 8080 on 127.0.0.1; 0 picks a free port. */
  httpPort?: number;
  host?: string;
  /** Embedded broker's MQTT port (default 1883) and MQTT-over-WebSocket port (default 8083; false: none). */
  mqttPort?: number;
  wsPort?: number | false;
  /** An external broker instead of the embedded one (mqtt://, mqtts://, ws://, wss://). */
  broker?: string;
  brokerUsername?: string;
  brokerPassword?: string;
  /** MQTT version towards an external broker (default 5); the embedded aedes speaks 3.1.1 only. */
  protocolVersion?: 4 | 5;
  /** Bearer token for control requests; without one the API and dashboard are read-only. */
  token?: string;
  /** Public keys (PEM files) packages must be signed by. */
  trustedKeys: string[];
  /**
   * Private key (PEM file) that signs the commands kd-fleet sends, and re-signs the adapted packages an operator
   * promotes (its public key must then be among `trustedKeys`).
   */
  signKey?: string;
  /** How long a pull's one-time upload URL stays valid (ms, default 1 h). */
  adaptUploadTtlMs?: number;
  /** Base URL agents download artifacts from (default: the HTTP server's own URL). */
  publicUrl?: string;
  /** How often the rollout engine advances (ms, default 1000). */
  tickMs?: number;
  /**
   * Bytes per second of MQTT chunk frames kd-fleet publishes, all devices together (default 64 MiB/s).
   * Every device gets its own frames, so a rollout to N devices moves N × the package: at 8 MiB/s
   * (the ChunkService default) 300 devices starved past their chunk timeouts (docs/results.md).
   */
  chunkBytesPerSecond?: number;
  /** Handlers tried after the artifacts and before the 404: the API and the dashboard (see `webHandlers`). */
  handlers?: (context: FleetContext) => FleetHandler[];
  logger?: Logger;
  /** The server's version, for /api/info. */
  version?: string;
}

/** Events of a {@link FleetServer}: failures that did not stop it. */
export interface FleetServerEvents {
  error: [error: Error];
}

/**
 * kd-fleet's server: SQLite state, the package registry, an embedded MQTT broker (aedes, TCP and
 * WebSocket) or a client of an external one, the device registry and the adaptation jobs fed by the
 * devices' own messages, the rollout engine ticking once a second, chunk answers for broker-only devices, and one HTTP server
 * for artifacts (Range), the API and the dashboard. Restarting it on the same data folder carries on
 * every rollout where it was.
 * @example
 * const server = await FleetServer.start({ dataDir: 'fleet', trustedKeys: ['keys/fleet.pub'], token: process.env.KD_FLEET_TOKEN });
 */
export class FleetServer extends EventEmitter<FleetServerEvents> {
  readonly httpUrl: string;
  readonly mqttUrl: string;
  readonly wsUrl: string | undefined;
  readonly context: FleetContext;
  #closed = false;

  private constructor(
    private readonly parts: {
      db: Database.Database; client: MqttClient; http: HttpServer; broker?: EmbeddedBroker; chunks: ChunkService; tick: NodeJS.Timeout;
      devices: DeviceRegistry; rollouts: RolloutEngine; adaptJobs: AdaptJobStore; unwatchBroker: () => void;
    },
    urls: { http: string; mqtt: string; ws?: string },
    context: FleetContext,
  ) {
    super();
    this.httpUrl = urls.http;
    this.mqttUrl = urls.mqtt;
    this.wsUrl = urls.ws;
    this.context = context;
  }

  static async start(options: FleetServerOptions): Promise<FleetServer> {
    const log = options.logger ?? silentLogger;
    const fleet = options.fleet ?? 'default';
    await mkdir(options.dataDir, { recursive: true });
    const { trustedKeys, signKey } = await loadKeys(options);
    const db = openState(options.dataDir);
    const host = options.host ?? '127.0.0.1';

    // The broker: embedded aedes (TCP + WebSocket) unless an external one is given.
    const broker = options.broker === undefined
      ? await startEmbeddedBroker({ host, mqttPort: options.mqttPort ?? 1883, wsPort: options.wsPort ?? 8083 })
      : undefined;
    const mqttUrl = broker?.mqttUrl ?? options.broker!;
    const wsUrl = broker?.wsUrl;
    const { client, unwatch } = await connectFleetClient({
      fleet, url: mqttUrl, external: broker === undefined, protocolVersion: broker === undefined ? (options.protocolVersion ?? 5) : 4,
      username: options.brokerUsername, password: options.brokerPassword, logger: log,
    });

    const http = createHttpServer();
    await listen(http, options.httpPort ?? 8080, host);
    const httpUrl = `http://${host}:${portOf(http)}`;
    const publicUrl = (options.publicUrl ?? httpUrl).replace(/\/$/, '');

    const services = await startServices({
      db, dataDir: options.dataDir, client, fleet, log, publicUrl, signKey, trustedKeys, adaptUploadTtlMs: options.adaptUploadTtlMs,
      chunkBytesPerSecond: options.chunkBytesPerSecond ?? 64 * 1024 * 1024,
    });
    const context: FleetContext = {
      ...fleetContext(options, services, { fleet, trustedKeys, mqtt: { tcp: mqttUrl, ...(wsUrl ? { ws: wsUrl } : {}) }, log }),
      rolloutWarnings: new RolloutWarningStore(db),
    };
    answerRequests(http, [(req, res) => serveArtifact(req, res, services.registry), ...(options.handlers?.(context) ?? [])], log);

    const { rollouts } = services;
    const tick = setInterval(() => void rollouts.tick().catch((err: unknown) => log.error(`rollout tick: ${(err as Error).message}`)), options.tickMs ?? 1000);
    const unwatchBroker = (): void => {
      unwatch();
      services.stopRepublishing();
    };
    const server = new FleetServer(
      { db, client, http, broker, chunks: services.chunks, tick, devices: services.devices, rollouts, adaptJobs: services.adaptJobs, unwatchBroker },
      { http: httpUrl, mqtt: mqttUrl, ws: wsUrl },
      context,
    );
    rollouts.on('error', (err) => server.emit('error', err));
    return server;
  }

  /** Stops the tick, the HTTP server, the MQTT client and the embedded broker, and closes the database. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const p = this.parts;
    clearInterval(p.tick);
    p.unwatchBroker();
    // Unsubscribing waits for the broker's answer, which an unreachable broker never gives: stop trying to
    // reach it first, so that the unsubscribes fail at once instead of holding close() until it is back.
    if (!p.client.connected) await p.client.endAsync(true);
    await p.chunks.stop();
    await p.devices.detach();
    await p.adaptJobs.detach();
    await p.client.endAsync();
    p.http.closeAllConnections();
    await new Promise<void>((r) => p.http.close(() => r()));
    if (p.broker) await p.broker.close();
    p.db.close();
  }
}

/** The trusted public keys packages must be signed by (at least one), and the key that signs commands, if any. */
async function loadKeys(options: FleetServerOptions): Promise<{ trustedKeys: KeyInput[]; signKey: KeyInput | undefined }> {
  const trustedKeys: KeyInput[] = [];
  for (const f of options.trustedKeys) trustedKeys.push(await loadPublicKey(f));
  if (trustedKeys.length === 0) throw new FleetError('FLEET_CONFIG', 'trustedKeys: at least one public key file is needed to accept packages');
  const signKey = options.signKey === undefined ? undefined : await loadPrivateKey(options.signKey);
  return { trustedKeys, signKey };
}

/** The SQLite database in the data folder, migrated to the current schema (core tables, the rollouts', the adaptation jobs'). */
function openState(dataDir: string): Database.Database {
  const db = openDatabase(join(dataDir, 'fleet.db'));
  migrate(db, [...coreMigrations, ...ROLLOUT_MIGRATIONS, ...ROLLOUT_WARNING_MIGRATIONS, ...ADAPT_MIGRATIONS]);
  return db;
}

/** What {@link startServices} needs. */
interface ServicesOptions {
  db: Database.Database;
  /** The package store's folder. */
  dataDir: string;
  client: MqttClient;
  fleet: string;
  log: Logger;
  /** Base URL of the artifacts in deploy commands. */
  publicUrl: string;
  signKey: KeyInput | undefined;
  trustedKeys: KeyInput[];
  adaptUploadTtlMs: number | undefined;
  chunkBytesPerSecond: number;
}

/** The fleet's state and the services on the MQTT client. */
interface Services {
  registry: PackageRegistry;
  devices: DeviceRegistry;
  rollouts: RolloutEngine;
  adaptJobs: AdaptJobStore;
  commands: DeviceCommands;
  pulls: AdaptPulls;
  chunks: ChunkService;
  /** Stops publishing the manifests again on every reconnect. */
  stopRepublishing: () => void;
}

/**
 * The package registry, the device registry feeding the rollout engine, the adaptation jobs, the per-device
 * commands and the chunk service, all on kd-fleet's one MQTT client: the device registry and the job store
 * subscribe, the chunk service starts, and every manifest is published, now and again on every reconnect.
 */
async function startServices(o: ServicesOptions): Promise<Services> {
  const { db, client, fleet, log } = o;
  const registry = new PackageRegistry(db, {
    dataDir: o.dataDir, fleet, logger: log,
    publish: (topic, payload, options) => client.publishAsync(topic, payload, options),
  });
  const devices = new DeviceRegistry(db, { fleet, logger: log });
  const rollouts = rolloutEngine(o, registry, devices);
  devices.on('event', (event) => rollouts.onEvent(event.deviceId, event));
  devices.on('bench', (bench) => rollouts.onBench(bench.deviceId, bench));
  await devices.attach(client);
  const adaptJobs = new AdaptJobStore(db, { fleet, logger: log });
  await adaptJobs.attach(client);
  const topics = fleetTopics(fleet);
  const commands = new DeviceCommands({
    registry, devices, publicUrl: o.publicUrl, logger: log, sign: commandSigner(o.signKey),
    send: async (deviceId, command) => {
      await client.publishAsync(topics.cmd(deviceId), JSON.stringify(command), { qos: 1 });
    },
  });
  const pulls = new AdaptPulls({
    db, registry, devices, adaptJobs, publicUrl: o.publicUrl, logger: log, sign: commandSigner(o.signKey), signKey: o.signKey,
    trustedKeys: o.trustedKeys, ...(o.adaptUploadTtlMs !== undefined ? { uploadTtlMs: o.adaptUploadTtlMs } : {}),
    send: async (deviceId, command) => {
      await client.publishAsync(topics.cmd(deviceId), JSON.stringify(command), { qos: 1 });
    },
  });
  const chunks = new ChunkService({ client, fleet, source: registry, logger: log, bytesPerSecond: o.chunkBytesPerSecond });
  await chunks.start();
  await registry.publishManifests();
  // A broker that crashed comes back without the retained manifests published since its last save.
  const republish = (): void => {
    registry.publishManifests().then(
      (n) => log.debug(`registry: published ${n} manifest(s) again after reconnecting`),
      (err: unknown) => log.warn(`registry: could not publish the manifests again after reconnecting: ${(err as Error).message}`),
    );
  };
  client.on('connect', republish);
  return { registry, devices, rollouts, adaptJobs, commands, pulls, chunks, stopRepublishing: () => client.off('connect', republish) };
}

/** The rollout engine, sending (signed, with a sign key) commands on each device's command topic. */
function rolloutEngine(o: ServicesOptions, registry: PackageRegistry, devices: DeviceRegistry): RolloutEngine {
  const { client, log, publicUrl } = o;
  const topics = fleetTopics(o.fleet);
  const sign = commandSigner(o.signKey);
  return new RolloutEngine({
    db: o.db,
    now: Date.now,
    logger: log,
    sendCommand: async (deviceId, command) => {
      await client.publishAsync(topics.cmd(deviceId), JSON.stringify(command), { qos: 1 });
    },
    deviceOnline: (id) => devices.get(id)?.online === true,
    resolveTargets: (target) => resolveTargets(devices, target),
    makeDeployCommand: (rollout, deviceId, commandId) => deployCommand(registry, rollout, deviceId, commandId, publicUrl, sign),
    makeRollbackCommand: (rollout, deviceId, commandId, fromVersion) =>
      sign(makeCommand({ command: 'rollback', id: commandId, deviceId, rolloutId: rollout.id, fromVersion } as CommandFields) as RolloutCommand),
  });
}

/** Signs a command with kd-fleet's command key; without one, commands go unsigned. */
function commandSigner(signKey: KeyInput | undefined): (cmd: RolloutCommand) => RolloutCommand {
  return (cmd) => (signKey === undefined ? cmd : (signCommand(cmd, signKey) as RolloutCommand));
}

/** The context the API and the dashboard work on: the services, pushing packages, starting rollouts, server facts. */
function fleetContext(
  options: FleetServerOptions, { registry, devices, rollouts, adaptJobs, commands, pulls }: Services,
  { fleet, trustedKeys, mqtt, log }: { fleet: string; trustedKeys: KeyInput[]; mqtt: { tcp: string; ws?: string }; log: Logger },
): FleetContext {
  const startedAt = Date.now();
  return {
    fleet, registry, devices, rollouts, adaptJobs, commands, pulls, token: options.token, logger: log,
    pushPackage: (tarPath: string): Promise<PackageRecord> => registry.push(tarPath, { trustedKeys }),
    startRollout: (input: unknown): string => {
      const i = input as Partial<RolloutSpecInput> & { package?: { name?: string; version?: string } };
      const name = i?.package?.name;
      const version = i?.package?.version;
      if (typeof name !== 'string' || typeof version !== 'string') {
        throw new FleetError('FLEET_BAD_REQUEST', 'package: expected {name, version} of a registry package');
      }
      const pkg = registry.get(name, version);
      if (pkg === undefined) throw new FleetError('FLEET_NOT_FOUND', `package ${name}@${version} is not in the registry (kd-fleet models push)`);
      if (pkg.role === 'teacher') {
        throw new AdaptError(
          'FLEET_ROLLOUT_TEACHER',
          `${name}@${version} is a teacher package: it labels frames for on-device adaptation and is never served, so it is not rolled out; ` +
            'push it to the devices that adapt (POST /api/devices/:id/teacher, kd-fleet devices push-teacher)',
          { field: 'package' },
        );
      }
      AdaptPulls.checkRollable(pkg); // a pulled package is signed by its device only until it is promoted
      return rollouts.start({ ...(i as RolloutSpecInput), package: { name, version, sha256: pkg.sha256 } });
    },
    info: () => {
      const all = devices.list();
      return {
        fleet, version: options.version ?? '0.1.0', mqtt: { ...mqtt },
        uptimeSec: Math.round((Date.now() - startedAt) / 1000),
        counts: { devices: all.length, online: all.filter((d) => d.online).length, packages: registry.list().length, rollouts: rollouts.list().length },
        auth: { controls: options.token !== undefined },
      };
    },
  };
}

/** Answers each request with the first handler that takes it, else 404; a handler's failure is a logged 500. */
function answerRequests(http: HttpServer, handlers: FleetHandler[], log: Logger): void {
  http.on('request', (req, res) => {
    void (async () => {
      for (const h of handlers) if (await h(req, res)) return;
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'FLEET_NOT_FOUND', message: `no route for ${req.method} ${req.url}` } }));
    })().catch((err: unknown) => {
      log.error(`http ${req.method} ${req.url}: ${(err as Error).message}`);
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'FLEET_INTERNAL', message: 'internal error' } }));
      else res.destroy();
    });
  });
}

/** The device ids a rollout targets, resolved once at its start. */
function resolveTargets(devices: DeviceRegistry, target: RolloutTarget): string[] {
  if ('deviceIds' in target) return [...target.deviceIds];
  if ('tags' in target) {
    const ids = new Set<string>();
    for (const tag of target.tags) for (const d of devices.list({ tag })) ids.add(d.id);
    return [...ids].sort();
  }
  return devices.list().map((d) => d.id).sort();
}

/** The deploy command of one device in a rollout: the package by HTTP (from `publicUrl`) or MQTT chunks, signed when kd-fleet has a key. */
function deployCommand(
  registry: PackageRegistry, rollout: RolloutInfo, deviceId: string, commandId: string, publicUrl: string,
  sign: (cmd: RolloutCommand) => RolloutCommand,
): RolloutCommand {
  const { name, version } = rollout.package;
  const pkg = registry.get(name, version);
  if (pkg === undefined) throw new FleetError('FLEET_NOT_FOUND', `package ${name}@${version} is no longer in the registry`);
  const spec = rollout.spec;
  return sign(deployCommandFor(pkg, {
    deviceId, commandId, rolloutId: rollout.id, publicUrl, transport: spec.deploy.transport,
    gates: spec.deploy.gates as Record<string, number> | undefined,
    ...(spec.deploy.benchmark ? { benchmark: spec.deploy.benchmark as Record<string, number> } : {}),
  }));
}
