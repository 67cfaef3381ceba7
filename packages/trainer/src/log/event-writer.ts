import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ProtoWriter } from '@kd-edge/core';
import { buildHistogram, type Histogram } from './histogram.js';
import { TfRecordWriter } from './tfrecord.js';

/** Options of {@link SummaryWriter}. */
export interface SummaryWriterOptions {
  /** Appended to the file name, as in TensorBoard's `filename_suffix`. */
  filenameSuffix?: string;
  /** Flush once this many events are queued (TensorBoard's `max_queue`, default 10). */
  maxQueue?: number;
  /** Flush on the next event once this many ms passed since the last flush (default 2000). */
  flushMs?: number;
  /** Clock in ms since the epoch; tests inject a fixed one. */
  now?: () => number;
}

/** Summary.Image colorspace values (SPECS.md §1). */
export type ImageColorspace = 1 | 2 | 3 | 4 | 5 | 6;

// Mirrors the Python writer's per-process global_uid so two writers created in the same second get distinct names.
let globalUid = 0;

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
// PNG IHDR colour type → Summary.Image colorspace (0 gray, 4 gray+alpha, 2 RGB, 6 RGBA; 3 palette expands to RGB).
const PNG_COLORSPACE: Record<number, ImageColorspace> = { 0: 1, 4: 2, 2: 3, 3: 3, 6: 4 };

function pngHeader(png: Uint8Array): { width: number; height: number; colorspace: ImageColorspace } | undefined {
  if (png.length < 33 || PNG_SIGNATURE.some((b, i) => png[i] !== b)) return undefined;
  const v = new DataView(png.buffer, png.byteOffset, png.byteLength);
  return { width: v.getUint32(16), height: v.getUint32(20), colorspace: PNG_COLORSPACE[png[25]!] ?? 3 };
}

function writeHistogram(w: ProtoWriter, h: Histogram): ProtoWriter {
  // HistogramProto: min 1, max 2, num 3, sum 4, sum_squares 5, bucket_limit 6, bucket 7 (packed).
  return w
    .double(1, h.min)
    .double(2, h.max)
    .double(3, h.num)
    .double(4, h.sum)
    .double(5, h.sumSquares)
    .packedDouble(6, h.bucketLimit)
    .packedDouble(7, h.bucket);
}

function checkStep(step: number): void {
  if (!Number.isSafeInteger(step)) throw new RangeError(`step must be a safe integer, got ${step}`);
}

/**
 * Writes TensorBoard event files (`events.out.tfevents.*`) with scalars, histograms and images,
 * readable by TensorBoard's own loader. Events are queued and appended synchronously in batches;
 * call {@link SummaryWriter.flush} at the end of each epoch and {@link SummaryWriter.close} at the end.
 * @example
 * const w = new SummaryWriter('runs/train/exp');
 * w.addScalar('train/box_loss', 0.05, 1);
 * w.close();
 */
export class SummaryWriter {
  /** Full path of the event file. */
  readonly file: string;
  private readonly records: TfRecordWriter;
  private readonly maxQueue: number;
  private readonly flushMs: number;
  private readonly now: () => number;
  private lastFlush: number;

  constructor(readonly logDir: string, options: SummaryWriterOptions = {}) {
    this.maxQueue = options.maxQueue ?? 10;
    this.flushMs = options.flushMs ?? 2000;
    if (!Number.isInteger(this.maxQueue) || this.maxQueue < 1) {
      throw new RangeError(`maxQueue must be a positive integer, got ${options.maxQueue}`);
    }
    this.now = options.now ?? Date.now;
    mkdirSync(logDir, { recursive: true });
    const seconds = Math.floor(this.now() / 1000).toString().padStart(10, '0');
    const name = `events.out.tfevents.${seconds}.${hostname()}.${process.pid}.${globalUid++}${options.filenameSuffix ?? ''}`;
    this.file = join(logDir, name);
    this.records = new TfRecordWriter(this.file);
    // Event: wall_time 1, file_version 3, source_metadata 10 { writer 1 }.
    this.records.write(
      new ProtoWriter()
        .double(1, this.now() / 1000)
        .string(3, 'brain.Event:2')
        .fork(10)
        .string(1, 'kd-trainer')
        .ldelim()
        .finish(),
    );
    this.records.flush();
    this.lastFlush = this.now();
  }

  /** Queues an Event holding one Summary; `writeValues` writes its Summary.Value fields (field 1). */
  private addSummary(step: number, writeValues: (w: ProtoWriter) => void): void {
    checkStep(step);
    // Event: wall_time 1, step 2, summary 5.
    const event = new ProtoWriter().double(1, this.now() / 1000);
    if (step !== 0) event.int64(2, step);
    writeValues(event.fork(5));
    this.records.write(event.ldelim().finish());
    if (this.records.pendingCount >= this.maxQueue || this.now() - this.lastFlush >= this.flushMs) this.flush();
  }

  /** Logs one scalar as `simple_value` (stored as float32). */
  addScalar(tag: string, value: number, step: number): void {
    // Summary.Value: tag 1, simple_value 2.
    this.addSummary(step, (w) => w.fork(1).string(1, tag).float(2, value).ldelim());
  }

  /** Logs several scalars, one tag per key, in a single event. */
  addScalars(record: Readonly<Record<string, number>>, step: number): void {
    const entries = Object.entries(record);
    if (entries.length === 0) return;
    this.addSummary(step, (w) => {
      for (const [tag, value] of entries) w.fork(1).string(1, tag).float(2, value).ldelim();
    });
  }

  /** Logs a histogram of `values` over TensorFlow's default buckets (non-finite values are skipped). */
  addHistogram(tag: string, values: Float32Array | readonly number[], step: number): void {
    const h = buildHistogram(values);
    this.addSummary(step, (w) => writeHistogram(w.fork(1).string(1, tag).fork(5), h).ldelim().ldelim());
  }

  /**
   * Logs an encoded image (normally PNG). For a PNG, `width`/`height` must match its header and the
   * colorspace defaults to the PNG's own (3 RGB, 4 RGBA); otherwise it defaults to 3.
   */
  addImage(tag: string, png: Uint8Array, width: number, height: number, step: number, colorspace?: ImageColorspace): void {
    for (const [name, v] of [['width', width], ['height', height]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
    }
    const header = pngHeader(png);
    if (header && (header.width !== width || header.height !== height)) {
      throw new RangeError(`width x height ${width}x${height} does not match the PNG header ${header.width}x${header.height}`);
    }
    const cs = colorspace ?? header?.colorspace ?? 3;
    // Summary.Value: tag 1, image 4 { height 1, width 2, colorspace 3, encoded_image_string 4 }.
    this.addSummary(step, (w) =>
      w.fork(1).string(1, tag).fork(4).int64(1, height).int64(2, width).int64(3, cs).bytes(4, png).ldelim().ldelim(),
    );
  }

  /** Appends every queued event to the file. */
  flush(): void {
    this.records.flush();
    this.lastFlush = this.now();
  }

  /** Flushes and closes the file; closing twice is allowed. */
  close(): void {
    this.records.close();
  }
}
