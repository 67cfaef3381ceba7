import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { open, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { silentLogger, type Logger, fsyncDir, writeFileDurable } from '@kd-edge/core';
import { sha256File } from './http-download.js';
import { TransferError } from './transfer-error.js';

/** One chunk as the caller feeds it in: the fields of a decoded frame's header plus its bytes. */
export interface ChunkInput {
  index: number;
  offset: number;
  data: Uint8Array;
  /** SHA-256 of `data` as the sender states it, lower-case hex. */
  chunkSha256: string;
  /** The package's SHA-256; a frame of another package is ignored. */
  sha256?: string;
  /** Chunks in the package; a frame that disagrees is ignored. */
  count?: number;
}

/** What {@link ChunkDownloader.accept} did with a frame. */
export type AcceptResult = 'stored' | 'duplicate' | 'corrupt' | 'ignored';

/** Progress of a chunked download. */
export interface ChunkProgress {
  bytes: number;
  total: number;
  chunks: number;
  count: number;
  /** Frames discarded for a bad hash or shape so far. */
  corrupt: number;
}

/** Options of {@link ChunkDownloader}. */
export interface ChunkDownloaderOptions {
  /** Final path; data goes to `dest.part`, the received-chunk bitmap to `dest.chunks.json`. */
  dest: string;
  /** SHA-256 of the whole file, lower-case hex. */
  sha256: string;
  size: number;
  chunkSize: number;
  /** Ask the fleet for these chunk indexes (at most `maxBatch`); a throw counts as a lost request. */
  request: (indexes: number[]) => void | Promise<void>;
  /** Chunks requested and not yet received, at most (default 8). */
  window?: number;
  /** A requested chunk not received within this is requested again (default 10 000 ms); each further request waits twice as long, up to 8×. */
  timeoutMs?: number;
  /** Requests of one chunk after the first, for timeouts and corrupt copies together, before giving up (default 5). */
  retries?: number;
  /** Indexes per request call (default 64, the protocol's limit). */
  maxBatch?: number;
  /** Write the bitmap after this many new chunks (default 16); a crash costs at most these again. */
  persistEvery?: number;
  /** Aborting stops the download as {@link ChunkDownloader.stop} does. */
  signal?: AbortSignal;
  logger?: Partial<Logger>;
}

/** What a finished chunked download did. */
export interface ChunkDownloadResult {
  path: string;
  size: number;
  sha256: string;
  /** Chunks found already received from an earlier run. */
  resumedChunks: number;
  /** Chunk requests sent by this run, repeats included. */
  requested: number;
  corrupt: number;
}

/** Events of a {@link ChunkDownloader}. */
export interface ChunkDownloaderEvents {
  progress: [ChunkProgress];
  corrupt: [{ index: number; reason: string }];
  request: [number[]];
}

interface ChunkState {
  v: 1;
  sha256: string;
  size: number;
  chunkSize: number;
  count: number;
  /** The bitmap of received chunks, bit i of byte i >> 3 (LSB first), base64. */
  have: string;
}

const SHA256_RE = /^[0-9a-f]{64}$/;

function positiveInt(value: unknown, name: string, fallback?: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || (v as number) < 1) throw new RangeError(`${name} must be an integer >= 1, got ${String(value)}`);
  return v as number;
}

/**
 * Downloads a package sent as chunks (over MQTT, but it knows nothing of MQTT): it asks for what
 * it lacks through `request`, keeping at most `window` chunks outstanding and asking again after
 * `timeoutMs`, checks each fed frame's SHA-256 (a corrupt one is discarded, counted and asked for
 * again), writes it at its offset in `dest.part`, and keeps a bitmap of received chunks beside it
 * (replaced atomically) so a restarted agent asks only for the rest. At the end the whole file's
 * SHA-256 is checked and the part renamed into place.
 * @example
 * const dl = new ChunkDownloader({ dest, sha256, size, chunkSize, request: (indexes) => session.publishChunkRequest(indexes) });
 * session.on('chunk', (frame) => void dl.accept(frame));
 * dl.on('progress', (p) => events.downloading(p.bytes, p.total));
 * const { path } = await dl.run();
 */
export class ChunkDownloader extends EventEmitter<ChunkDownloaderEvents> {
  readonly dest: string;
  readonly count: number;
  readonly #o: Required<Omit<ChunkDownloaderOptions, 'signal' | 'logger'>>;
  readonly #log: Logger;
  readonly #signal: AbortSignal | undefined;
  #have: Uint8Array;
  #received = 0;
  readonly #attempts: Uint16Array;
  readonly #outstanding = new Map<number, number>(); // index → deadline (ms since epoch)
  readonly #writing = new Set<number>();
  readonly #inflight = new Set<Promise<unknown>>();
  #fh: FileHandle | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #settled = false;
  #dirty = 0;
  #persisting: Promise<void> = Promise.resolve();
  #requested = 0;
  #corrupt = 0;
  #resumed = 0;
  #resolve: (r: ChunkDownloadResult) => void = () => {};
  #reject: (err: unknown) => void = () => {};

  constructor(options: ChunkDownloaderOptions) {
    super();
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    if (typeof options.dest !== 'string' || options.dest === '') throw new TypeError('options.dest must be a file path');
    if (typeof options.sha256 !== 'string' || !SHA256_RE.test(options.sha256)) throw new TypeError('options.sha256 must be 64 lower-case hex digits');
    if (!Number.isSafeInteger(options.size) || options.size < 0) throw new RangeError(`options.size must be an integer >= 0, got ${String(options.size)}`);
    if (typeof options.request !== 'function') throw new TypeError('options.request must be a function');
    this.#o = {
      dest: options.dest,
      sha256: options.sha256,
      size: options.size,
      chunkSize: positiveInt(options.chunkSize, 'options.chunkSize'),
      request: options.request,
      window: positiveInt(options.window, 'options.window', 8),
      timeoutMs: positiveInt(options.timeoutMs, 'options.timeoutMs', 10_000),
      retries: options.retries ?? 5,
      maxBatch: Math.min(64, positiveInt(options.maxBatch, 'options.maxBatch', 64)),
      persistEvery: positiveInt(options.persistEvery, 'options.persistEvery', 16),
    };
    if (!Number.isSafeInteger(this.#o.retries) || this.#o.retries < 0) throw new RangeError(`options.retries must be an integer >= 0, got ${String(options.retries)}`);
    this.dest = options.dest;
    this.count = Math.ceil(options.size / this.#o.chunkSize);
    this.#have = new Uint8Array(Math.ceil(this.count / 8));
    this.#attempts = new Uint16Array(this.count);
    this.#log = { ...silentLogger, ...options.logger };
    this.#signal = options.signal;
  }

  get #partPath(): string {
    return `${this.dest}.part`;
  }

  get #statePath(): string {
    return `${this.dest}.chunks.json`;
  }

  #has(i: number): boolean {
    return (this.#have[i >> 3] & (1 << (i & 7))) !== 0;
  }

  #chunkLength(i: number): number {
    return Math.min(this.#o.chunkSize, this.#o.size - i * this.#o.chunkSize);
  }

  /** Chunks received so far (from earlier runs too). */
  get received(): number {
    return this.#received;
  }

  /**
   * Start (or continue, from `dest.chunks.json`) the download; resolves when the verified file is
   * at `dest`. Rejects with TRANSFER_TIMEOUT or TRANSFER_CHUNK_CORRUPT when a chunk fails more
   * than `retries` times, TRANSFER_HASH_MISMATCH when the whole file does not match (part and
   * bitmap deleted), TRANSFER_ABORTED on {@link stop}.
   */
  run(): Promise<ChunkDownloadResult> {
    if (this.#running || this.#settled) return Promise.reject(new Error('ChunkDownloader.run may be called once'));
    this.#running = true;
    const done = new Promise<ChunkDownloadResult>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#start().catch((err: unknown) => this.#fail(err));
    return done;
  }

  async #start(): Promise<void> {
    const o = this.#o;
    if (this.#signal?.aborted === true) throw this.#aborted();
    this.#signal?.addEventListener('abort', this.#onAbort, { once: true });
    const existing = await stat(this.dest).catch(() => undefined);
    if (existing?.size === o.size && (await sha256File(this.dest)).sha256 === o.sha256) {
      this.#resumed = this.count;
      this.#received = this.count;
      return this.#succeed();
    }
    await this.#load();
    const fh = await open(this.#partPath, 'r+');
    if (this.#settled) {
      await fh.close(); // stopped while loading
      return;
    }
    this.#fh = fh;
    this.#emitProgress();
    if (this.#received === this.count) return this.#finish();
    this.#timer = setInterval(() => this.#tick(), Math.max(5, Math.floor(o.timeoutMs / 4)));
    this.#timer.unref?.();
    this.#fill();
  }

  async #load(): Promise<void> {
    const o = this.#o;
    let state: ChunkState | undefined;
    try {
      state = JSON.parse(await readFile(this.#statePath, 'utf8')) as ChunkState;
    } catch {
      state = undefined;
    }
    const partSize = (await stat(this.#partPath).catch(() => undefined))?.size;
    const fits =
      state !== undefined &&
      state.sha256 === o.sha256 &&
      state.size === o.size &&
      state.chunkSize === o.chunkSize &&
      state.count === this.count &&
      partSize === o.size;
    const bits = fits ? Buffer.from(state!.have, 'base64') : undefined;
    if (bits !== undefined && bits.length === this.#have.length) {
      this.#have.set(bits);
      for (let i = 0; i < this.count; i++) if (this.#has(i)) this.#received++;
      this.#resumed = this.#received;
      this.#log.info(`chunk download ${o.sha256.slice(0, 12)}: resuming with ${this.#received} of ${this.count} chunks`);
      return;
    }
    // Start clean: a sparse part of the final size, so chunks land at their offsets in any order.
    const fh = await open(this.#partPath, 'w');
    try {
      await fh.truncate(o.size);
    } finally {
      await fh.close();
    }
    await this.#writeState();
  }

  async #writeState(): Promise<void> {
    const state: ChunkState = {
      v: 1,
      sha256: this.#o.sha256,
      size: this.#o.size,
      chunkSize: this.#o.chunkSize,
      count: this.count,
      have: Buffer.from(this.#have).toString('base64'),
    };
    await writeFileDurable(this.#statePath, JSON.stringify(state));
  }

  /** Queue a bitmap write; the part is synced first so the bitmap never claims bytes still in the page cache. */
  #persist(): Promise<void> {
    this.#dirty = 0;
    const run = this.#persisting.then(async () => {
      await this.#fh?.datasync();
      await this.#writeState();
    });
    this.#persisting = run.catch((err: unknown) => this.#log.warn(`chunk download: could not save the chunk bitmap: ${(err as Error).message}`));
    return run;
  }

  #fill(): void {
    if (this.#settled || this.#fh === undefined) return;
    const free = this.#o.window - this.#outstanding.size;
    if (free <= 0) return;
    const batch: number[] = [];
    for (let i = 0; i < this.count && batch.length < Math.min(free, this.#o.maxBatch); i++) {
      if (this.#has(i) || this.#outstanding.has(i) || this.#writing.has(i)) continue;
      if (this.#attempts[i] > this.#o.retries) {
        this.#fail(new TransferError('TRANSFER_TIMEOUT', `chunk ${i} of ${this.#o.sha256.slice(0, 12)} did not arrive after ${this.#attempts[i]} requests`));
        return;
      }
      batch.push(i);
    }
    if (batch.length === 0) return;
    const now = Date.now();
    for (const i of batch) {
      // Each re-request waits twice as long (up to 8× the timeout): a busy fleet is slow, not gone;
      // with a fixed 10 s, 563 of 1,000 devices rolled out at once gave up (docs/results.md).
      this.#outstanding.set(i, now + this.#o.timeoutMs * Math.min(8, 2 ** this.#attempts[i]!));
      this.#attempts[i]++;
    }
    this.#requested += batch.length;
    this.emit('request', batch);
    try {
      const r = this.#o.request(batch);
      if (r instanceof Promise) r.catch((err: unknown) => this.#log.warn(`chunk download: request failed: ${(err as Error).message}`));
    } catch (err) {
      // A lost request is like lost chunks: the timeout asks again.
      this.#log.warn(`chunk download: request failed: ${(err as Error).message}`);
    }
  }

  #tick(): void {
    const now = Date.now();
    let expired = 0;
    for (const [i, deadline] of this.#outstanding) {
      if (deadline <= now) {
        this.#outstanding.delete(i);
        expired++;
      }
    }
    if (expired > 0) this.#log.debug(`chunk download: ${expired} chunk(s) timed out; asking again`);
    if (this.#dirty > 0) void this.#persist().catch(() => undefined);
    this.#fill();
  }

  /**
   * Feed one decoded frame (core `decodeChunkFrame`'s `{header, data}`, or the flat fields).
   * Frames of another package, or before {@link run} / after the end, are 'ignored'; chunks
   * already held are 'duplicate'; a frame whose data does not match its hash, offset or length
   * is 'corrupt' and asked for again; otherwise it is written and 'stored'.
   */
  accept(frame: ChunkInput | { header: Omit<ChunkInput, 'data'>; data: Uint8Array }): Promise<AcceptResult> {
    // Core's decodeChunkFrame gives {header, data}; take it as it comes.
    const flat: ChunkInput = 'header' in frame ? { ...frame.header, data: frame.data } : frame;
    const p = this.#accept(flat);
    this.#inflight.add(p);
    void p.finally(() => this.#inflight.delete(p)).catch(() => undefined);
    return p;
  }

  async #accept(frame: ChunkInput): Promise<AcceptResult> {
    const o = this.#o;
    if (!this.#running || this.#settled || this.#fh === undefined) return 'ignored';
    if ((frame.sha256 !== undefined && frame.sha256 !== o.sha256) || (frame.count !== undefined && frame.count !== this.count)) return 'ignored';
    const i = frame.index;
    if (!Number.isSafeInteger(i) || i < 0 || i >= this.count) return this.#corruptFrame(-1, `index ${String(i)} is outside 0..${this.count - 1}`);
    if (this.#has(i) || this.#writing.has(i)) return 'duplicate';
    const data = frame.data;
    if (frame.offset !== i * o.chunkSize) return this.#corruptFrame(i, `offset ${frame.offset} is not ${i * o.chunkSize}`);
    if (!(data instanceof Uint8Array) || data.length !== this.#chunkLength(i)) {
      return this.#corruptFrame(i, `length ${String(data?.length)} is not ${this.#chunkLength(i)}`);
    }
    const got = createHash('sha256').update(data).digest('hex');
    if (got !== frame.chunkSha256) return this.#corruptFrame(i, `SHA-256 ${got} is not the stated ${String(frame.chunkSha256)}`);

    this.#writing.add(i);
    try {
      await this.#fh.write(data, 0, data.length, frame.offset);
    } catch (err) {
      this.#writing.delete(i);
      this.#fail(err);
      return 'ignored';
    }
    this.#writing.delete(i);
    if (this.#settled) return 'ignored';
    this.#have[i >> 3] |= 1 << (i & 7);
    this.#received++;
    this.#outstanding.delete(i);
    this.#emitProgress();
    if (this.#received === this.count) {
      void this.#finish();
      return 'stored';
    }
    if (++this.#dirty >= o.persistEvery) void this.#persist().catch(() => undefined);
    this.#fill();
    return 'stored';
  }

  #corruptFrame(i: number, reason: string): AcceptResult {
    this.#corrupt++;
    this.emit('corrupt', { index: i, reason });
    this.#log.warn(`chunk download: discarded chunk ${i}: ${reason}`);
    if (i >= 0) {
      this.#outstanding.delete(i);
      if (this.#attempts[i] > this.#o.retries) {
        this.#fail(new TransferError('TRANSFER_CHUNK_CORRUPT', `chunk ${i} of ${this.#o.sha256.slice(0, 12)} was corrupt ${this.#attempts[i]} times: ${reason}`));
        return 'corrupt';
      }
      this.#fill();
    }
    this.#emitProgress();
    return 'corrupt';
  }

  #emitProgress(): void {
    const last = this.count - 1;
    const bytes = this.#received * this.#o.chunkSize - (this.count > 0 && this.#has(last) ? this.#o.chunkSize - this.#chunkLength(last) : 0);
    this.emit('progress', { bytes, total: this.#o.size, chunks: this.#received, count: this.count, corrupt: this.#corrupt });
  }

  async #finish(): Promise<void> {
    if (this.#settled) return;
    this.#stopTimer();
    try {
      await Promise.all([...this.#inflight]);
      await this.#persisting;
      const fh = this.#fh!;
      this.#fh = undefined;
      await fh.sync();
      await fh.close();
      const got = await sha256File(this.#partPath);
      if (got.sha256 !== this.#o.sha256 || got.size !== this.#o.size) {
        await rm(this.#partPath, { force: true });
        await rm(this.#statePath, { force: true });
        throw new TransferError('TRANSFER_HASH_MISMATCH', `the assembled file has SHA-256 ${got.sha256}; the command says ${this.#o.sha256}`);
      }
      await rename(this.#partPath, this.dest);
      await fsyncDir(dirname(this.dest));
      await rm(this.#statePath, { force: true });
      this.#succeed();
    } catch (err) {
      this.#fail(err);
    }
  }

  #succeed(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#cleanup();
    this.#resolve({ path: this.dest, size: this.#o.size, sha256: this.#o.sha256, resumedChunks: this.#resumed, requested: this.#requested, corrupt: this.#corrupt });
  }

  #fail(err: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#cleanup();
    const fh = this.#fh;
    this.#fh = undefined;
    // Keep what was received for the next run, unless the failure already deleted it.
    void (async () => {
      await this.#persisting;
      if (fh !== undefined) {
        await Promise.all([...this.#inflight]).catch(() => undefined);
        if (!(err instanceof TransferError && err.code === 'TRANSFER_HASH_MISMATCH')) {
          await fh.datasync().catch(() => undefined);
          await this.#writeState().catch(() => undefined);
        }
        await fh.close().catch(() => undefined);
      }
    })().then(() => this.#reject(err));
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #cleanup(): void {
    this.#stopTimer();
    this.#outstanding.clear();
    this.#signal?.removeEventListener('abort', this.#onAbort);
  }

  #aborted(): TransferError {
    return new TransferError('TRANSFER_ABORTED', `chunk download of ${this.#o.sha256.slice(0, 12)} stopped with ${this.#received} of ${this.count} chunks; they are kept for a resume`);
  }

  readonly #onAbort = (): void => this.stop();

  /** Stop asking, save the bitmap, and make {@link run} reject with TRANSFER_ABORTED; the part is kept for a later run. */
  stop(): void {
    this.#fail(this.#aborted());
  }
}
