import { EventEmitter } from 'node:events';
import { silentLogger, type Logger } from '@kd-edge/core';
import type { DetectOptions, DetectResult, DetectorImage } from './detector.js';
import { ServeError } from './serve-error.js';

/** What a slot holds: a {@link Detector} or anything with the same two methods. */
export interface SlotDetector {
  detect(image: DetectorImage, options?: DetectOptions): Promise<DetectResult>;
  dispose(): Promise<void>;
}

/** A detection result with the detector that produced it (for the model name and version). */
export type SlotResult<D extends SlotDetector> = DetectResult & { detector: D };

/** Events of a {@link ModelSlot}. */
export interface ModelSlotEvents<D extends SlotDetector> {
  /** A swap took effect: inferences from now on use `next`. */
  swap: [{ previous: D | undefined; next: D | undefined; generation: number }];
  /** A retired detector was disposed, after its last in-flight inference. */
  disposed: [{ detector: D }];
  /** Disposing a retired detector failed; the slot carries on. */
  disposeError: [{ detector: D; error: Error }];
}

/** Options of {@link ModelSlot}. */
export interface ModelSlotOptions {
  logger?: Logger;
}

interface Entry<D> {
  detector: D;
  /** Inferences running on it now. */
  refs: number;
  retired: boolean;
  settled: Promise<void>;
  resolve: () => void;
}

/**
 * Holds the active detector and hot-swaps it: a swap takes effect for every inference that starts after
 * it, inferences already running finish on the old detector, and the old one is disposed once the last
 * of them is done, so an inference never fails because of a swap.
 * @example
 * const slot = new ModelSlot(await Detector.open('v1.onnx', m1));
 * const { detections, detector } = await slot.infer(jpeg);
 * await slot.swap(await Detector.open('v2.onnx', m2)); // resolves once v1 is disposed
 */
export class ModelSlot<D extends SlotDetector = SlotDetector> extends EventEmitter<ModelSlotEvents<D>> {
  #active: Entry<D> | undefined;
  #generation = 0;
  #closed = false;
  readonly #log: Logger;

  constructor(initial?: D, options: ModelSlotOptions = {}) {
    super();
    this.#log = options.logger ?? silentLogger;
    if (initial !== undefined) this.#active = this.#entry(initial);
  }

  /** The detector new inferences use, or undefined when the slot is empty. */
  get current(): D | undefined {
    return this.#active?.detector;
  }

  /** Counts swaps (and clears); 0 for the initial detector. */
  get generation(): number {
    return this.#generation;
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Makes `next` the active detector at once (`undefined` empties the slot). Returns a promise that
   * resolves when the previous detector has been disposed, after its in-flight inferences; it never
   * rejects (a failed dispose is a `disposeError` event). Throws SERVE_CLOSED after {@link close}.
   */
  swap(next: D | undefined): Promise<void> {
    if (this.#closed) throw new ServeError('SERVE_CLOSED', 'the model slot is closed');
    return this.#replace(next);
  }

  /**
   * Runs `fn` with the active detector, holding it so that a concurrent swap does not dispose it
   * before `fn` settles. Throws SERVE_NO_MODEL when the slot is empty.
   */
  async use<T>(fn: (detector: D) => Promise<T>): Promise<T> {
    const entry = this.#active;
    if (entry === undefined) {
      throw new ServeError(this.#closed ? 'SERVE_CLOSED' : 'SERVE_NO_MODEL', this.#closed ? 'the model slot is closed' : 'no model is active');
    }
    // Taken synchronously with the read of #active, so no swap can slip in between.
    entry.refs++;
    try {
      return await fn(entry.detector);
    } finally {
      entry.refs--;
      if (entry.retired && entry.refs === 0) this.#dispose(entry);
    }
  }

  /** Detects on the active detector (see {@link use}); the result names the detector that ran. */
  infer(image: DetectorImage, options?: DetectOptions): Promise<SlotResult<D>> {
    return this.use(async (detector) => ({ ...(await detector.detect(image, options)), detector }));
  }

  /** Empties the slot and refuses further swaps; resolves when the last detector is disposed. */
  close(): Promise<void> {
    if (this.#closed) return this.#active?.settled ?? Promise.resolve();
    this.#closed = true;
    return this.#replace(undefined);
  }

  #entry(detector: D): Entry<D> {
    let resolve!: () => void;
    const settled = new Promise<void>((r) => (resolve = r));
    return { detector, refs: 0, retired: false, settled, resolve };
  }

  #replace(next: D | undefined): Promise<void> {
    const previous = this.#active;
    if (previous !== undefined && previous.detector === next) return Promise.resolve();
    this.#active = next === undefined ? undefined : this.#entry(next);
    this.#generation++;
    this.emit('swap', { previous: previous?.detector, next, generation: this.#generation });
    if (previous === undefined) return Promise.resolve();
    previous.retired = true;
    if (previous.refs === 0) this.#dispose(previous);
    return previous.settled;
  }

  #dispose(entry: Entry<D>): void {
    // On a later turn of the event loop: ORT's release is synchronous and takes milliseconds, and run inline it
    // delayed the last caller's next inference by that much. Deferred, the serving loop starts its next inference
    // (in ORT's threads) first and the release's main-thread time overlaps it.
    setImmediate(() => this.#release(entry));
  }

  #release(entry: Entry<D>): void {
    entry.detector
      .dispose()
      .then(
        () => {
          this.emit('disposed', { detector: entry.detector });
        },
        (e: unknown) => {
          const error = e instanceof Error ? e : new Error(String(e));
          this.#log.warn(`model slot: disposing a retired detector failed: ${error.message}`);
          this.emit('disposeError', { detector: entry.detector, error });
        },
      )
      .finally(entry.resolve)
      // A throwing event listener must not become an unhandled rejection.
      .catch((e: unknown) => this.#log.error(`model slot: a listener threw: ${(e as Error).message}`));
  }
}
