import { EventEmitter } from 'node:events';
import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { silentLogger, type Logger } from '@kd-edge/core';
import { checkExtensions, isFrameFile, waiter, type Frame, type FrameSource, type Waiter } from './frame-source.js';

/** Options of {@link DirectoryWatchSource}. */
export interface DirectoryWatchSourceOptions {
  /** The folder to watch. */
  dir: string;
  /** The frames' `source` (default: the folder path). */
  name?: string;
  /** Extensions taken (default jpg, jpeg, png, bmp, webp). */
  extensions?: readonly string[];
  /** A file counts once its size and mtime have not changed for this long (default 150 ms). */
  settleMs?: number;
  /** Scan interval when fs.watch is unavailable or misses events (default 500 ms). */
  pollMs?: number;
  /** Also deliver the images already in the folder at start (default false: only new ones). */
  includeExisting?: boolean;
  /** Delete each file once read (a drop folder that must not fill the disk; default false). */
  removeAfterRead?: boolean;
  /** Files waiting to be read; beyond this the oldest are dropped (default 32). */
  maxQueue?: number;
  /** Use fs.watch (default true); false polls only. */
  watch?: boolean;
  logger?: Logger;
}

/** Events of a {@link DirectoryWatchSource}. */
export interface DirectoryWatchSourceEvents {
  /** A file was dropped because the queue was full, or vanished before it was read. */
  dropped: [{ file: string; reason: 'queue-full' | 'vanished' }];
  /** A scan or read failed; the source keeps going. */
  sourceError: [{ error: Error }];
}

interface Observation {
  size: number;
  mtimeMs: number;
  /** When this size and mtime were first seen. */
  since: number;
}

function checkMs(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RangeError(`${name} must be a finite number of milliseconds >= 0, got ${v}`);
  return v;
}

/**
 * Frames from image files that appear in a folder: fs.watch wakes a scan, a periodic scan covers
 * watchers that miss events (network file systems, inotify limits), and a file is taken only once its
 * size and mtime have held still for `settleMs`, so half-written files are never read. A file written
 * again under the same name (a camera overwriting `latest.jpg`) is a new frame.
 * @example
 * const source = new DirectoryWatchSource({ dir: '/var/lib/kd-agent/frames', removeAfterRead: true });
 * for await (const frame of source) await handle(frame);
 */
export class DirectoryWatchSource extends EventEmitter<DirectoryWatchSourceEvents> implements FrameSource {
  readonly name: string;
  readonly dir: string;
  readonly #extensions: readonly string[];
  readonly #settleMs: number;
  readonly #pollMs: number;
  readonly #includeExisting: boolean;
  readonly #removeAfterRead: boolean;
  readonly #maxQueue: number;
  readonly #useWatch: boolean;
  readonly #log: Logger;
  /** Files not yet taken, by name, with their last size and mtime. */
  readonly #pending = new Map<string, Observation>();
  /** Files taken (or present at start), by name → `size:mtime`, so that only a rewrite is new. */
  readonly #taken = new Map<string, string>();
  readonly #queue: string[] = [];
  #seq = 0;
  #started = false;
  #closed = false;
  #watcher: FSWatcher | undefined;
  #pollTimer: NodeJS.Timeout | undefined;
  #settleTimer: NodeJS.Timeout | undefined;
  #scanning: Promise<void> | undefined;
  #rescan = false;
  #wake: Waiter = waiter();

  constructor(options: DirectoryWatchSourceOptions) {
    super();
    if (typeof options?.dir !== 'string' || options.dir === '') throw new TypeError('dir must be a non-empty string');
    this.dir = resolve(options.dir);
    this.name = options.name ?? this.dir;
    this.#extensions = checkExtensions(options.extensions);
    this.#settleMs = checkMs('settleMs', options.settleMs, 150);
    this.#pollMs = checkMs('pollMs', options.pollMs, 500);
    if (this.#pollMs === 0) throw new RangeError('pollMs must be > 0');
    this.#includeExisting = options.includeExisting ?? false;
    this.#removeAfterRead = options.removeAfterRead ?? false;
    this.#maxQueue = options.maxQueue ?? 32;
    if (!Number.isInteger(this.#maxQueue) || this.#maxQueue < 1) throw new RangeError(`maxQueue must be an integer >= 1, got ${options.maxQueue}`);
    this.#useWatch = options.watch ?? true;
    this.#log = options.logger ?? silentLogger;
  }

  /** Starts watching (the first iteration does this too); rejects when the folder cannot be read. */
  async start(): Promise<void> {
    if (this.#started || this.#closed) return;
    this.#started = true;
    const names = await readdir(this.dir);
    if (!this.#includeExisting) {
      // Present at start = already taken, under their current size and mtime.
      await Promise.all(
        names.filter((n) => isFrameFile(n, this.#extensions)).map(async (n) => {
          const s = await stat(join(this.dir, n)).catch(() => undefined);
          if (s?.isFile()) this.#taken.set(n, `${s.size}:${s.mtimeMs}`);
        }),
      );
    }
    if (this.#closed) return;
    if (this.#useWatch) {
      try {
        this.#watcher = watch(this.dir, { persistent: false }, () => this.#scanSoon());
        this.#watcher.on('error', (e) => {
          this.#log.warn(`frames: watching ${this.dir} failed (${e.message}); polling every ${this.#pollMs} ms`);
          this.#watcher?.close();
          this.#watcher = undefined;
        });
      } catch (e) {
        this.#log.warn(`frames: cannot watch ${this.dir} (${(e as Error).message}); polling every ${this.#pollMs} ms`);
      }
    }
    // Referenced on purpose: it keeps a process that only iterates this source alive.
    this.#pollTimer = setInterval(() => this.#scanSoon(), this.#pollMs);
    this.#scanSoon();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Frame> {
    try {
      yield* this.#frames();
    } finally {
      // A consumer that breaks out of its loop is done with the source.
      await this.close();
    }
  }

  async *#frames(): AsyncGenerator<Frame> {
    await this.start();
    while (!this.#closed) {
      const name = this.#queue.shift();
      if (name === undefined) {
        await this.#wake.promise;
        this.#wake = waiter();
        continue;
      }
      const file = join(this.dir, name);
      let data: Buffer;
      try {
        data = await readFile(file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') this.emit('dropped', { file, reason: 'vanished' });
        else this.emit('sourceError', { error: e as Error });
        continue;
      }
      if (this.#removeAfterRead) {
        await unlink(file).catch((e: Error) => this.emit('sourceError', { error: e }));
      }
      if (this.#closed) return;
      yield { source: this.name, seq: this.#seq++, data, file, receivedAt: Date.now() };
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#watcher?.close();
    clearInterval(this.#pollTimer);
    clearTimeout(this.#settleTimer);
    this.#wake.wake();
    await this.#scanning;
  }

  /** Coalesces bursts of watch events and timer ticks into one scan at a time. */
  #scanSoon(): void {
    if (this.#closed) return;
    if (this.#scanning !== undefined) {
      this.#rescan = true;
      return;
    }
    this.#scanning = this.#scan()
      .catch((e: Error) => {
        this.emit('sourceError', { error: e });
      })
      .finally(() => {
        this.#scanning = undefined;
        if (this.#rescan) {
          this.#rescan = false;
          this.#scanSoon();
        }
      });
  }

  async #scan(): Promise<void> {
    const now = Date.now();
    const names = (await readdir(this.dir)).filter((n) => isFrameFile(n, this.#extensions));
    const present = new Set(names);
    for (const n of this.#taken.keys()) if (!present.has(n)) this.#taken.delete(n);
    for (const n of this.#pending.keys()) if (!present.has(n)) this.#pending.delete(n);
    const ready: { name: string; mtimeMs: number }[] = [];
    let waiting = false;
    for (const n of names) {
      const s = await stat(join(this.dir, n)).catch(() => undefined);
      if (s === undefined || !s.isFile()) continue;
      const signature = `${s.size}:${s.mtimeMs}`;
      if (this.#taken.get(n) === signature) continue;
      const seen = this.#pending.get(n);
      if (seen === undefined || seen.size !== s.size || seen.mtimeMs !== s.mtimeMs) {
        this.#pending.set(n, { size: s.size, mtimeMs: s.mtimeMs, since: now });
        waiting = true;
      } else if (s.size > 0 && now - seen.since >= this.#settleMs) {
        this.#pending.delete(n);
        this.#taken.set(n, signature);
        ready.push({ name: n, mtimeMs: s.mtimeMs });
      } else if (now - seen.since < this.#settleMs) {
        waiting = true;
      }
    }
    ready.sort((a, b) => a.mtimeMs - b.mtimeMs || (a.name < b.name ? -1 : 1));
    for (const { name } of ready) {
      this.#queue.push(name);
      if (this.#queue.length > this.#maxQueue) {
        const old = this.#queue.shift()!;
        this.emit('dropped', { file: join(this.dir, old), reason: 'queue-full' });
      }
    }
    if (ready.length > 0) this.#wake.wake();
    // A file still settling gets its own look once it may have settled, without waiting for the poll.
    if (waiting && this.#settleTimer === undefined && !this.#closed) {
      this.#settleTimer = setTimeout(() => {
        this.#settleTimer = undefined;
        this.#scanSoon();
      }, this.#settleMs + 5);
      this.#settleTimer.unref();
    }
  }
}
