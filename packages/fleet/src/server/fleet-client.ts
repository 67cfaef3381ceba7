import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from '@kd-edge/core/util';

/** How long kd-fleet waits between attempts to reach the broker again. */
const RECONNECT_MS = 1000;

/** How {@link connectFleetClient} reaches the broker. */
export interface FleetClientOptions {
  fleet: string;
  url: string;
  /** 4 for the embedded aedes (MQTT 3.1.1 only), 5 (the default) or 4 for an external broker. */
  protocolVersion: 4 | 5;
  /** An external broker keeps the session a week; the embedded one keeps it in memory anyway. */
  external: boolean;
  username?: string;
  password?: string;
  logger: Logger;
}

/** kd-fleet's MQTT client, and how to stop logging its connection's ups and downs. */
export interface FleetClient {
  client: MqttClient;
  unwatch: () => void;
}

/**
 * Connects kd-fleet's one MQTT client (registry manifests, device reports, chunk answers, commands) with a
 * persistent session, and logs the connection going and coming back (see {@link watchBroker}).
 */
export async function connectFleetClient(options: FleetClientOptions): Promise<FleetClient> {
  const client = await mqtt.connectAsync(options.url, {
    clientId: `kd-fleet-${options.fleet}`,
    protocolVersion: options.protocolVersion,
    // A persistent session: device events sent while kd-fleet restarts wait in an external broker.
    clean: false,
    ...(options.external && options.protocolVersion === 5 ? { properties: { sessionExpiryInterval: 7 * 24 * 3600 } } : {}),
    username: options.username,
    password: options.password,
    reconnectPeriod: RECONNECT_MS,
    // The device registry and the chunk service subscribe again on every connect themselves: mqtt.js
    // would only when CONNACK says there is no session, and then the subscriptions would go out twice.
    resubscribe: false,
  });
  return { client, unwatch: watchBroker(client, options.url, options.logger) };
}

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
