import { EventEmitter } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import mqtt, { type IClientOptions, type IConnackPacket, type IPublishPacket, type MqttClient } from 'mqtt';
import { silentLogger, type Logger } from '@kd-edge/core';
import { Backoff, type BackoffOptions } from './backoff.js';
import { buildClientOptions, type MqttConnectionOptions } from './client-options.js';
import { MqttError } from './mqtt-error.js';
import type { Outbox, OutboxMessage, OutboxSendResult } from './outbox.js';

/** Options of {@link MqttSession}: where and how to connect, what to subscribe to, how to retry, where to queue. */
export interface MqttSessionOptions extends MqttConnectionOptions {
  /** Topic filters subscribed with QoS 1 on every connection. */
  subscriptions?: readonly string[];
  /** Reconnect delays (default base 1 s, max 60 s, factor 2, full jitter). */
  backoff?: BackoffOptions;
  /** Source of the jitter (default Math.random); tests pass a seeded one. */
  random?: () => number;
  /** Disk queue for QoS ≥ 1 messages published while offline; without one they are dropped (and logged). */
  outbox?: Outbox;
  logger?: Logger;
}

/** What a 'connect' event tells. */
export interface MqttConnectInfo {
  /** The broker still had this client's session (subscriptions and messages queued while away). */
  sessionPresent: boolean;
  /** False for the first connection of this session object, true for every later one. */
  reconnect: boolean;
}

/** What a 'reconnecting' event tells: the next attempt and why the last one ended. */
export interface MqttReconnectInfo {
  /** 1 for the first retry after a connection ends. */
  attempt: number;
  delayMs: number;
  lastError: Error | undefined;
}

/** Flags of a received message. */
export interface MqttMessageInfo {
  retain: boolean;
  qos: 0 | 1 | 2;
  dup: boolean;
  /** MQTT 5 publish properties (content type, user properties, …), when the sender set any. */
  properties: IPublishPacket['properties'];
}

/** Options of {@link MqttSession.publish}. */
export interface MqttPublishOptions {
  /** Default 1. QoS ≥ 1 messages are never lost: offline, they wait in the outbox. */
  qos?: 0 | 1 | 2;
  /** Default false. */
  retain?: boolean;
}

/**
 * Where a published message went: 'sent' (acknowledged by the broker for QoS ≥ 1, written for QoS 0), 'queued' (in the
 * outbox, sent in order once connected) or 'dropped' (QoS 0 while offline, or QoS ≥ 1 with no outbox or a full disk).
 */
export type MqttPublishResult = 'sent' | 'queued' | 'dropped';

/** Events of {@link MqttSession}. */
export interface MqttSessionEvents {
  connect: [info: MqttConnectInfo];
  offline: [info: { error: Error | undefined }];
  reconnecting: [info: MqttReconnectInfo];
  message: [topic: string, payload: Buffer, info: MqttMessageInfo];
  error: [error: Error];
}

/** A direct QoS ≥ 1 publish waiting for its PUBACK; `spilled` is set once the message has moved to the outbox. */
interface InFlight {
  topic: string;
  body: Buffer;
  qos: 1 | 2;
  retain: boolean;
  spilled: Promise<MqttPublishResult> | undefined;
}

// Errors of the socket itself: they end a connection attempt and are reported with 'reconnecting', not as 'error'.
const SOCKET_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
]);

/**
 * The agent's MQTT connection: a persistent session (fixed client id, clean false, MQTT 5 session expiry) with a Last
 * Will, QoS 1 subscriptions made again on every connection (a resumed session may lack some), reconnects with exponential backoff and
 * full jitter, and QoS ≥ 1 publishes that go through a disk {@link Outbox} while the broker is out of reach.
 * Failures are events ('error', 'offline', 'reconnecting'); nothing here throws asynchronously.
 * @example
 * const outbox = await Outbox.open('/var/lib/kd-agent/outbox');
 * const session = new MqttSession({ url: 'mqtts://broker:8883', clientId: 'cam-01', outbox,
 *   will: { topic: 'kd/v1/lab/devices/cam-01/status', payload: offlineJson },
 *   subscriptions: ['kd/v1/lab/devices/cam-01/cmd'] });
 * session.on('message', (topic, payload) => handle(topic, payload));
 * await session.start();
 * await session.publish('kd/v1/lab/devices/cam-01/events', Buffer.from(eventJson), { qos: 1 });
 */
export class MqttSession extends EventEmitter<MqttSessionEvents> {
  readonly clientId: string;
  readonly #options: MqttSessionOptions;
  readonly #logger: Logger;
  readonly #backoff: Backoff;
  readonly #outbox: Outbox | undefined;
  // Topics the caller wants, and those the broker's current session is known to hold.
  readonly #wanted = new Set<string>();
  readonly #confirmed = new Set<string>();
  /** This connection's subscription of every wanted filter, while it is under way (settles, never rejects). */
  #resubscribing: Promise<void> = Promise.resolve();
  readonly #pending = new Set<Promise<unknown>>();
  readonly #inFlight = new Set<InFlight>();
  #client: MqttClient | undefined;
  #state: 'idle' | 'running' | 'closing' | 'closed' = 'idle';
  #online = false;
  #connections = 0;
  #lastError: Error | undefined;

  constructor(options: MqttSessionOptions) {
    super();
    this.#options = { ...options };
    this.clientId = options.clientId;
    this.#logger = options.logger ?? silentLogger;
    this.#backoff = new Backoff(options.backoff, options.random);
    this.#outbox = options.outbox;
    for (const topic of options.subscriptions ?? []) this.#wanted.add(checkFilter(topic));
  }

  /** True while a connection is up (CONNACK received, socket not closed). */
  get connected(): boolean {
    return this.#online;
  }

  /** The MQTT version of the current (or next) connection: 5, or 4 after an 'auto' session fell back to 3.1.1. */
  get protocolVersion(): 4 | 5 {
    return this.#client?.options.protocolVersion === 4 || this.#options.protocolVersion === 4 ? 4 : 5;
  }

  /** Topic filters this session keeps subscribed. */
  get subscriptions(): string[] {
    return [...this.#wanted];
  }

  /**
   * Checks the options, reads the TLS files and starts connecting; resolves without waiting for the broker (listen for
   * 'connect'). Rejects with TypeError/RangeError/MqttError on bad options; can be called once.
   */
  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new MqttError('MQTT_CLOSED', 'an MqttSession can be started once');
    this.#state = 'running';
    let clientOptions: IClientOptions;
    try {
      clientOptions = await buildClientOptions(this.#options);
    } catch (error) {
      this.#state = 'closed';
      throw error;
    }
    if (this.#state !== 'running') return;
    const client = mqtt.connect(this.#options.url, clientOptions);
    this.#client = client;
    client.on('connect', (connack) => this.#onConnect(connack));
    client.on('close', () => this.#onClose());
    client.on('error', (error) => this.#onClientError(error));
    client.on('message', (topic, payload, packet) => {
      this.emit('message', topic, payload, {
        retain: packet.retain,
        qos: packet.qos,
        dup: packet.dup,
        properties: packet.properties,
      });
    });
  }

  /**
   * Publishes one message. QoS ≥ 1: sent directly when connected and the outbox is empty, otherwise appended to the
   * outbox (so order is kept) and sent after the older queued ones; a direct publish that fails on the connection is
   * queued too. QoS 0 is best effort. Rejects with MqttError 'MQTT_PUBLISH_REJECTED' when an MQTT 5 broker refuses it
   * (e.g. by ACL) and 'MQTT_CLOSED' after {@link close}.
   */
  async publish(topic: string, payload: Buffer | string, options: MqttPublishOptions = {}): Promise<MqttPublishResult> {
    checkTopic(topic);
    const qos = options.qos ?? 1;
    if (qos !== 0 && qos !== 1 && qos !== 2) throw new RangeError(`qos must be 0, 1 or 2, got ${String(qos)}`);
    const retain = options.retain ?? false;
    const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
    if (this.#state === 'closing' || this.#state === 'closed') {
      throw new MqttError('MQTT_CLOSED', `cannot publish to ${topic}: the session is closed`);
    }
    const client = this.#client;
    if (qos === 0) {
      if (!client || !this.#online) return 'dropped';
      try {
        await client.publishAsync(topic, body, { qos, retain });
        return 'sent';
      } catch (error) {
        this.#logger.debug(`mqtt: QoS 0 publish to ${topic} failed: ${(error as Error).message}`);
        return 'dropped';
      }
    }
    const outboxBusy = this.#outbox !== undefined && (!this.#outbox.isEmpty || this.#outbox.flushing);
    if (!client || !this.#online || outboxBusy) return this.#track(this.#enqueue(topic, body, qos, retain));
    return this.#track(this.#publishDirect(client, topic, body, qos, retain));
  }

  /** Adds topic filters to the session (QoS 1); resolves once the broker granted them, or at once when offline. */
  async subscribe(topics: string | readonly string[]): Promise<void> {
    const list = (typeof topics === 'string' ? [topics] : [...topics]).map(checkFilter);
    for (const topic of list) this.#wanted.add(topic);
    if (!this.#client || !this.#online) return;
    // A filter the connection's own SUBSCRIBE is carrying is confirmed by it, not sent twice.
    await this.#resubscribing;
    if (this.#client && this.#online) await this.#subscribeMissing(this.#client, list);
  }

  /** Removes topic filters from the session; offline, the broker's copy goes the next time the broker keeps no session. */
  async unsubscribe(topics: string | readonly string[]): Promise<void> {
    const list = (typeof topics === 'string' ? [topics] : [...topics]).map(checkFilter);
    for (const topic of list) {
      this.#wanted.delete(topic);
      this.#confirmed.delete(topic);
    }
    if (this.#client && this.#online) await this.#client.unsubscribeAsync(list);
  }

  /**
   * Ends the session: stops reconnecting, sends DISCONNECT (so the broker does not publish the Will: publish the
   * offline status first) after the in-flight QoS ≥ 1 messages are acknowledged, or cuts the socket after `timeoutMs`
   * (default 2000) and moves the unacknowledged ones to the outbox. Does not close the outbox. Idempotent.
   */
  async close(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.#state === 'closed' || this.#state === 'closing') return;
    this.#state = 'closing';
    this.#backoff.cancel();
    const client = this.#client;
    if (client) {
      const timeoutMs = options.timeoutMs ?? 2000;
      const deadline = Date.now() + timeoutMs;
      while (this.#online && Object.keys(client.outgoing).length > 0 && Date.now() < deadline) {
        await delay(10);
      }
      // Forced when offline (no socket to carry DISCONNECT) or when PUBACKs are still missing: #onClose then moves
      // those messages to the outbox.
      const force = !this.#online || Object.keys(client.outgoing).length > 0;
      if (force && this.#online) this.#logger.warn(`mqtt: no PUBACK within ${timeoutMs} ms of close; cutting the connection`);
      // Before end() closes mqtt.js's stores, which would leave nothing to take the messages from.
      if (force) this.#spillInFlight();
      await client.endAsync(force).catch((error: Error) => this.#logger.debug(`mqtt: end: ${error.message}`));
    }
    await Promise.allSettled([...this.#pending]);
    this.#online = false;
    this.#state = 'closed';
  }

  async #publishDirect(client: MqttClient, topic: string, body: Buffer, qos: 1 | 2, retain: boolean): Promise<MqttPublishResult> {
    const entry: InFlight = { topic, body, qos, retain, spilled: undefined };
    this.#inFlight.add(entry);
    try {
      await client.publishAsync(topic, body, { qos, retain });
      return 'sent';
    } catch (error) {
      // The connection dropped before PUBACK: #onClose has already queued the message in the outbox.
      if (entry.spilled) return entry.spilled;
      if (isBrokerRefusal(error)) {
        throw new MqttError('MQTT_PUBLISH_REJECTED', `broker refused the publish to ${topic}: ${(error as Error).message}`, {
          cause: error,
        });
      }
      this.#logger.debug(`mqtt: publish to ${topic} failed (${(error as Error).message}); queueing it`);
      return this.#enqueue(topic, body, qos, retain);
    } finally {
      this.#inFlight.delete(entry);
    }
  }

  async #enqueue(topic: string, body: Buffer, qos: 1 | 2, retain: boolean): Promise<MqttPublishResult> {
    if (!this.#outbox) {
      this.#logger.warn(`mqtt: offline and no outbox: dropped a QoS ${qos} message for ${topic}`);
      return 'dropped';
    }
    try {
      const seq = await this.#outbox.append(topic, body, { qos, retain });
      if (seq === null) return 'dropped';
    } catch (error) {
      this.#emitError(error as Error);
      return 'dropped';
    }
    this.#flushOutbox();
    return 'queued';
  }

  #flushOutbox(): void {
    const outbox = this.#outbox;
    const client = this.#client;
    // size, not isEmpty: an append under way calls back here itself once its file is in place.
    if (!outbox || !client || !this.#online || this.#state !== 'running' || outbox.size === 0) return;
    let stopped = false;
    const send = async (message: OutboxMessage): Promise<OutboxSendResult> => {
      // Offline now: throwing stops the flush and keeps the message for the next connection.
      if (!this.#online || this.#state !== 'running') {
        stopped = true;
        throw new Error('offline');
      }
      try {
        await client.publishAsync(message.topic, message.payload, { qos: message.qos, retain: message.retain });
        return 'sent';
      } catch (error) {
        if (!isBrokerRefusal(error)) {
          stopped = true;
          throw error;
        }
        this.#emitError(
          new MqttError('MQTT_PUBLISH_REJECTED', `broker refused queued message for ${message.topic}: ${(error as Error).message}`, {
            cause: error,
          }),
        );
        return 'rejected';
      }
    };
    void this.#track(outbox.flush(send)).then(() => {
      // Appends that landed after the flush saw an empty queue; not after a failed send (the next connection retries).
      // Looping on isEmpty instead would spin forever on microtasks while an append waits for the disk.
      if (!stopped && outbox.size > 0 && !outbox.flushing) this.#flushOutbox();
    });
  }

  #onConnect(connack: IConnackPacket): void {
    this.#online = true;
    this.#lastError = undefined;
    this.#backoff.reset();
    const sessionPresent = connack.sessionPresent === true;
    // Every filter is subscribed again on every connection, whatever sessionPresent says: a broker that crashed and
    // restored an older snapshot of the session (Mosquitto's autosave) reports it present without the newer
    // subscriptions. Subscribing again to a held filter only replaces it (MQTT-3.8.4-3).
    this.#confirmed.clear();
    const reconnect = this.#connections > 0;
    this.#connections += 1;
    this.#logger.info(`mqtt: connected as ${this.clientId} (session ${sessionPresent ? 'resumed' : 'new'})`);
    const client = this.#client!;
    this.#resubscribing = this.#track(
      this.#subscribeMissing(client, [...this.#wanted]).catch((error: Error) => {
        // Lost with the connection: the topics stay unconfirmed and the next connection subscribes them again.
        if (error instanceof MqttError || this.#online) this.#emitError(error);
        else this.#logger.debug(`mqtt: subscribe cut short: ${error.message}`);
      }),
    );
    this.emit('connect', { sessionPresent, reconnect });
    this.#flushOutbox();
  }

  #onClose(): void {
    const wasOnline = this.#online;
    this.#online = false;
    this.#spillInFlight();
    if (wasOnline) {
      this.#logger.info(`mqtt: connection lost${this.#lastError ? `: ${this.#lastError.message}` : ''}`);
      this.emit('offline', { error: this.#lastError });
    }
    if (this.#state !== 'running' || this.#backoff.pending) return;
    const client = this.#client!;
    const attempt = this.#backoff.attempt + 1;
    const delayMs = this.#backoff.schedule(() => {
      if (this.#state !== 'running') return;
      client.reconnect();
    });
    this.#logger.debug(`mqtt: reconnect attempt ${attempt} in ${delayMs} ms`);
    this.emit('reconnecting', { attempt, delayMs, lastError: this.#lastError });
  }

  /**
   * Moves every QoS ≥ 1 message still waiting for PUBACK out of mqtt.js's memory store: direct publishes into the
   * outbox (in publish order, ahead of anything published after the drop), outbox messages back to their files. The
   * outbox is then the one place unacknowledged messages live, so they survive a restart and are sent once, in order.
   */
  #spillInFlight(): void {
    const client = this.#client;
    if (!client) return;
    for (const entry of this.#inFlight) {
      entry.spilled ??= this.#enqueue(entry.topic, entry.body, entry.qos, entry.retain);
    }
    for (const id of Object.keys(client.outgoing)) {
      try {
        client.removeOutgoingMessage(Number(id));
      } catch (error) {
        this.#logger.debug(`mqtt: could not drop in-flight packet ${id}: ${(error as Error).message}`);
      }
    }
  }

  #onClientError(error: Error): void {
    this.#lastError = error;
    // A string code is the socket's (ECONNREFUSED…), a number a CONNACK's or an MQTT 5 ack's reason code.
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && SOCKET_ERRORS.has(code)) {
      this.#logger.debug(`mqtt: ${error.message}`);
      return;
    }
    if (!this.#online && typeof code === 'number' && UNSUPPORTED_VERSION.has(code) && this.#client?.options.protocolVersion === 5) {
      if ((this.#options.protocolVersion ?? 'auto') === 'auto') {
        this.#fallBackTo311(this.#client);
        return;
      }
      this.#emitError(new MqttError('MQTT_CONNECT_REFUSED', `broker refused MQTT 5 (${error.message}); set the protocol version to 4 (MQTT 3.1.1) or 'auto'`, { cause: error }));
      return;
    }
    if (typeof code === 'number' && !this.#online) {
      // A CONNACK with a failure code: bad credentials, banned, server unavailable.
      this.#emitError(new MqttError('MQTT_CONNECT_REFUSED', `broker refused the connection: ${error.message}`, { cause: error }));
      return;
    }
    this.#emitError(error);
  }

  /** The broker speaks 3.1.1 only: the next attempt (the usual reconnect) asks for 3.1.1, without MQTT 5 properties. */
  #fallBackTo311(client: MqttClient): void {
    client.options.protocolVersion = 4;
    delete client.options.properties;
    if (client.options.will) delete client.options.will.properties;
    this.#logger.warn('mqtt: the broker refused MQTT 5; using MQTT 3.1.1 (no session expiry: the broker keeps the session as it sees fit)');
  }

  async #subscribeMissing(client: MqttClient, topics: readonly string[]): Promise<void> {
    const missing = topics.filter((t) => this.#wanted.has(t) && !this.#confirmed.has(t));
    if (missing.length === 0) return;
    let codes: number[];
    try {
      codes = (await client.subscribeAsync(missing, { qos: 1 })).map((g) => g.qos);
    } catch (error) {
      // mqtt.js rejects the whole call when any filter is refused; the SUBACK still says which ones were granted.
      const granted = (error as { packet?: { granted?: unknown } }).packet?.granted;
      if (!Array.isArray(granted) || granted.length !== missing.length) throw error;
      codes = granted as number[];
    }
    const refused: string[] = [];
    missing.forEach((topic, i) => {
      // MQTT-3.9.3: 0x80 and above are failure codes (3.1.1: only 0x80).
      if (codes[i]! >= 0x80) {
        // An ACL decision: asking again on every reconnect would only repeat the error.
        refused.push(topic);
        this.#wanted.delete(topic);
      }
      else this.#confirmed.add(topic);
    });
    if (refused.length > 0) {
      throw new MqttError('MQTT_SUBSCRIBE_REJECTED', `broker refused the subscription to ${refused.join(', ')}`);
    }
  }

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#pending.add(promise);
    const done = (): void => {
      this.#pending.delete(promise);
    };
    promise.then(done, done);
    return promise;
  }

  #emitError(error: Error): void {
    // An 'error' event without a listener would crash the process; failures here are reported, never fatal.
    if (this.listenerCount('error') > 0) this.emit('error', error);
    else this.#logger.error(`mqtt: ${error.message}`);
  }
}

// CONNACK codes for a protocol version the broker does not speak: 3.1.1's return code 1, MQTT 5's reason code 0x84.
const UNSUPPORTED_VERSION = new Set([1, 0x84]);

/** Broker answered with an MQTT 5 reason code ≥ 0x80 (not authorised, topic invalid, quota exceeded…). */
function isBrokerRefusal(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'number' && code >= 0x80;
}

function checkTopic(topic: string): void {
  // MQTT-3.3.2-2: a topic name carries no wildcards.
  if (typeof topic !== 'string' || topic.length === 0 || /[+#\0]/.test(topic)) {
    throw new TypeError(`topic must be a non-empty topic name without wildcards, got ${JSON.stringify(topic)}`);
  }
}

function checkFilter(topic: string): string {
  if (typeof topic !== 'string' || topic.length === 0 || topic.includes('\0')) {
    throw new TypeError(`topic filter must be a non-empty string, got ${JSON.stringify(topic)}`);
  }
  return topic;
}
