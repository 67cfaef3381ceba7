// Runs the shipped docker/mosquitto configuration on a real Mosquitto for the security tests: throwaway
// certificates from openssl, a password file made by scripts/add-broker-user.sh, the shipped ACL, and
// mosquitto.conf with only its paths and port substituted.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

const run = promisify(execFile);

/** The repository root. */
export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
/** The shipped broker configuration, ACL and user script. */
export const SHIPPED_CONF = join(REPO, 'docker/mosquitto/mosquitto.conf');
export const SHIPPED_ACL = join(REPO, 'docker/mosquitto/acl');
export const ADD_USER_SCRIPT = join(REPO, 'packages/fleet/scripts/add-broker-user.sh');
export const MOSQUITTO = '/usr/sbin/mosquitto';

/** PEM material of a throwaway private CA, a server certificate for 127.0.0.1 and per-device client certificates. */
import { freePort, waitFor } from '../../edge-agent/test/mqtt-brokers.js';
import { makePki, type TestPki } from '../../edge-agent/test/tls-pki.js';

export { makePki, type TestPki };

/** How {@link deriveConfig} adapts the shipped file. */
export interface DeriveOptions {
  /** Port of the TLS listener (8883 in the shipped file), bound to 127.0.0.1. */
  port: number;
  /** Folder holding certs/, data/, passwd and acl in place of /mosquitto/…. */
  dir: string;
  /** Turn on the commented-out client-certificate lines (require_certificate, use_identity_as_username). */
  clientCertificates?: boolean;
}

/**
 * The shipped mosquitto.conf with its paths moved under `dir`, the TLS listener on 127.0.0.1:`port`, and the
 * WebSockets listener left out (Debian's mosquitto 2.0.11 is built without WebSockets). Throws when a line it
 * substitutes is missing, so a change to the shipped file's shape fails the tests instead of passing them vacuously.
 */
export function deriveConfig(text: string, options: DeriveOptions): string {
  const lines = text.split('\n');
  const out: string[] = [];
  let inWebsockets = false;
  const seen = new Set<string>();
  for (const line of lines) {
    if (/^listener\s+8884\b/.test(line)) {
      inWebsockets = true;
      seen.add('ws');
      continue;
    }
    if (inWebsockets) {
      if (/^listener\s/.test(line)) inWebsockets = false;
      else continue;
    }
    if (/^listener\s+8883\s*$/.test(line)) {
      out.push(`listener ${options.port} 127.0.0.1`);
      seen.add('tls');
      continue;
    }
    if (options.clientCertificates === true && /^#(require_certificate|use_identity_as_username) true$/.test(line)) {
      out.push(line.slice(1));
      seen.add(line.slice(1).split(' ')[0]!);
      continue;
    }
    out.push(line
      .replaceAll('/mosquitto/certs/', `${join(options.dir, 'certs')}/`)
      .replaceAll('/mosquitto/config/', `${options.dir}/`)
      .replaceAll('/mosquitto/data/', `${join(options.dir, 'data')}/`));
  }
  const needed = ['tls', 'ws', ...(options.clientCertificates === true ? ['require_certificate', 'use_identity_as_username'] : [])];
  for (const what of needed) if (!seen.has(what)) throw new Error(`shipped mosquitto.conf has no ${what} line to substitute`);
  const derived = out.join('\n');
  if (out.some((line) => !line.startsWith('#') && line.includes('/mosquitto/'))) throw new Error('shipped mosquitto.conf has a /mosquitto/ path the tests do not substitute');
  return derived;
}

/** Adds a user to a password file with the shipped script; returns the password it printed. */
export async function addBrokerUser(passwdFile: string, name: string, password: string, service = false): Promise<string> {
  const { stdout } = await run('sh', [ADD_USER_SCRIPT, ...(service ? ['--service'] : []), passwdFile, name], {
    env: { ...process.env, KD_BROKER_PASSWORD: password },
  });
  return stdout.trim();
}

/** A Mosquitto running the shipped configuration. */
export interface ShippedBroker {
  port: number;
  url: string;
  dir: string;
  pki: TestPki;
  /** Everything Mosquitto logged (log_dest stderr). */
  log(): string;
  /** mqtt.js options that trust the test CA, MQTT 5, no reconnects. */
  options(extra?: IClientOptions): IClientOptions;
  /** Connects as `username` with `password` (the device id as client id, as agents do). */
  connect(username: string | undefined, password?: string, extra?: IClientOptions): Promise<MqttClient>;
  /** As {@link ShippedBroker.connect}, also saying whether the broker resumed a stored session (CONNACK session present). */
  connectSession(username: string, password: string, extra?: IClientOptions): Promise<{ client: MqttClient; sessionPresent: boolean }>;
  /** Stops Mosquitto with SIGTERM (it saves its persistence database) and starts it again on the same port and files. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** Starts Mosquitto with the shipped config and ACL; `users` maps usernames to passwords (kd-fleet and kd-dashboard as service users). */
export async function startShippedBroker(users: Record<string, string>, config: { clientCertificates?: boolean; clientIds?: string[] } = {}): Promise<ShippedBroker> {
  const dir = await mkdtemp(join(tmpdir(), 'kd-security-'));
  // Mosquitto started as root reads its files after dropping to user mosquitto.
  await chmod(dir, 0o755);
  await mkdir(join(dir, 'certs'), { mode: 0o755 });
  await mkdir(join(dir, 'data'));
  await chmod(join(dir, 'data'), 0o777);
  const pki = await makePki(join(dir, 'certs'), config.clientIds ?? []);
  for (const [name, password] of Object.entries(users)) {
    await addBrokerUser(join(dir, 'passwd'), name, password, name === 'kd-fleet' || name === 'kd-dashboard');
  }
  await writeFile(join(dir, 'acl'), await readFile(SHIPPED_ACL), { mode: 0o644 });
  const port = await freePort();
  const confPath = join(dir, 'mosquitto.conf');
  await writeFile(confPath, deriveConfig(await readFile(SHIPPED_CONF, 'utf8'), { port, dir, clientCertificates: config.clientCertificates ?? false }));

  let log = '';
  const launch = async (): Promise<ChildProcess> => {
    const child = spawn(MOSQUITTO, ['-c', confPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    const from = log.length;
    const append = (chunk: Buffer): void => {
      log += chunk.toString();
    };
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail('did not report running within 10 s'), 10_000);
      const onData = (): void => {
        if (/mosquitto version \S+ running/.test(log.slice(from))) {
          cleanup();
          resolve();
        }
      };
      const onExit = (): void => fail(`exited with ${child.exitCode}`);
      function cleanup(): void {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.stderr?.off('data', onData);
        child.off('exit', onExit);
      }
      function fail(why: string): void {
        cleanup();
        child.kill('SIGKILL');
        reject(new Error(`mosquitto ${why}:\n${log}`));
      }
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('exit', onExit);
    });
    return child;
  };
  const stop = async (proc: ChildProcess): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGTERM');
    await exited;
  };
  let child = await launch();

  const options = (extra: IClientOptions = {}): IClientOptions => ({
    protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, ca: pki.ca, ...extra,
  });
  const clients: MqttClient[] = [];
  const open = async (username: string | undefined, password: string | undefined, extra: IClientOptions): Promise<{ client: MqttClient; sessionPresent: boolean }> => {
    const base: IClientOptions = username === undefined ? {} : { username, clientId: username };
    if (password !== undefined) base.password = password;
    const client = mqtt.connect(`mqtts://127.0.0.1:${port}`, options({ ...base, ...extra }));
    clients.push(client);
    // mqtt.js reports a refused CONNECT as an 'error' carrying the CONNACK reason code.
    const sessionPresent = await new Promise<boolean>((resolve, reject) => {
      const refused = (err: Error): void => {
        client.end(true);
        reject(err);
      };
      // A TLS handshake the broker refuses may end in a plain close, without an error.
      const closed = (): void => refused(new Error('connection closed before CONNACK'));
      client.once('error', refused);
      client.once('close', closed);
      client.once('connect', (connack) => {
        client.off('error', refused);
        client.off('close', closed);
        resolve(connack.sessionPresent);
      });
    });
    return { client, sessionPresent };
  };
  return {
    port,
    url: `mqtts://127.0.0.1:${port}`,
    dir,
    pki,
    log: () => log,
    options,
    async connect(username, password, extra = {}) {
      return (await open(username, password, extra)).client;
    },
    connectSession: (username, password, extra = {}) => open(username, password, extra),
    async restart() {
      await stop(child);
      child = await launch();
    },
    async close() {
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
      await stop(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Messages a client receives, in order, with their raw payloads. */
export function inbox(client: MqttClient): Array<{ topic: string; payload: Buffer }> {
  const seen: Array<{ topic: string; payload: Buffer }> = [];
  client.on('message', (topic, payload) => seen.push({ topic, payload }));
  return seen;
}

export { freePort, waitFor };

/** The reason code of a rejected MQTT operation (mqtt.js ErrorWithReasonCode), or 'ok' when it succeeded. */
export async function outcome(operation: Promise<unknown>): Promise<number | 'ok'> {
  try {
    await operation;
    return 'ok';
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'number') return code;
    throw err;
  }
}

