import { readFile } from 'node:fs/promises';
import type { IClientOptions } from 'mqtt';
import { MqttError } from './mqtt-error.js';

/** The message the broker publishes for the agent when its connection dies without a DISCONNECT (MQTT-3.1.2-8). */
export interface MqttWill {
  topic: string;
  payload: Buffer | string;
  /** Default true: the offline status replaces the retained online one. */
  retain?: boolean;
}

/** TLS material for mqtts:// and wss://, read from files when the session starts. */
export interface MqttTlsOptions {
  /** PEM file of the CA(s) that signed the broker's certificate, when it is not a public one. */
  caFile?: string;
  /** PEM client certificate, for brokers that authenticate devices by certificate; needs `keyFile`. */
  certFile?: string;
  /** PEM private key of `certFile`. */
  keyFile?: string;
  /** Passphrase of an encrypted `keyFile`. */
  passphrase?: string;
  /** Default true; false accepts any broker certificate (tests on a lab network only). */
  rejectUnauthorized?: boolean;
  /** Name to check the broker's certificate against, when it differs from the URL's host. */
  servername?: string;
}

/** What {@link buildClientOptions} needs: the connection part of the session options. */
export interface MqttConnectionOptions {
  /** mqtt://, mqtts://, ws:// or wss:// URL of the broker. */
  url: string;
  /** Fixed client id (the device id): the broker finds the persistent session by it. */
  clientId: string;
  username?: string;
  password?: string | Buffer;
  tls?: MqttTlsOptions;
  /**
   * 'auto' (default): MQTT 5, and MQTT 3.1.1 from the next attempt on when the broker refuses 5 as an unacceptable
   * protocol version (aedes, older brokers). 5 or 4 fix the version: a broker that refuses it is an error.
   */
  protocolVersion?: MqttProtocolChoice;
  /** How long the broker keeps the session after the connection drops, in seconds (MQTT 5 only; default 7 days). */
  sessionExpirySec?: number;
  /** Keep-alive interval in seconds (default 30). */
  keepaliveSec?: number;
  /** How long to wait for CONNACK before giving the attempt up, in milliseconds (default 10000). */
  connectTimeoutMs?: number;
  will?: MqttWill;
}

/** The MQTT version a session asks for: 5, 4 (3.1.1), or 'auto' (5, falling back to 3.1.1). */
export type MqttProtocolChoice = 4 | 5 | 'auto';

const PROTOCOLS = ['mqtt:', 'mqtts:', 'ws:', 'wss:'] as const;
const MAX_UINT32 = 0xffff_ffff;

/** Default MQTT 5 session expiry: a device may be off for a week and still get the commands sent meanwhile. */
export const DEFAULT_SESSION_EXPIRY_SEC = 7 * 24 * 3600;

/**
 * Checks the connection options, reads the TLS files and returns mqtt.js options for a persistent session whose
 * reconnects the caller drives (reconnectPeriod 0, resubscribe off). Throws TypeError/RangeError for bad arguments and
 * MqttError 'MQTT_TLS_FILE' for a TLS file that cannot be read.
 */
export async function buildClientOptions(options: MqttConnectionOptions): Promise<IClientOptions> {
  checkUrl(options.url);
  if (typeof options.clientId !== 'string' || options.clientId.length === 0 || Buffer.byteLength(options.clientId) > 65535) {
    throw new TypeError('clientId must be a non-empty string of at most 65535 bytes');
  }
  const choice = options.protocolVersion ?? 'auto';
  if (choice !== 4 && choice !== 5 && choice !== 'auto') {
    throw new RangeError(`protocolVersion must be 4 (MQTT 3.1.1), 5 or 'auto', got ${String(choice)}`);
  }
  const protocolVersion = choice === 'auto' ? 5 : choice;
  const sessionExpirySec = options.sessionExpirySec ?? DEFAULT_SESSION_EXPIRY_SEC;
  checkInteger('sessionExpirySec', sessionExpirySec, 0, MAX_UINT32);
  const keepaliveSec = options.keepaliveSec ?? 30;
  checkInteger('keepaliveSec', keepaliveSec, 0, 65535);
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  checkInteger('connectTimeoutMs', connectTimeoutMs, 1, 2 ** 31 - 1);
  if (options.password !== undefined && options.username === undefined && protocolVersion === 4) {
    // MQTT-3.1.2-22: 3.1.1 forbids a password without a user name.
    throw new TypeError('password needs a username under MQTT 3.1.1 (protocolVersion 4)');
  }

  const client: IClientOptions = {
    clientId: options.clientId,
    protocolVersion,
    clean: false,
    keepalive: keepaliveSec,
    connectTimeout: connectTimeoutMs,
    // The session schedules reconnects itself (backoff with jitter) and re-subscribes itself when the session is lost.
    reconnectPeriod: 0,
    resubscribe: false,
    // Offline QoS 0 messages are dropped, not queued; QoS 1 ones go to the disk outbox instead.
    queueQoSZero: false,
  };
  if (protocolVersion === 5) client.properties = { sessionExpiryInterval: sessionExpirySec };
  if (options.username !== undefined) client.username = options.username;
  if (options.password !== undefined) client.password = options.password;
  if (options.will) {
    const { topic, payload, retain } = options.will;
    if (typeof topic !== 'string' || topic.length === 0 || /[+#\0]/.test(topic)) {
      throw new TypeError(`will.topic must be a non-empty topic without wildcards, got ${JSON.stringify(topic)}`);
    }
    client.will = { topic, payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8'), qos: 1, retain: retain ?? true };
  }
  if (options.tls) Object.assign(client, await readTls(options.tls));
  return client;
}

async function readTls(tls: MqttTlsOptions): Promise<Partial<IClientOptions>> {
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    throw new TypeError('tls.certFile and tls.keyFile go together: give both or neither');
  }
  const out: Partial<IClientOptions> = { rejectUnauthorized: tls.rejectUnauthorized ?? true };
  if (tls.caFile !== undefined) out.ca = await readTlsFile('tls.caFile', tls.caFile);
  if (tls.certFile !== undefined) out.cert = await readTlsFile('tls.certFile', tls.certFile);
  if (tls.keyFile !== undefined) out.key = await readTlsFile('tls.keyFile', tls.keyFile);
  if (tls.passphrase !== undefined) (out as { passphrase?: string }).passphrase = tls.passphrase;
  if (tls.servername !== undefined) out.servername = tls.servername;
  return out;
}

async function readTlsFile(field: string, path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new MqttError('MQTT_TLS_FILE', `cannot read ${field} ${path}: ${(error as Error).message}`, { cause: error });
  }
}

function checkUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`url must be a broker URL such as mqtt://host:1883, got ${JSON.stringify(url)}`);
  }
  if (!(PROTOCOLS as readonly string[]).includes(parsed.protocol)) {
    throw new RangeError(`url scheme must be one of ${PROTOCOLS.map((p) => p + '//').join(', ')}, got ${parsed.protocol}//`);
  }
}

function checkInteger(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${value}`);
  }
}
