import { EventEmitter } from 'node:events';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile as fsWriteFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { silentLogger, tempSibling, TMP_TAG, type Logger } from '@kd-edge/core';
import type { Frame } from '../serve/frame-source.js';
import type { DetectionsPayload } from '../serve/inference-service.js';
import { freeBytes } from '../transfer/disk-space.js';
import { CapturePolicy, type CapturePolicyOptions, type CaptureReason } from './capture-policy.js';
import { IMAGE_FORMAT_EXTENSIONS, imageFormat, type ImageFormat } from './image-format.js';

/**
 * Bounds of a {@link FrameCapture}. 1000 frames hold about a day at the policy's defaults (see
 * CAPTURE_POLICY_DEFAULTS); 256 MiB is about 1000 1080p JPEGs and small beside a Jetson's 16–64 GB of eMMC or SD.
 * Four queued writes hold a few frames' buffers at most: a disk that cannot keep up loses frames, not memory.
 */
export const FRAME_CAPTURE_DEFAULTS = {
  maxFrames: 1000,
  maxBytes: 256 * 1024 * 1024,
  queueSize: 4,
} as const;

/** Why a frame the policy chose was not kept. */
export type CaptureDropReason = 'queueFull' | 'tooLarge' | 'lowDisk' | 'writeError' | 'unknownFormat';

const DROP_REASONS: readonly CaptureDropReason[] = ['queueFull', 'tooLarge', 'lowDisk', 'writeError', 'unknownFormat'];

/** The sidecar JSON written beside each captured image; its presence marks the entry complete. */
export interface CaptureSidecar {
  v: 1;
  /** Orders entries: grows with every capture, also across restarts and when the clock goes back. */
  id: number;
  image: { file: string; format: ImageFormat; bytes: number; width: number; height: number };
  source: string;
  seq: number;
  /** When the source took the frame (ISO 8601). */
  receivedAt: string;
  reason: CaptureReason;
  /** Detections in the uncertain band. */
  uncertain: number;
  /** The model that served the frame. */
  model: { name: string; version: string };
  /** The detections as served (the detections message's). */
  detections: DetectionsPayload['detections'];
}

/** One captured frame, as {@link FrameCapture.list} returns it. */
export interface CapturedFrame {
  id: number;
  /** Absolute path of the encoded image, bytes exactly as the source delivered them. */
  image: string;
  /** Absolute path of the sidecar JSON. */
  sidecar: string;
  /** Image plus sidecar bytes. */
  bytes: number;
  data: CaptureSidecar;
}

/** Counters and contents of a {@link FrameCapture}; counters run since it was opened. */
export interface FrameCaptureStats {
  /** Frames offered (every frame served). */
  offered: number;
  /** Frames written. */
  kept: number;
  /** Frames deleted to hold the bounds, oldest first. */
  evicted: number;
  /** Frames chosen but not kept, by reason. */
  dropped: Record<CaptureDropReason, number>;
  /** Disk errors by code (ENOSPC, EACCES, …). */
  errors: Record<string, number>;
  /** Frames on disk now. */
  count: number;
  /** Bytes on disk now, images and sidecars. */
  bytes: number;
  /** receivedAt (ms since the epoch) of the oldest and newest frame on disk. */
  oldestAt: number | undefined;
  newestAt: number | undefined;
  /** Writes queued or under way. */
  pending: number;
}

/** What {@link FrameCapture.offer} takes: the fields it uses of InferenceService's 'frame' event. */
export interface CaptureInput {
  frame: Pick<Frame, 'source' | 'seq' | 'data' | 'receivedAt'>;
  message: Pick<DetectionsPayload, 'frame' | 'model' | 'detections'>;
}

/** Options of {@link FrameCapture.open}; the policy's options select the frames. */
export interface FrameCaptureOptions extends CapturePolicyOptions {
  /** The capture folder, created when missing; it should hold nothing else. */
  dir: string;
  /** Most frames kept (default 1000). */
  maxFrames?: number;
  /** Most bytes kept, images and sidecars (default 256 MiB); a frame larger than this alone is not kept. */
  maxBytes?: number;
  /** Writes queued or under way before a chosen frame is dropped (default 4). */
  queueSize?: number;
  /** Free bytes to leave on the folder's file system; no frame is written that would go below it (default 0). */
  reserveDiskBytes?: number;
  /** Free bytes of the file system holding a path (default statfs); tests fake a full disk with it. */
  freeBytes?: (path: string) => Promise<number>;
  /** Writes a new file (default `fs.writeFile` with flag 'wx'); tests make it fail. */
  writeFile?: (path: string, data: Uint8Array) => Promise<void>;
  logger?: Logger;
}

/** Events of a {@link FrameCapture}. */
export interface FrameCaptureEvents {
  /** A frame was written (its sidecar last). */
  kept: [entry: { id: number; image: string; sidecar: string; bytes: number; reason: CaptureReason }];
  /** A chosen frame was not kept; `error` for a disk error. */
  dropped: [drop: { reason: CaptureDropReason; error?: Error }];
}

interface Entry {
  id: number;
  /** File names inside the folder. */
  image: string;
  sidecar: string;
  bytes: number;
  receivedAt: number;
}

interface Job {
  input: CaptureInput;
  reason: CaptureReason;
  uncertain: number;
}

const ID_DIGITS = 16;
const NAME_RE = new RegExp(`^(\\d{${ID_DIGITS}})\\.(${[...Object.values(IMAGE_FORMAT_EXTENSIONS), 'json'].join('|')})$`);

function checkPositiveInteger(name: string, v: number, min = 1): void {
  if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${String(v)}`);
}

function errnoCode(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code ?? 'UNKNOWN';
}

function toError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

function parseSidecar(text: string, id: number): CaptureSidecar | undefined {
  try {
    const s = JSON.parse(text) as Partial<CaptureSidecar> | null;
    if (s === null || typeof s !== 'object' || s.v !== 1 || s.id !== id) return undefined;
    if (typeof s.image?.file !== 'string' || typeof s.image.bytes !== 'number' || typeof s.receivedAt !== 'string') return undefined;
    return s as CaptureSidecar;
  } catch {
    return undefined;
  }
}

/**
 * A bounded on-disk sample of served frames for on-device adaptation (issue 16): the {@link CapturePolicy} picks
 * frames (every Nth, and uncertain ones, rate-limited), and each is kept as the encoded image exactly as received
 * plus a sidecar JSON (source, seq, time, reason, serving model, detections). Files are named by a 16-digit id that
 * only grows (milliseconds of the frame's time, bumped past the last id where the clock went back), so name order
 * is capture order and eviction deletes the oldest first until both `maxFrames` and `maxBytes` hold.
 *
 * Writes never hold up serving: {@link offer} is synchronous and never throws; the writes run one at a time behind
 * a queue of `queueSize`, and a full queue, a disk error or a disk below the reserve drops the frame and counts it
 * (each disk error logged once until a write succeeds again). Each file is written to a temporary sibling and
 * renamed, the image first and the sidecar last, so a crash leaves whole entries, temporary files, or an image
 * without its sidecar; {@link open} removes the last two and rebuilds the index from disk. Files are not fsynced
 * (these are samples, and an SD card wears): after a power cut, an entry whose image is not the size its sidecar
 * records is removed at the next start. Nothing here sends anything anywhere.
 * @example
 * const capture = await FrameCapture.open({ dir: '/var/lib/kd-agent/capture', reserveDiskBytes: 64 << 20 });
 * service.on('frame', (event) => capture.offer(event));
 * // … on shutdown, after the service stopped:
 * await capture.close();
 */
export class FrameCapture extends EventEmitter<FrameCaptureEvents> {
  /** Absolute path of the capture folder. */
  readonly dir: string;
  readonly maxFrames: number;
  readonly maxBytes: number;
  readonly queueSize: number;
  readonly reserveDiskBytes: number;
  /** Paths removed by the start-up scan: temporary files, incomplete and damaged entries, and evictions. */
  readonly recovered: { removed: string[] } = { removed: [] };
  readonly #policy: CapturePolicy;
  readonly #freeBytes: (path: string) => Promise<number>;
  readonly #writeFile: (path: string, data: Uint8Array) => Promise<void>;
  readonly #log: Logger;
  /** Oldest first. */
  #entries: Entry[] = [];
  #bytes = 0;
  #lastId = 0;
  #offered = 0;
  #kept = 0;
  #evicted = 0;
  readonly #dropped = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<CaptureDropReason, number>;
  readonly #errors: Record<string, number> = {};
  /** Problems already logged since the last successful write. */
  readonly #warned = new Set<string>();
  #pending = 0;
  #chain: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(options: FrameCaptureOptions) {
    super();
    this.dir = resolve(options.dir);
    this.maxFrames = options.maxFrames ?? FRAME_CAPTURE_DEFAULTS.maxFrames;
    this.maxBytes = options.maxBytes ?? FRAME_CAPTURE_DEFAULTS.maxBytes;
    this.queueSize = options.queueSize ?? FRAME_CAPTURE_DEFAULTS.queueSize;
    this.reserveDiskBytes = options.reserveDiskBytes ?? 0;
    checkPositiveInteger('maxFrames', this.maxFrames);
    checkPositiveInteger('maxBytes', this.maxBytes);
    checkPositiveInteger('queueSize', this.queueSize);
    checkPositiveInteger('reserveDiskBytes', this.reserveDiskBytes, 0);
    this.#policy = new CapturePolicy(options);
    this.#freeBytes = options.freeBytes ?? freeBytes;
    this.#writeFile = options.writeFile ?? ((path, data) => fsWriteFile(path, data, { flag: 'wx' }));
    this.#log = options.logger ?? silentLogger;
  }

  /**
   * Opens (creating when needed) the capture folder: removes temporary files and incomplete or damaged entries left
   * by a crash, rebuilds the index from the files, and deletes the oldest entries past the bounds (a lowered limit
   * trims here). Files whose names it does not know are left alone.
   */
  static async open(options: FrameCaptureOptions): Promise<FrameCapture> {
    if (typeof options?.dir !== 'string' || options.dir === '') throw new TypeError('dir must be a folder path');
    const capture = new FrameCapture(options);
    await mkdir(capture.dir, { recursive: true });
    await capture.#scan();
    await capture.#enforce(capture.recovered.removed);
    return capture;
  }

  /** The policy choosing the frames (its settings, for logs and status). */
  get policy(): CapturePolicy {
    return this.#policy;
  }

  /**
   * Offers one served frame; returns why it was chosen (then it is queued, or dropped and counted), or undefined
   * when it was not. Synchronous, and never throws: pass it InferenceService's 'frame' event as it is.
   */
  offer(input: CaptureInput): CaptureReason | undefined {
    if (this.#closed) return undefined;
    try {
      this.#offered++;
      const choice = this.#policy.decide(input.message.detections);
      if (choice === undefined) return undefined;
      if (this.#pending >= this.queueSize) {
        this.#drop('queueFull');
        return choice.reason;
      }
      this.#pending++;
      const job: Job = { input, reason: choice.reason, uncertain: choice.uncertain };
      this.#chain = this.#chain
        .then(() => this.#write(job))
        .catch((err: unknown) => this.#log.error(`capture: ${toError(err).message}`))
        .finally(() => {
          this.#pending--;
        });
      return choice.reason;
    } catch (err) {
      this.#log.error(`capture: offer failed: ${toError(err).message}`);
      return undefined;
    }
  }

  /** A snapshot of the counters and of what is on disk. */
  stats(): FrameCaptureStats {
    return {
      offered: this.#offered,
      kept: this.#kept,
      evicted: this.#evicted,
      dropped: { ...this.#dropped },
      errors: { ...this.#errors },
      count: this.#entries.length,
      bytes: this.#bytes,
      oldestAt: this.#entries[0]?.receivedAt,
      newestAt: this.#entries[this.#entries.length - 1]?.receivedAt,
      pending: this.#pending,
    };
  }

  /** The frames on disk, oldest first, with their sidecars (read now; an entry evicted meanwhile is left out). */
  async list(): Promise<CapturedFrame[]> {
    const out: CapturedFrame[] = [];
    for (const e of [...this.#entries]) {
      const text = await readFile(join(this.dir, e.sidecar), 'utf8').catch(() => undefined);
      const data = text === undefined ? undefined : parseSidecar(text, e.id);
      if (data === undefined) continue;
      out.push({ id: e.id, image: join(this.dir, e.image), sidecar: join(this.dir, e.sidecar), bytes: e.bytes, data });
    }
    return out;
  }

  /** Resolves once every write queued so far has ended. */
  async idle(): Promise<void> {
    for (;;) {
      const chain = this.#chain;
      await chain;
      if (chain === this.#chain) return;
    }
  }

  /** Takes no more frames and waits for the queued writes. Safe to call twice. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.idle();
  }

  #drop(reason: CaptureDropReason, error?: Error): void {
    this.#dropped[reason]++;
    this.emit('dropped', error === undefined ? { reason } : { reason, error });
  }

  /** Logs a problem the first time it happens since the last successful write. */
  #warnOnce(kind: string, message: string): void {
    if (this.#warned.has(kind)) return;
    this.#warned.add(kind);
    this.#log.warn(`capture: ${message}`);
  }

  #nextId(receivedAt: number): number {
    const t = Number.isFinite(receivedAt) && receivedAt > 0 ? Math.floor(receivedAt) : 0;
    this.#lastId = Math.max(this.#lastId + 1, t);
    return this.#lastId;
  }

  async #write(job: Job): Promise<void> {
    const { frame, message } = job.input;
    const format = imageFormat(frame.data);
    if (format === undefined) {
      this.#warnOnce('format', `frame ${frame.seq} of ${frame.source} is not JPEG, PNG, WebP or BMP; not kept`);
      this.#drop('unknownFormat');
      return;
    }
    const id = this.#nextId(frame.receivedAt);
    const base = String(id).padStart(ID_DIGITS, '0');
    const image = `${base}.${IMAGE_FORMAT_EXTENSIONS[format]}`;
    const sidecarName = `${base}.json`;
    const receivedAt = Number.isFinite(frame.receivedAt) ? frame.receivedAt : Date.now();
    const sidecar: CaptureSidecar = {
      v: 1,
      id,
      image: { file: image, format, bytes: frame.data.length, width: message.frame.width, height: message.frame.height },
      source: frame.source,
      seq: frame.seq,
      receivedAt: new Date(receivedAt).toISOString(),
      reason: job.reason,
      uncertain: job.uncertain,
      model: { name: message.model.name, version: message.model.version },
      detections: message.detections,
    };
    const json = Buffer.from(`${JSON.stringify(sidecar)}\n`);
    const bytes = frame.data.length + json.length;
    if (bytes > this.maxBytes) {
      this.#warnOnce('tooLarge', `a frame of ${bytes} bytes is larger than maxBytes (${this.maxBytes}); not kept`);
      this.#drop('tooLarge');
      return;
    }
    if (this.reserveDiskBytes > 0) {
      const free = await this.#freeBytes(this.dir).catch(() => Number.POSITIVE_INFINITY);
      if (free < bytes + this.reserveDiskBytes) {
        this.#warnOnce('lowDisk', `${free} bytes free on ${this.dir}, under the reserve of ${this.reserveDiskBytes}; not capturing until there is room`);
        this.#drop('lowDisk');
        return;
      }
    }
    try {
      await this.#writeAtomic(image, frame.data);
      try {
        await this.#writeAtomic(sidecarName, json);
      } catch (err) {
        await rm(join(this.dir, image), { force: true }).catch(() => undefined);
        throw err;
      }
    } catch (e) {
      const error = toError(e);
      const code = errnoCode(e);
      this.#errors[code] = (this.#errors[code] ?? 0) + 1;
      this.#warnOnce(code, `writing to ${this.dir} failed (${code}): ${error.message}; frames are dropped while it lasts, serving goes on`);
      this.#drop('writeError', error);
      return;
    }
    this.#warned.clear();
    this.#entries.push({ id, image, sidecar: sidecarName, bytes, receivedAt });
    this.#bytes += bytes;
    this.#kept++;
    this.emit('kept', { id, image: join(this.dir, image), sidecar: join(this.dir, sidecarName), bytes, reason: job.reason });
    await this.#enforce();
  }

  async #writeAtomic(name: string, data: Uint8Array): Promise<void> {
    const path = join(this.dir, name);
    const tmp = tempSibling(path);
    try {
      await this.#writeFile(tmp, data);
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw err;
    }
  }

  /** Deletes the oldest entries until both bounds hold; the sidecar goes first, so a crash leaves an orphan image the next scan removes. */
  async #enforce(removed?: string[]): Promise<void> {
    while (this.#entries.length > 0 && (this.#entries.length > this.maxFrames || this.#bytes > this.maxBytes)) {
      const e = this.#entries.shift()!;
      this.#bytes -= e.bytes;
      this.#evicted++;
      for (const name of [e.sidecar, e.image]) {
        try {
          await rm(join(this.dir, name), { force: true });
          removed?.push(join(this.dir, name));
        } catch (err) {
          // Left on disk and out of the index; the next start's scan finds it again.
          const code = errnoCode(err);
          this.#errors[code] = (this.#errors[code] ?? 0) + 1;
          this.#warnOnce(`evict-${code}`, `cannot delete ${name} (${code}): ${toError(err).message}`);
        }
      }
    }
  }

  async #scan(): Promise<void> {
    const removed = this.recovered.removed;
    const remove = async (name: string): Promise<void> => {
      await rm(join(this.dir, name), { recursive: true, force: true });
      removed.push(join(this.dir, name));
    };
    const groups = new Map<number, { images: string[]; sidecar?: string }>();
    let unknown = 0;
    for (const name of await readdir(this.dir)) {
      if (name.startsWith('.') && name.includes(TMP_TAG)) {
        await remove(name); // a write cut short
        continue;
      }
      const m = NAME_RE.exec(name);
      if (m === null) {
        unknown++;
        continue;
      }
      const id = Number(m[1]);
      const group = groups.get(id) ?? { images: [] };
      if (m[2] === 'json') group.sidecar = name;
      else group.images.push(name);
      groups.set(id, group);
    }
    if (unknown > 0) this.#log.warn(`capture: leaving ${unknown} unknown file(s) in ${this.dir} alone`);

    const entries: Entry[] = [];
    for (const [id, group] of [...groups].sort((a, b) => a[0] - b[0])) {
      const sidecar = group.sidecar === undefined
        ? undefined
        : parseSidecar(await readFile(join(this.dir, group.sidecar), 'utf8').catch(() => ''), id);
      const imageName = sidecar !== undefined && group.images.includes(sidecar.image.file) ? sidecar.image.file : undefined;
      const imageSize = imageName === undefined ? undefined : await stat(join(this.dir, imageName)).then((s) => s.size, () => undefined);
      // Complete means: the sidecar parses and names an image of exactly the size it records (a torn write after a
      // power cut can leave a shorter one behind a renamed name).
      if (sidecar === undefined || imageName === undefined || imageSize !== sidecar.image.bytes) {
        for (const name of [...(group.sidecar === undefined ? [] : [group.sidecar]), ...group.images]) await remove(name);
        continue;
      }
      for (const name of group.images) if (name !== imageName) await remove(name);
      const sidecarSize = (await stat(join(this.dir, group.sidecar!))).size;
      const receivedAt = Date.parse(sidecar.receivedAt);
      entries.push({ id, image: imageName, sidecar: group.sidecar!, bytes: imageSize + sidecarSize, receivedAt: Number.isFinite(receivedAt) ? receivedAt : 0 });
    }
    if (removed.length > 0) this.#log.info(`capture: removed ${removed.length} incomplete or temporary file(s) from ${this.dir}`);
    this.#entries = entries;
    this.#bytes = entries.reduce((sum, e) => sum + e.bytes, 0);
    this.#lastId = entries.length > 0 ? entries[entries.length - 1]!.id : 0;
  }
}
