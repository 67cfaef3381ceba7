import { EventEmitter } from 'node:events';
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { checkExtensions, isFrameFile, waiter, type Frame, type FrameSource, type Waiter } from './frame-source.js';

/** Options of {@link ReplaySource}. */
export interface ReplaySourceOptions {
  /** Folder of images, replayed in file-name order. */
  dir: string;
  /** Frames per second (default 10); `Infinity` replays as fast as the consumer takes them. */
  fps?: number;
  /** Start again after the last image (default false: the iteration ends). */
  loop?: boolean;
  /** The frames' `source` (default: the folder path). */
  name?: string;
  /** Extensions taken (default jpg, jpeg, png, bmp, webp). */
  extensions?: readonly string[];
}

/** Events of a {@link ReplaySource}. */
export interface ReplaySourceEvents {
  /** An image could not be read; it is skipped. */
  sourceError: [{ error: Error; file: string }];
}

/**
 * Frames from a folder of images replayed at a set rate, like a camera (demos, soak tests, benchmarks
 * on recorded data). A consumer slower than `fps` gets every frame as soon as it asks, and the pace
 * starts over from then rather than bursting to catch up; no frame is dropped.
 * @example
 * const source = new ReplaySource({ dir: 'samples', fps: 15, loop: true });
 */
export class ReplaySource extends EventEmitter<ReplaySourceEvents> implements FrameSource {
  readonly name: string;
  readonly dir: string;
  readonly fps: number;
  readonly loop: boolean;
  readonly #extensions: readonly string[];
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  #sleep: Waiter | undefined;

  constructor(options: ReplaySourceOptions) {
    super();
    if (typeof options?.dir !== 'string' || options.dir === '') throw new TypeError('dir must be a non-empty string');
    this.dir = resolve(options.dir);
    this.name = options.name ?? this.dir;
    this.fps = options.fps ?? 10;
    if (typeof this.fps !== 'number' || !(this.fps > 0)) throw new RangeError(`fps must be a number > 0 (or Infinity), got ${options.fps}`);
    this.loop = options.loop ?? false;
    this.#extensions = checkExtensions(options.extensions);
  }

  /** The images replayed, in order (listed afresh at the start of every pass). */
  async files(): Promise<string[]> {
    const names = (await readdir(this.dir)).filter((n) => isFrameFile(n, this.#extensions)).sort();
    return names.map((n) => join(this.dir, n));
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Frame> {
    try {
      yield* this.#frames();
    } finally {
      await this.close();
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#sleep?.wake();
  }

  async *#frames(): AsyncGenerator<Frame> {
    const period = 1000 / this.fps;
    let seq = 0;
    let due = performance.now();
    do {
      const files = await this.files();
      // An empty folder would spin a looping replay; end instead.
      if (files.length === 0) return;
      for (const file of files) {
        if (this.#closed) return;
        let data: Buffer;
        try {
          data = await readFile(file);
        } catch (e) {
          this.emit('sourceError', { error: e as Error, file });
          continue;
        }
        const now = performance.now();
        if (due > now) await this.#wait(due - now);
        else due = now;
        if (this.#closed) return;
        due += period;
        yield { source: this.name, seq: seq++, data, file, receivedAt: Date.now() };
      }
    } while (this.loop && !this.#closed);
  }

  #wait(ms: number): Promise<void> {
    this.#sleep = waiter();
    this.#timer = setTimeout(this.#sleep.wake, ms);
    return this.#sleep.promise;
  }
}
