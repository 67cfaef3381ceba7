import { readFileSync } from 'node:fs';
import type { Histogram } from './histogram.js';
import { ProtoMessage } from './protobuf-reader.js';
import { decodeRecords, type DecodeRecordsOptions } from './tfrecord.js';

/** A decoded Summary.Image. */
export interface SummaryImage {
  height: number;
  width: number;
  colorspace: number;
  /** The encoded image bytes (PNG for what {@link SummaryWriter} writes). */
  encoded: Buffer;
}

/** One decoded Summary.Value; only the kinds kd-trainer writes are decoded. */
export interface SummaryValue {
  tag: string;
  simpleValue?: number;
  histo?: Histogram;
  image?: SummaryImage;
}

/** One decoded Event. */
export interface TfEvent {
  /** Seconds since the Unix epoch. */
  wallTime: number;
  step: number;
  fileVersion?: string;
  summary?: SummaryValue[];
}

function decodeValue(v: ProtoMessage): SummaryValue {
  const out: SummaryValue = { tag: v.string(1) ?? '' };
  const simple = v.float(2);
  if (simple !== undefined) out.simpleValue = simple;
  const image = v.message(4);
  if (image) {
    const bytes = image.bytes(4) ?? new Uint8Array();
    out.image = {
      height: image.int(1) ?? 0,
      width: image.int(2) ?? 0,
      colorspace: image.int(3) ?? 0,
      encoded: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
    };
  }
  const h = v.message(5);
  if (h) {
    out.histo = {
      min: h.double(1) ?? 0,
      max: h.double(2) ?? 0,
      num: h.double(3) ?? 0,
      sum: h.double(4) ?? 0,
      sumSquares: h.double(5) ?? 0,
      bucketLimit: h.doubles(6),
      bucket: h.doubles(7),
    };
  }
  return out;
}

/** Decodes the events in an in-memory tfevents stream, verifying every record CRC. */
export function decodeEvents(buf: Uint8Array, options: DecodeRecordsOptions = {}): TfEvent[] {
  return decodeRecords(buf, options).map((record) => {
    // Event: wall_time 1, step 2, file_version 3, summary 5.
    const e = new ProtoMessage(record);
    const event: TfEvent = { wallTime: e.double(1) ?? 0, step: e.int(2) ?? 0 };
    const fileVersion = e.string(3);
    if (fileVersion !== undefined) event.fileVersion = fileVersion;
    const summary = e.message(5);
    if (summary) event.summary = summary.messages(1).map(decodeValue);
    return event;
  });
}

/**
 * Reads a tfevents file back (for tests and kd-trainer tooling). Throws `CorruptRecordError` naming
 * the record on a CRC mismatch.
 * @example readEvents(file).flatMap((e) => e.summary ?? []).filter((v) => v.tag === 'metrics/mAP_0.5')
 */
export function readEvents(file: string, options: DecodeRecordsOptions = {}): TfEvent[] {
  return decodeEvents(readFileSync(file), options);
}
