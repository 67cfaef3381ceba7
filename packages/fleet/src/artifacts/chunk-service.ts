import { EventEmitter } from 'node:events';
import { open } from 'node:fs/promises';
import type { MqttClient } from 'mqtt';
import { DEFAULT_MAX_CHUNK_BYTES, encodeChunkFrame, fleetTopics, parseMessage, parseTopic, type ChunkRequestMessage, type FleetTopics, isReservedDeviceId } from '@kd-edge/core/protocol';
import { silentLogger, type Logger } from '@kd-edge/core/util';
import type { PackageRecord } from '../registry/package-record.js';
import { ByteBudget } from './byte-budget.js';

/** Where the chunk service finds a package by the SHA-256 of its `.tar` (the {@link PackageRegistry} is one). */
export interface ChunkSource {
  getBySha256(sha256: string): Pick<PackageRecord, 'name' | 'version' | 'sha256' | 'size' | 'path'> | undefined;
}

/** The part of an mqtt.js client the chunk service uses. */
export type ChunkClient = Pick<MqttClient, 'subscribeAsync' | 'unsubscribeAsync' | 'publish' | 'on' | 'off'>;

/** Options of {@link ChunkService}. */
export interface ChunkServiceOptions {
  /** A connected mqtt.js client, allowed to read `devices/+/chunks/req` and publish on `models/#`. */
  client: ChunkClient;
  fleet: string;
  /** Packages by SHA-256. */
  source: ChunkSource;
  /** Identical requests (same package, chunk size and index) arriving within this window get one frame (default 100 ms). */
  coalesceMs?: number;
  /** Frame bytes published per second at most, across all downloads (default 8 MiB). */
  bytesPerSecond?: number;
  /** Largest chunk size a request may ask for (default 16 MiB, what agents accept). */
  maxChunkBytes?: number;
  /** Chunks waiting to be sent at most; requests past it are dropped and devices ask again (default 4096). */
  maxQueue?: number;
  /** Publishes awaiting their PUBACK at most (default 16). */
  maxInFlight?: number;
  now?: () => number;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
  logger?: Logger;
}

/** Counters of a {@link ChunkService}, since it started. */
export interface ChunkServiceStats {
  /** Messages received on chunk request topics. */
  requests: number;
  /** Requests refused: not a valid chunk request, another device's id, a service account's name, or a chunk size over the limit. */
  invalid: number;
  /** Requests for a package the registry does not hold. */
  unknown: number;
  /** Chunk indexes asked for, past the end of the package included. */
  indexes: number;
  /** Indexes past the end of the package. */
  outOfRange: number;
  /** Indexes that joined an identical pending one instead of costing a frame. */
  coalesced: number;
  /** Indexes dropped because the queue was full. */
  dropped: number;
  /** Frames published. */
  frames: number;
  /** Bytes of frames published (headers included). */
  bytes: number;
  /** Frames that could not be read or published. */
  failed: number;
}

/** Events of a {@link ChunkService}. */
export interface ChunkServiceEvents {
  /** A frame went out. */
  frame: [{ sha256: string; index: number; bytes: number }];
  /** A request was refused; `reason` says why. */
  invalid: [{ topic: string; reason: string }];
  /** A frame could not be read or published. */
  failed: [{ sha256: string; index: number; error: Error }];
}

interface Job {
  key: string;
  topic: string;
  path: string;
  sha256: string;
  index: number;
  count: number;
  offset: number;
  length: number;
  readyAt: number;
}

function positive(value: number | undefined, fallback: number, name: string, integer: boolean): number {
  const v = value ?? fallback;
  if (typeof v !== 'number' || !(integer ? Number.isSafeInteger(v) && v >= 1 : v > 0)) throw new RangeError(`${name} must be ${integer ? 'an integer >= 1' : '> 0'}, got ${String(value)}`);
  return v;
}

/**
 * Answers agents' MQTT chunk requests (`devices/{id}/chunks/req`) with chunk frames on the model's
 * `chunks` topic, for devices that reach only the broker. Every downloading device may use every frame,
 * so identical requests arriving within `coalesceMs` cost one publish; a byte budget per second and a
 * bounded queue keep a fleet-wide rollout from flooding the broker (a device whose chunk is late or
 * dropped asks again after its timeout). Bad requests are counted and reported as events, never thrown.
 * @example
 * const chunks = new ChunkService({ client, fleet: 'lab', source: registry, bytesPerSecond: 4 << 20 });
 * await chunks.start();
 */
export class ChunkService extends EventEmitter<ChunkServiceEvents> {
  readonly #client: ChunkClient;
  readonly #topics: FleetTopics;
  readonly #source: ChunkSource;
  readonly #o: Required<Pick<ChunkServiceOptions, 'coalesceMs' | 'maxChunkBytes' | 'maxQueue' | 'maxInFlight' | 'now' | 'setTimeout' | 'clearTimeout'>>;
  readonly #log: Logger;
  readonly #budget: ByteBudget;
  readonly #queue = new Map<string, Job>(); // in arrival order, so the first job is the earliest ready
  readonly #sending = new Set<string>();
  readonly #stats: ChunkServiceStats = { requests: 0, invalid: 0, unknown: 0, indexes: 0, outOfRange: 0, coalesced: 0, dropped: 0, frames: 0, bytes: 0, failed: 0 };
  #running = false;
  #pumping = false;
  #inFlight = 0;
  #timer: unknown;
  #timerDue = Infinity;

  constructor(options: ChunkServiceOptions) {
    super();
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    if (typeof options.client !== 'object' || options.client === null || typeof options.client.publish !== 'function') {
      throw new TypeError('options.client must be an mqtt.js client');
    }
    if (typeof options.source !== 'object' || options.source === null || typeof options.source.getBySha256 !== 'function') {
      throw new TypeError('options.source must have getBySha256() (a PackageRegistry)');
    }
    this.#client = options.client;
    this.#topics = fleetTopics(options.fleet);
    this.#source = options.source;
    const coalesceMs = options.coalesceMs ?? 100;
    if (!Number.isFinite(coalesceMs) || coalesceMs < 0) throw new RangeError(`options.coalesceMs must be >= 0, got ${String(options.coalesceMs)}`);
    this.#o = {
      coalesceMs,
      maxChunkBytes: positive(options.maxChunkBytes, DEFAULT_MAX_CHUNK_BYTES, 'options.maxChunkBytes', true),
      maxQueue: positive(options.maxQueue, 4096, 'options.maxQueue', true),
      maxInFlight: positive(options.maxInFlight, 16, 'options.maxInFlight', true),
      now: options.now ?? Date.now,
      setTimeout: options.setTimeout ?? ((fn, ms) => setTimeout(fn, ms)),
      clearTimeout: options.clearTimeout ?? ((h) => clearTimeout(h as NodeJS.Timeout)),
    };
    this.#budget = new ByteBudget(positive(options.bytesPerSecond, 8 * 1024 * 1024, 'options.bytesPerSecond', false), this.#o.now);
    this.#log = options.logger ?? silentLogger;
  }

  /** Subscribe to the fleet's chunk requests and start answering them; subscribes again each time the client reconnects. */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    this.#client.on('message', this.#onMessage);
    try {
      await this.#client.subscribeAsync(this.#topics.filters.chunkRequests, { qos: 1 });
    } catch (err) {
      this.#running = false;
      this.#client.off('message', this.#onMessage);
      throw err;
    }
    this.#client.on('connect', this.#onReconnect);
  }

  /** Stop answering: unsubscribe, and forget chunks not yet sent (devices ask again). */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#client.off('message', this.#onMessage);
    this.#client.off('connect', this.#onReconnect);
    this.#clearTimer();
    this.#queue.clear();
    await this.#client.unsubscribeAsync(this.#topics.filters.chunkRequests).catch((err: unknown) => {
      this.#log.debug(`chunk service: unsubscribe failed: ${(err as Error).message}`);
    });
  }

  /** A snapshot of the counters. */
  stats(): ChunkServiceStats {
    return { ...this.#stats };
  }

  /** Chunks waiting to be sent. */
  get queued(): number {
    return this.#queue.size;
  }

  /**
   * Handle one chunk request as if it came from the broker (the embedded broker's publish hook may call
   * this directly). Topics other than chunk requests of this fleet are ignored.
   */
  handleMessage(topic: string, payload: Buffer): void {
    this.#onMessage(topic, payload);
  }

  // Whatever CONNACK's session present says: a broker restored from an older snapshot resumes the session
  // without the subscriptions made since, and mqtt.js subscribes again only when there is no session.
  readonly #onReconnect = (): void => {
    if (!this.#running) return;
    this.#client.subscribeAsync(this.#topics.filters.chunkRequests, { qos: 1 }).then(
      () => this.#log.debug('chunk service: subscribed again after reconnecting'),
      // The connection dropped again: the next connect tries again.
      (err: unknown) => this.#log.warn(`chunk service: could not subscribe again after reconnecting: ${(err as Error).message}`),
    );
  };

  readonly #onMessage = (topic: string, payload: Buffer): void => {
    if (!this.#running || !topic.startsWith(`${this.#topics.root}/devices/`) || !topic.endsWith('/chunks/req')) return;
    this.#stats.requests++;
    let deviceId: string;
    let req: ChunkRequestMessage;
    try {
      const where = parseTopic(topic, this.#topics.fleet);
      if (where.kind !== 'chunk-request') return;
      deviceId = where.deviceId;
      req = parseMessage('chunk-request', payload);
    } catch (err) {
      this.#invalid(topic, (err as Error).message);
      return;
    }
    // A service account is no device (the ACL denies it device topics): such a request came through a broken ACL.
    if (isReservedDeviceId(deviceId)) return this.#invalid(topic, `${deviceId} is a service account, not a device`);
    // The ACL lets a device publish only under its own id; a request naming another device is forged or broken.
    if (req.deviceId !== deviceId) return this.#invalid(topic, `deviceId ${req.deviceId} does not match the topic's ${deviceId}`);
    if (req.chunkSize > this.#o.maxChunkBytes) return this.#invalid(topic, `chunkSize ${req.chunkSize} is over the ${this.#o.maxChunkBytes} allowed`);
    const pkg = this.#source.getBySha256(req.sha256);
    if (pkg === undefined || pkg.name !== req.name || pkg.version !== req.version) {
      this.#stats.unknown++;
      this.#log.debug(`chunk service: ${deviceId} asked for ${req.name}@${req.version} ${req.sha256.slice(0, 12)}, which the registry does not hold`);
      return;
    }
    const count = Math.max(1, Math.ceil(pkg.size / req.chunkSize));
    // Frames go to the asking device's own topic: a shared topic made every publish reach every
    // downloading device, and with devices starting at different moments traffic grew with N² (docs/results.md).
    const topicOut = this.#topics.chunks(pkg.name, pkg.version, deviceId);
    const readyAt = this.#o.now() + this.#o.coalesceMs;
    for (const index of req.indexes) {
      this.#stats.indexes++;
      if (index >= count) {
        this.#stats.outOfRange++;
        continue;
      }
      const key = `${deviceId}:${pkg.sha256}:${req.chunkSize}:${index}`;
      if (this.#queue.has(key) || this.#sending.has(key)) {
        this.#stats.coalesced++;
        continue;
      }
      if (this.#queue.size >= this.#o.maxQueue) {
        this.#stats.dropped++;
        continue;
      }
      const offset = index * req.chunkSize;
      this.#queue.set(key, { key, topic: topicOut, path: pkg.path, sha256: pkg.sha256, index, count, offset, length: Math.min(req.chunkSize, pkg.size - offset), readyAt });
    }
    this.#kick();
  };

  #invalid(topic: string, reason: string): void {
    this.#stats.invalid++;
    this.#log.warn(`chunk service: refused a request on ${topic}: ${reason}`);
    this.emit('invalid', { topic, reason });
  }

  /** Run the pump now if the first job is ready, or arm the timer for when it will be. */
  #kick(): void {
    const first = this.#queue.values().next().value as Job | undefined;
    if (first === undefined || this.#pumping) return;
    const wait = first.readyAt - this.#o.now();
    if (wait <= 0) void this.#pump();
    else this.#arm(wait);
  }

  #arm(ms: number): void {
    const due = this.#o.now() + ms;
    if (this.#timer !== undefined && this.#timerDue <= due) return;
    this.#clearTimer();
    this.#timerDue = due;
    this.#timer = this.#o.setTimeout(() => {
      this.#timer = undefined;
      this.#timerDue = Infinity;
      void this.#pump();
    }, ms);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) this.#o.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerDue = Infinity;
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#running) {
        const job = this.#queue.values().next().value as Job | undefined;
        if (job === undefined) break;
        const wait = job.readyAt - this.#o.now();
        if (wait > 0) {
          this.#arm(wait);
          break;
        }
        if (this.#inFlight >= this.#o.maxInFlight) break; // a PUBACK restarts the pump
        if (!this.#budget.take(job.length)) {
          this.#arm(Math.max(1, this.#budget.waitMs(job.length)));
          break;
        }
        this.#queue.delete(job.key);
        // Requests for this chunk arriving while it is read still get this frame: their devices subscribed before asking.
        this.#sending.add(job.key);
        try {
          await this.#send(job);
        } finally {
          this.#sending.delete(job.key);
        }
      }
    } finally {
      this.#pumping = false;
    }
  }

  async #send(job: Job): Promise<void> {
    let frame: Buffer;
    try {
      const data = Buffer.alloc(job.length);
      const fh = await open(job.path, 'r');
      try {
        const { bytesRead } = await fh.read(data, 0, job.length, job.offset);
        if (bytesRead !== job.length) throw new Error(`read ${bytesRead} of ${job.length} bytes at ${job.offset} of ${job.path}`);
      } finally {
        await fh.close();
      }
      frame = encodeChunkFrame({ sha256: job.sha256, index: job.index, count: job.count, offset: job.offset }, data);
    } catch (err) {
      this.#fail(job, err);
      return;
    }
    if (!this.#running) return;
    this.#inFlight++;
    this.#client.publish(job.topic, frame, { qos: 1 }, (err) => {
      this.#inFlight--;
      if (err) this.#fail(job, err);
      if (this.#running && !this.#pumping) this.#kick();
    });
    this.#stats.frames++;
    this.#stats.bytes += frame.length;
    this.emit('frame', { sha256: job.sha256, index: job.index, bytes: frame.length });
  }

  #fail(job: Job, err: unknown): void {
    this.#stats.failed++;
    const error = err instanceof Error ? err : new Error(String(err));
    this.#log.error(`chunk service: chunk ${job.index} of ${job.sha256.slice(0, 12)} failed: ${error.message}`);
    this.emit('failed', { sha256: job.sha256, index: job.index, error });
  }
}
