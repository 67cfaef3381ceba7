import { EventEmitter } from 'node:events';
import { silentLogger, type Logger } from '@kd-edge/core';
import { DetectionsLimiter } from './detections-limiter.js';
import type { DetectOptions } from './detector.js';
import type { Frame, FrameSource } from './frame-source.js';
import type { ModelSlot, SlotDetector, SlotResult } from './model-slot.js';

/** Most detections one message carries (the protocol's limit); the best-scoring are kept. */
export const MAX_DETECTIONS_PER_MESSAGE = 1000;

/** A detector the service can name in its messages (a {@link Detector} has both fields from its manifest). */
export type NamedDetector = SlotDetector & { readonly name?: string; readonly version?: string };

/** The protocol v1 `detections` message, as the service builds it. */
export interface DetectionsPayload {
  v: 1;
  type: 'detections';
  deviceId: string;
  ts: string;
  frame: { source: string; width: number; height: number; seq: number };
  model: { name: string; version: string };
  /** Pre + inference + post of this frame, in milliseconds. */
  latencyMs: number;
  detections: { cls: number; name?: string; score: number; box: [number, number, number, number] }[];
  /** Frames the rate limiter held back since the previous published message. */
  skipped?: number;
}

/** Counters of an {@link InferenceService}. */
export interface InferenceStats {
  /** Frames that went through a model. */
  frames: number;
  /** Frames that failed (bad image, no model, runtime failure). */
  errors: number;
  /** Messages handed to `publish`. */
  published: number;
  /** Frames the rate limiter held back from `publish`. */
  skipped: number;
  /** Frames per second over the last few seconds. */
  fps: number;
  /** Latency of the last frame, milliseconds. */
  lastLatencyMs: number | undefined;
}

/** Something that takes one NDJSON line per message; {@link SerialSink} is one. */
export interface LineSink {
  write(message: unknown): boolean;
}

/** Options of {@link InferenceService}. */
export interface InferenceServiceOptions<D extends NamedDetector> {
  source: FrameSource;
  slot: ModelSlot<D>;
  /** This device's id, for the messages. */
  deviceId: string;
  /** Sends a message (the agent passes an MQTT publish to `devices/{id}/detections`); its failures are events. */
  publish: (message: DetectionsPayload) => void | Promise<void>;
  /** Messages per second handed to `publish` (default 10); ignored when `limiter` is given. */
  maxPerSecond?: number;
  /** A limiter of one's own (tests pass one with a fake clock). */
  limiter?: DetectionsLimiter;
  /** Gets every frame's message, not rate-limited (a serial line to a PLC wants every frame). */
  serial?: LineSink;
  detect?: DetectOptions;
  logger?: Logger;
}

/** Events of an {@link InferenceService}. */
export interface InferenceServiceEvents<D extends NamedDetector> {
  /** A frame went through the model; `published` says whether the limiter let it out. */
  frame: [{ frame: Frame; result: SlotResult<D>; message: DetectionsPayload; published: boolean }];
  /** A frame failed (error.code SERVE_IMAGE_DECODE, SERVE_NO_MODEL, SERVE_INFERENCE, …); the loop goes on. */
  frameError: [{ frame: Frame; error: Error }];
  /** `publish` threw or rejected. */
  publishError: [{ error: Error }];
  /** The loop ended: the source ended (or failed, then `error`), or {@link InferenceService.stop} was called. */
  stopped: [{ error?: Error }];
}

const FPS_WINDOW_MS = 5000;

function toError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

/**
 * The inference loop: frames from a source, detections from the active model of a slot, messages
 * to `publish` through a rate limiter and, for every frame, to an optional serial sink. A bad frame
 * is a `frameError` event and the loop carries on; a model swap in the slot takes effect on the next frame.
 * @example
 * const service = new InferenceService({ source, slot, deviceId: 'cam-01', publish: (m) => mqtt.publishDetections(m) });
 * service.on('frameError', ({ error }) => log.warn(error.message));
 * await service.run();
 */
export class InferenceService<D extends NamedDetector = NamedDetector> extends EventEmitter<InferenceServiceEvents<D>> {
  readonly #source: FrameSource;
  readonly #slot: ModelSlot<D>;
  readonly #deviceId: string;
  readonly #publish: (message: DetectionsPayload) => void | Promise<void>;
  readonly #limiter: DetectionsLimiter;
  readonly #serial: LineSink | undefined;
  readonly #detect: DetectOptions | undefined;
  readonly #log: Logger;
  readonly #doneAt: number[] = [];
  #frames = 0;
  #errors = 0;
  #published = 0;
  #skipped = 0;
  #lastLatencyMs: number | undefined;
  #running: Promise<void> | undefined;
  #stopping = false;

  constructor(options: InferenceServiceOptions<D>) {
    super();
    if (typeof options?.deviceId !== 'string' || options.deviceId === '') throw new TypeError('deviceId must be a non-empty string');
    if (typeof options.publish !== 'function') throw new TypeError('publish must be a function');
    if (options.source === undefined || options.slot === undefined) throw new TypeError('source and slot are required');
    this.#source = options.source;
    this.#slot = options.slot;
    this.#deviceId = options.deviceId;
    this.#publish = options.publish;
    this.#limiter = options.limiter ?? new DetectionsLimiter({ maxPerSecond: options.maxPerSecond ?? 10 });
    this.#serial = options.serial;
    this.#detect = options.detect;
    this.#log = options.logger ?? silentLogger;
  }

  /** A snapshot of the counters (the status message's `serving` takes `fps` and `frames`). */
  get stats(): InferenceStats {
    const now = performance.now();
    while (this.#doneAt.length > 0 && now - this.#doneAt[0] > FPS_WINDOW_MS) this.#doneAt.shift();
    let fps = 0;
    if (this.#doneAt.length >= 2) {
      const span = now - this.#doneAt[0];
      fps = span > 0 ? ((this.#doneAt.length - 1) * 1000) / span : 0;
    }
    return {
      frames: this.#frames, errors: this.#errors, published: this.#published, skipped: this.#skipped,
      fps: Math.round(fps * 100) / 100, lastLatencyMs: this.#lastLatencyMs,
    };
  }

  /** Whether the loop is running. */
  get running(): boolean {
    return this.#running !== undefined;
  }

  /** Runs the loop until the source ends or {@link stop} is called; never rejects (a source failure ends it with a `stopped` error). */
  run(): Promise<void> {
    this.#running ??= this.#loop().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  /** Ends the loop after the frame in progress and closes the source. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#source.close();
    await this.#running;
  }

  async #loop(): Promise<void> {
    this.#stopping = false;
    let failure: Error | undefined;
    try {
      for await (const frame of this.#source) {
        if (this.#stopping) break;
        await this.#handle(frame);
      }
    } catch (e) {
      failure = toError(e);
      this.#log.error(`inference: frame source ${this.#source.name} failed: ${failure.message}`);
    }
    this.emit('stopped', failure === undefined ? {} : { error: failure });
  }

  async #handle(frame: Frame): Promise<void> {
    let result: SlotResult<D>;
    try {
      result = await this.#slot.infer(frame.data, this.#detect);
    } catch (e) {
      this.#errors++;
      const error = toError(e);
      this.#log.debug(`inference: frame ${frame.seq} of ${frame.source} failed: ${error.message}`);
      this.emit('frameError', { frame, error });
      return;
    }
    this.#frames++;
    this.#doneAt.push(performance.now());
    if (this.#doneAt.length > 10_000) this.#doneAt.shift();
    const { preMs, inferMs, postMs } = result.timings;
    const latencyMs = Math.round((preMs + inferMs + postMs) * 1000) / 1000;
    this.#lastLatencyMs = latencyMs;
    const message: DetectionsPayload = {
      v: 1,
      type: 'detections',
      deviceId: this.#deviceId,
      ts: new Date().toISOString(),
      frame: { source: frame.source, width: result.width, height: result.height, seq: frame.seq },
      model: { name: result.detector.name ?? 'unknown', version: result.detector.version ?? '0.0.0' },
      latencyMs,
      detections: result.detections.slice(0, MAX_DETECTIONS_PER_MESSAGE).map((d) => ({ cls: d.cls, name: d.name, score: d.score, box: d.box })),
    };
    this.#serial?.write(message);
    const decision = this.#limiter.offer();
    if (decision.publish) {
      const out = decision.skipped > 0 ? { ...message, skipped: decision.skipped } : message;
      this.#published++;
      this.#send(out);
      this.emit('frame', { frame, result, message: out, published: true });
    } else {
      this.#skipped++;
      this.emit('frame', { frame, result, message, published: false });
    }
  }

  /** Hands a message to `publish` without waiting for it, so a slow broker never stalls inference. */
  #send(message: DetectionsPayload): void {
    const onError = (e: unknown): void => {
      const error = toError(e);
      this.#log.warn(`inference: publishing detections failed: ${error.message}`);
      this.emit('publishError', { error });
    };
    try {
      const pending = this.#publish(message);
      if (pending instanceof Promise) pending.catch(onError);
    } catch (e) {
      onError(e);
    }
  }
}
