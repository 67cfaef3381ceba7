import { EventEmitter } from 'node:events';
import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger, type Logger } from '@kd-edge/core';
import { MqttError } from './mqtt-error.js';
import { decodeOutboxRecord, encodeOutboxRecord, peekOutboxTopic, type OutboxRecord } from './outbox-record.js';

/** Bounds and durability of an {@link Outbox}. */
export interface OutboxOptions {
  /** Most messages kept; the oldest is dropped to make room (default 10000). */
  maxMessages?: number;
  /** Most bytes kept on disk, headers included; the oldest are dropped to make room (default 64 MiB). */
  maxBytes?: number;
  /** fsync each file and the folder before a message counts as queued, so it also survives a power cut (default true). */
  fsync?: boolean;
  logger?: Logger;
}

/** A queued message as {@link Outbox.flush} hands it to the sender. */
export interface OutboxMessage extends OutboxRecord {
  /** Position in the queue; files are named after it and sent in its order. */
  seq: number;
}

/** Why a message left the outbox without being sent. */
export type OutboxDropReason = 'overflow' | 'too-large' | 'corrupt' | 'rejected';

/** What {@link Outbox} reports with its 'drop' event. */
export interface OutboxDrop {
  seq: number;
  /** Undefined when the file was too damaged to tell. */
  topic: string | undefined;
  bytes: number;
  reason: OutboxDropReason;
  detail?: string;
}

/** Events of {@link Outbox}. */
export interface OutboxEvents {
  drop: [drop: OutboxDrop];
  error: [error: Error];
}

/**
 * What the sender passed to {@link Outbox.flush} says about one message: 'sent' once the broker acknowledged it,
 * 'rejected' when the broker refused it for good (it is dropped, not retried). Throwing stops the flush and keeps it.
 */
export type OutboxSendResult = 'sent' | 'rejected';

interface Entry {
  seq: number;
  bytes: number;
  topic: string | undefined;
}

const FILE_RE = /^(\d{16})\.msg$/;
const TMP_SUFFIX = '.tmp';

/**
 * A bounded, disk-backed FIFO of reports made while the broker is out of reach: one file per message, named by a
 * zero-padded sequence number and written to a temporary name then renamed, so a killed process leaves whole messages
 * or none. {@link Outbox.flush} sends them in order and deletes each file only after the sender confirms delivery;
 * a new Outbox on the same folder carries on where the last one stopped.
 * @example
 * const outbox = await Outbox.open('/var/lib/kd-agent/outbox', { maxMessages: 1000 });
 * await outbox.append('kd/v1/lab/devices/d1/events', Buffer.from('{}'), { qos: 1, retain: false });
 * await outbox.flush(async (m) => { await client.publishAsync(m.topic, m.payload, { qos: m.qos }); return 'sent'; });
 */
export class Outbox extends EventEmitter<OutboxEvents> {
  readonly dir: string;
  readonly maxMessages: number;
  readonly maxBytes: number;
  readonly #fsync: boolean;
  readonly #logger: Logger;
  // Ascending by seq: only whole files (renamed into place) are listed here.
  readonly #entries: Entry[] = [];
  #bytes = 0;
  #nextSeq: number;
  #dropped = 0;
  #appending = 0;
  #inFlight: number | undefined;
  // Appends run one after the other so that files reach the index in sequence order.
  #appendChain: Promise<unknown> = Promise.resolve();
  #flushing: Promise<number> | undefined;
  #closed = false;

  private constructor(dir: string, options: OutboxOptions, entries: Entry[]) {
    super();
    this.dir = dir;
    this.maxMessages = options.maxMessages ?? 10_000;
    this.maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    this.#fsync = options.fsync ?? true;
    this.#logger = options.logger ?? silentLogger;
    this.#entries = entries;
    this.#bytes = entries.reduce((sum, e) => sum + e.bytes, 0);
    this.#nextSeq = entries.length > 0 ? entries[entries.length - 1]!.seq + 1 : 1;
  }

  /**
   * Opens (creating if needed) the outbox folder, removes half-written temporary files and indexes the messages left
   * by an earlier process; if they exceed the bounds, the oldest are dropped on the first append.
   */
  static async open(dir: string, options: OutboxOptions = {}): Promise<Outbox> {
    if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('dir must be a non-empty path');
    checkPositiveInteger('maxMessages', options.maxMessages);
    checkPositiveInteger('maxBytes', options.maxBytes);
    const logger = options.logger ?? silentLogger;
    try {
      await mkdir(dir, { recursive: true });
      const entries: Entry[] = [];
      for (const name of await readdir(dir)) {
        const path = join(dir, name);
        if (name.endsWith(TMP_SUFFIX)) {
          // A write cut short by a crash: the message never counted as queued, so it goes.
          logger.warn(`outbox: removing unfinished ${name}`);
          await unlink(path).catch(ignoreMissing);
          continue;
        }
        const match = FILE_RE.exec(name);
        if (!match) continue;
        const info = await stat(path);
        entries.push({ seq: Number(match[1]), bytes: info.size, topic: await readTopic(path) });
      }
      entries.sort((a, b) => a.seq - b.seq);
      return new Outbox(dir, options, entries);
    } catch (error) {
      throw new MqttError('MQTT_OUTBOX_IO', `cannot open outbox ${dir}: ${(error as Error).message}`, { cause: error });
    }
  }

  /** Messages waiting on disk. */
  get size(): number {
    return this.#entries.length;
  }

  /** Bytes the waiting messages take on disk. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Messages dropped since this Outbox opened (overflow, too large, damaged or refused by the broker). */
  get dropped(): number {
    return this.#dropped;
  }

  /** True when nothing waits on disk and no append is under way. */
  get isEmpty(): boolean {
    return this.#entries.length === 0 && this.#appending === 0;
  }

  /** True while {@link flush} runs. */
  get flushing(): boolean {
    return this.#flushing !== undefined;
  }

  /**
   * Queues one message durably and resolves with its sequence number once the file is in place, or with null when the
   * message alone exceeds `maxBytes` (it is dropped and reported). Older messages are dropped to respect the bounds.
   */
  append(topic: string, payload: Buffer, options: { qos?: 1 | 2; retain?: boolean } = {}): Promise<number | null> {
    if (typeof topic !== 'string' || topic.length === 0) throw new TypeError('topic must be a non-empty string');
    if (!Buffer.isBuffer(payload)) throw new TypeError('payload must be a Buffer');
    if (this.#closed) return Promise.reject(new MqttError('MQTT_OUTBOX_CLOSED', `outbox ${this.dir} is closed`));
    const record: OutboxRecord = {
      topic,
      payload,
      qos: options.qos ?? 1,
      retain: options.retain ?? false,
      queuedAt: Date.now(),
    };
    this.#appending += 1;
    const result = this.#appendChain.then(() => this.#write(record));
    const settle = (): void => {
      this.#appending -= 1;
    };
    result.then(settle, settle);
    this.#appendChain = result.catch(() => undefined);
    return result;
  }

  /**
   * Sends the waiting messages oldest first through `send`, deleting each file after `send` resolves; stops (keeping the
   * message) at the first throw. Resolves with the number sent. A second call while one runs joins the first; messages
   * appended meanwhile are sent by the same run.
   */
  flush(send: (message: OutboxMessage) => Promise<OutboxSendResult>): Promise<number> {
    if (this.#flushing) return this.#flushing;
    const run = this.#flushLoop(send).finally(() => {
      this.#flushing = undefined;
    });
    this.#flushing = run;
    return run;
  }

  /** Waits for appends under way and refuses new ones; the files stay for the next Outbox on this folder. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#appendChain;
  }

  async #write(record: OutboxRecord): Promise<number | null> {
    const bytes = encodeOutboxRecord(record);
    const seq = this.#nextSeq;
    if (bytes.length > this.maxBytes) {
      this.#nextSeq += 1;
      this.#drop({ seq, topic: record.topic, bytes: bytes.length }, 'too-large', `limit is ${this.maxBytes} bytes`);
      return null;
    }
    await this.#makeRoom(bytes.length);
    this.#nextSeq += 1;
    const path = this.#path(seq);
    const tmp = path + TMP_SUFFIX;
    try {
      const handle = await open(tmp, 'w');
      try {
        await handle.writeFile(bytes);
        if (this.#fsync) await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, path);
      if (this.#fsync) await syncDir(this.dir);
    } catch (error) {
      await unlink(tmp).catch(ignoreMissing);
      throw new MqttError('MQTT_OUTBOX_IO', `cannot queue a message for ${record.topic} in ${this.dir}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    this.#entries.push({ seq, bytes: bytes.length, topic: record.topic });
    this.#bytes += bytes.length;
    return seq;
  }

  async #makeRoom(incoming: number): Promise<void> {
    while (this.#entries.length + 1 > this.maxMessages || this.#bytes + incoming > this.maxBytes) {
      // The message being sent right now is not ours to delete; the bound may be passed by it for a moment.
      const victim = this.#entries.find((e) => e.seq !== this.#inFlight);
      if (!victim) return;
      await unlink(this.#path(victim.seq)).catch(ignoreMissing);
      this.#remove(victim.seq);
      this.#drop(victim, 'overflow', `bounds are ${this.maxMessages} messages / ${this.maxBytes} bytes`);
    }
  }

  async #flushLoop(send: (message: OutboxMessage) => Promise<OutboxSendResult>): Promise<number> {
    let sent = 0;
    while (!this.#closed) {
      const entry = this.#entries[0];
      if (!entry) break;
      this.#inFlight = entry.seq;
      try {
        const path = this.#path(entry.seq);
        let bytes: Buffer;
        try {
          bytes = await readFile(path);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
          this.#remove(entry.seq);
          continue;
        }
        const record = decodeOutboxRecord(bytes);
        if (typeof record === 'string') {
          await unlink(path).catch(ignoreMissing);
          this.#remove(entry.seq);
          this.#drop(entry, 'corrupt', record);
          continue;
        }
        let result: OutboxSendResult;
        try {
          result = await send({ ...record, seq: entry.seq });
        } catch (error) {
          this.#logger.debug(`outbox: flush stopped at ${entry.seq}: ${(error as Error).message}`);
          break;
        }
        await unlink(path).catch(ignoreMissing);
        this.#remove(entry.seq);
        if (result === 'rejected') this.#drop(entry, 'rejected', 'the broker refused it');
        else sent += 1;
      } catch (error) {
        this.#emitError(new MqttError('MQTT_OUTBOX_IO', `outbox flush failed: ${(error as Error).message}`, { cause: error }));
        break;
      } finally {
        this.#inFlight = undefined;
      }
    }
    return sent;
  }

  #remove(seq: number): void {
    const index = this.#entries.findIndex((e) => e.seq === seq);
    if (index < 0) return;
    this.#bytes -= this.#entries[index]!.bytes;
    this.#entries.splice(index, 1);
  }

  #drop(entry: Entry, reason: OutboxDropReason, detail: string): void {
    this.#dropped += 1;
    this.#logger.warn(`outbox: dropped message ${entry.seq} (${entry.topic ?? 'unknown topic'}): ${reason}, ${detail}`);
    this.emit('drop', { seq: entry.seq, topic: entry.topic, bytes: entry.bytes, reason, detail });
  }

  #emitError(error: Error): void {
    // An 'error' event without a listener would throw; failures here are reported, never fatal.
    if (this.listenerCount('error') > 0) this.emit('error', error);
    else this.#logger.error(error.message);
  }

  #path(seq: number): string {
    return join(this.dir, `${String(seq).padStart(16, '0')}.msg`);
  }
}

async function readTopic(path: string): Promise<string | undefined> {
  const handle = await open(path, 'r');
  try {
    const prefix = Buffer.alloc(8);
    const { bytesRead } = await handle.read(prefix, 0, 8, 0);
    if (bytesRead < 8) return undefined;
    const headerLength = Math.min(prefix.readUInt32BE(4), 1 << 20);
    const head = Buffer.alloc(8 + headerLength);
    const read = await handle.read(head, 0, head.length, 0);
    return peekOutboxTopic(head.subarray(0, read.bytesRead));
  } finally {
    await handle.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  // The rename is durable only once the folder's entry is on disk.
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function ignoreMissing(error: NodeJS.ErrnoException): void {
  if (error.code !== 'ENOENT') throw error;
}

function checkPositiveInteger(name: string, value: number | undefined): void {
  if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
    throw new RangeError(`${name} must be an integer >= 1, got ${value}`);
  }
}
