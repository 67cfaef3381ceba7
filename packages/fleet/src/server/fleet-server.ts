import { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import { WebSocketServer, createWebSocketStream } from 'ws';
import {
  fleetTopics, loadPrivateKey, loadPublicKey, makeCommand, signCommand, silentLogger,
  type CommandFields, type KeyInput, type Logger,
} from '@kd-edge/core';
import type Database from 'better-sqlite3';
import { artifactPath } from '../artifacts/artifact-path.js';
import { ChunkService } from '../artifacts/chunk-service.js';
import { serveArtifact } from '../artifacts/serve-artifact.js';
import { coreMigrations } from '../db/core-migrations.js';
import { FleetError } from '../db/fleet-error.js';
import { migrate } from '../db/migrate.js';
import { openDatabase } from '../db/open-database.js';
import { DeviceRegistry } from '../devices/device-registry.js';
import { Registry } from '../registry/registry.js';
import type { PackageRecord } from '../registry/package-record.js';
import { RolloutEngine, type RolloutCommand } from '../rollout/rollout-engine.js';
import { ROLLOUT_MIGRATIONS } from '../rollout/rollout-migrations.js';
import type { RolloutSpecInput, RolloutTarget } from '../rollout/rollout-spec.js';
import type { RolloutInfo } from '../rollout/rollout-types.js';
import type { FleetContext } from './fleet-context.js';

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
  /** Private key (PEM file) that signs rollback and downgrade commands. */
  signKey?: string;
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
 * WebSocket) or a client of an external one, the device registry fed by the devices' own messages,
 * the rollout engine ticking once a second, chunk answers for broker-only devices, and one HTTP server
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
      db: Database.Database; client: MqttClient; http: HttpServer; tcp?: TcpServer; ws?: WebSocketServer; wsHttp?: HttpServer;
      aedes?: Aedes; sockets: Set<Socket>; chunks: ChunkService; tick: NodeJS.Timeout; devices: DeviceRegistry; rollouts: RolloutEngine;
      unwatchBroker: () => void;
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
    const topics = fleetTopics(fleet);
    await mkdir(options.dataDir, { recursive: true });
    const trustedKeys: KeyInput[] = [];
    for (const f of options.trustedKeys) trustedKeys.push(await loadPublicKey(f));
    if (trustedKeys.length === 0) throw new FleetError('FLEET_CONFIG', 'trustedKeys: at least one public key file is needed to accept packages');
    const signKey = options.signKey === undefined ? undefined : await loadPrivateKey(options.signKey);

    const db = openDatabase(join(options.dataDir, 'fleet.db'));
    migrate(db, [...coreMigrations, ...ROLLOUT_MIGRATIONS]);
    const host = options.host ?? '127.0.0.1';

    // The broker: embedded aedes (TCP + WebSocket) unless an external one is given.
    let aedes: Aedes | undefined;
    let tcp: TcpServer | undefined;
    let wsHttp: HttpServer | undefined;
    let wss: WebSocketServer | undefined;
    const sockets = new Set<Socket>();
    let mqttUrl: string;
    let wsUrl: string | undefined;
    if (options.broker === undefined) {
      aedes = await Aedes.createBroker();
      tcp = createTcpServer((socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        aedes!.handle(socket);
      });
      await listen(tcp, options.mqttPort ?? 1883, host);
      mqttUrl = `mqtt://${host}:${portOf(tcp)}`;
      if (options.wsPort !== false) {
        wsHttp = createHttpServer((_req, res) => res.writeHead(426).end('MQTT over WebSocket only'));
        wss = new WebSocketServer({ server: wsHttp });
        wss.on('connection', (ws) => aedes!.handle(createWebSocketStream(ws) as never));
        await listen(wsHttp, options.wsPort ?? 8083, host);
        wsUrl = `ws://${host}:${portOf(wsHttp)}`;
      }
    } else {
      mqttUrl = options.broker;
    }

    const client = await mqtt.connectAsync(mqttUrl, {
      clientId: `kd-fleet-${fleet}`,
      protocolVersion: options.broker === undefined ? 4 : (options.protocolVersion ?? 5),
      // A persistent session: device events sent while kd-fleet restarts wait in an external broker.
      clean: false,
      ...(options.broker !== undefined && (options.protocolVersion ?? 5) === 5 ? { properties: { sessionExpiryInterval: 7 * 24 * 3600 } } : {}),
      username: options.brokerUsername,
      password: options.brokerPassword,
      reconnectPeriod: RECONNECT_MS,
      // The device registry and the chunk service subscribe again on every connect themselves: mqtt.js
      // would only when CONNACK says there is no session, and then the subscriptions would go out twice.
      resubscribe: false,
    });
    const unwatch = watchBroker(client, mqttUrl, log);

    const http = createHttpServer();
    await listen(http, options.httpPort ?? 8080, host);
    const httpUrl = `http://${host}:${portOf(http)}`;
    const publicUrl = (options.publicUrl ?? httpUrl).replace(/\/$/, '');

    const registry = new Registry(db, {
      dataDir: options.dataDir, fleet, logger: log,
      publish: (topic, payload, o) => client.publishAsync(topic, payload, o),
    });
    const devices = new DeviceRegistry(db, { fleet, logger: log });
    const sign = (cmd: RolloutCommand): RolloutCommand => (signKey === undefined ? cmd : (signCommand(cmd, signKey) as RolloutCommand));
    const rollouts = new RolloutEngine({
      db,
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
    devices.on('event', (event) => rollouts.onEvent(event.deviceId, event));
    devices.on('bench', (bench) => rollouts.onBench(bench.deviceId, bench));
    await devices.attach(client);
    const chunks = new ChunkService({ client, fleet, source: registry, logger: log, bytesPerSecond: options.chunkBytesPerSecond ?? 64 * 1024 * 1024 });
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
    const unwatchBroker = (): void => {
      unwatch();
      client.off('connect', republish);
    };

    const startedAt = Date.now();
    const context: FleetContext = {
      fleet, registry, devices, rollouts, token: options.token, logger: log,
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
        return rollouts.start({ ...(i as RolloutSpecInput), package: { name, version, sha256: pkg.sha256 } });
      },
      info: () => {
        const all = devices.list();
        return {
          fleet, version: options.version ?? '0.1.0', mqtt: { tcp: mqttUrl, ...(wsUrl ? { ws: wsUrl } : {}) },
          uptimeSec: Math.round((Date.now() - startedAt) / 1000),
          counts: { devices: all.length, online: all.filter((d) => d.online).length, packages: registry.list().length, rollouts: rollouts.list().length },
          auth: { controls: options.token !== undefined },
        };
      },
    };

    const handlers: FleetHandler[] = [(req, res) => serveArtifact(req, res, registry), ...(options.handlers?.(context) ?? [])];
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

    const tick = setInterval(() => void rollouts.tick().catch((err: unknown) => log.error(`rollout tick: ${(err as Error).message}`)), options.tickMs ?? 1000);
    const server = new FleetServer(
      { db, client, http, tcp, ws: wss, wsHttp, aedes, sockets, chunks, tick, devices, rollouts, unwatchBroker },
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
    await p.client.endAsync();
    p.http.closeAllConnections();
    await new Promise<void>((r) => p.http.close(() => r()));
    if (p.wsHttp) {
      for (const c of p.ws?.clients ?? []) c.terminate();
      p.wsHttp.closeAllConnections();
      await new Promise<void>((r) => p.wsHttp!.close(() => r()));
    }
    if (p.tcp) {
      for (const s of p.sockets) s.destroy();
      await new Promise<void>((r) => p.tcp!.close(() => r()));
    }
    if (p.aedes) await new Promise<void>((r) => p.aedes!.close(() => r()));
    p.db.close();
  }
}

/** How long kd-fleet waits between attempts to reach the broker again. */
const RECONNECT_MS = 1000;

/**
 * Logs the broker connection's ups and downs: a warning when it drops (with the error that ended it, if
 * any), each distinct error while it is down once at warn and its repeats at debug (an attempt a second
 * would otherwise flood the log), and one line when it is back, with CONNACK's session present. Returns
 * a function that stops it, so that closing the server is not logged as a lost connection.
 */
function watchBroker(client: MqttClient, url: string, log: Logger): () => void {
  const where = withoutCredentials(url);
  let lastError: Error | undefined;
  let warned = new Set<string>();
  let up = true;
  const onError = (err: Error): void => {
    lastError = err;
    // While connected, the close that follows reports it.
    if (!up && !warned.has(err.message)) {
      warned.add(err.message);
      log.warn(`kd-fleet cannot reach the broker ${where}: ${err.message}`);
    } else {
      log.debug(`broker ${where}: ${err.message}`);
    }
  };
  const onClose = (): void => {
    if (!up) return;
    up = false;
    log.warn(`kd-fleet lost its connection to the broker ${where}${lastError ? `: ${lastError.message}` : ''}; trying again every ${RECONNECT_MS / 1000} s`);
    if (lastError) warned.add(lastError.message);
  };
  const onConnect = (connack: { sessionPresent: boolean }): void => {
    up = true;
    lastError = undefined;
    warned = new Set();
    // session present: false means the broker forgot the session and anything queued for kd-fleet in it.
    log.info(`kd-fleet connected to the broker again at ${where} (session present: ${connack.sessionPresent}); subscribing again`);
  };
  client.on('error', onError);
  client.on('close', onClose);
  client.on('connect', onConnect);
  return () => {
    client.off('error', onError);
    client.off('close', onClose);
    client.off('connect', onConnect);
  };
}

/** The URL without a username or password, for the log. */
function withoutCredentials(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}

function resolveTargets(devices: DeviceRegistry, target: RolloutTarget): string[] {
  if ('deviceIds' in target) return [...target.deviceIds];
  if ('tags' in target) {
    const ids = new Set<string>();
    for (const tag of target.tags) for (const d of devices.list({ tag })) ids.add(d.id);
    return [...ids].sort();
  }
  return devices.list().map((d) => d.id).sort();
}

function deployCommand(
  registry: Registry, rollout: RolloutInfo, deviceId: string, commandId: string, publicUrl: string,
  sign: (cmd: RolloutCommand) => RolloutCommand,
): RolloutCommand {
  const { name, version } = rollout.package;
  const pkg = registry.get(name, version);
  if (pkg === undefined) throw new FleetError('FLEET_NOT_FOUND', `package ${name}@${version} is no longer in the registry`);
  const spec = rollout.spec;
  const where = spec.deploy.transport === 'mqtt'
    ? { mqtt: { chunkSize: 256 * 1024 } }
    : { http: { url: `${publicUrl}${artifactPath(name, version)}` } };
  const cmd = makeCommand({
    command: 'deploy', id: commandId, deviceId, rolloutId: rollout.id,
    package: { name, version, sha256: pkg.sha256, size: pkg.size, ...where },
    manifest: pkg.manifest,
    gates: spec.deploy.gates,
    ...(spec.deploy.benchmark ? { benchmark: spec.deploy.benchmark } : {}),
  } as CommandFields) as RolloutCommand;
  return sign(cmd);
}

function listen(server: HttpServer | TcpServer, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function portOf(server: HttpServer | TcpServer): number {
  return (server.address() as { port: number }).port;
}
