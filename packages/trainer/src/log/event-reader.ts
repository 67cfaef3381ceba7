import { readFileSync } from 'node:fs';
import { ProtoDecodeError, ProtoReader, WireType, fieldTag } from '@kd-edge/core';
import type { Histogram } from './histogram.js';
import { CorruptRecordError } from './log-errors.js';
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

// Field keys as ProtoReader.readTag returns them.
const k = fieldTag;
const { VARINT, FIXED64, LEN, FIXED32 } = WireType;

/** Reads the current message to its end; `field` reads one field and returns false for a key to skip. */
function readFields(r: ProtoReader, field: (tag: number) => boolean): void {
  while (!r.atEnd()) {
    const tag = r.readTag();
    if (!field(tag)) r.skip(tag);
  }
}

/** Reads an embedded message with `read`. */
function embedded<T>(r: ProtoReader, read: (r: ProtoReader) => T): T {
  const outer = r.enter();
  const value = read(r);
  r.leave(outer);
  return value;
}

// int32/int64 fields as numbers: two's complement, then the nearest double (exact up to 2^53).
const readInt = (r: ProtoReader): number => Number(r.readInt64());

function readImage(r: ProtoReader): SummaryImage {
  // Summary.Image: height 1, width 2, colorspace 3, encoded_image_string 4.
  const image = { height: 0, width: 0, colorspace: 0 };
  let bytes: Uint8Array = new Uint8Array();
  readFields(r, (tag) => {
    if (tag === k(1, VARINT)) image.height = readInt(r);
    else if (tag === k(2, VARINT)) image.width = readInt(r);
    else if (tag === k(3, VARINT)) image.colorspace = readInt(r);
    else if (tag === k(4, LEN)) bytes = r.readBytes();
    else return false;
    return true;
  });
  return { ...image, encoded: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
}

function readHistogram(r: ProtoReader): Histogram {
  // HistogramProto: min 1, max 2, num 3, sum 4, sum_squares 5; bucket_limit 6 and bucket 7 packed or not.
  const h: Histogram = { min: 0, max: 0, num: 0, sum: 0, sumSquares: 0, bucketLimit: [], bucket: [] };
  readFields(r, (tag) => {
    switch (tag) {
      case k(1, FIXED64):
        h.min = r.readDouble();
        break;
      case k(2, FIXED64):
        h.max = r.readDouble();
        break;
      case k(3, FIXED64):
        h.num = r.readDouble();
        break;
      case k(4, FIXED64):
        h.sum = r.readDouble();
        break;
      case k(5, FIXED64):
        h.sumSquares = r.readDouble();
        break;
      case k(6, LEN):
        for (const v of r.readPackedDouble()) h.bucketLimit.push(v);
        break;
      case k(6, FIXED64):
        h.bucketLimit.push(r.readDouble());
        break;
      case k(7, LEN):
        for (const v of r.readPackedDouble()) h.bucket.push(v);
        break;
      case k(7, FIXED64):
        h.bucket.push(r.readDouble());
        break;
      default:
        return false;
    }
    return true;
  });
  return h;
}

function readValue(r: ProtoReader): SummaryValue {
  // Summary.Value: tag 1, simple_value 2, image 4, histo 5.
  const value: SummaryValue = { tag: '' };
  readFields(r, (tag) => {
    if (tag === k(1, LEN)) value.tag = r.readString();
    else if (tag === k(2, FIXED32)) value.simpleValue = r.readFloat();
    else if (tag === k(4, LEN)) value.image = embedded(r, readImage);
    else if (tag === k(5, LEN)) value.histo = embedded(r, readHistogram);
    else return false;
    return true;
  });
  return value;
}

function readSummary(r: ProtoReader): SummaryValue[] {
  // Summary: repeated value 1.
  const values: SummaryValue[] = [];
  readFields(r, (tag) => {
    if (tag !== k(1, LEN)) return false;
    values.push(embedded(r, readValue));
    return true;
  });
  return values;
}

function readEvent(r: ProtoReader): TfEvent {
  // Event: wall_time 1, step 2, file_version 3, summary 5.
  const event: TfEvent = { wallTime: 0, step: 0 };
  readFields(r, (tag) => {
    if (tag === k(1, FIXED64)) event.wallTime = r.readDouble();
    else if (tag === k(2, VARINT)) event.step = readInt(r);
    else if (tag === k(3, LEN)) event.fileVersion = r.readString();
    else if (tag === k(5, LEN)) event.summary = embedded(r, readSummary);
    else return false;
    return true;
  });
  return event;
}

/**
 * Decodes the events in an in-memory tfevents stream, verifying every record CRC. Throws
 * {@link CorruptRecordError} naming the record when a record or the Event inside it is malformed.
 */
export function decodeEvents(buf: Uint8Array, options: DecodeRecordsOptions = {}): TfEvent[] {
  return decodeRecords(buf, options).map((record, index) => {
    try {
      return readEvent(new ProtoReader(record));
    } catch (e) {
      if (!(e instanceof ProtoDecodeError)) throw e;
      throw new CorruptRecordError(`record ${index}: malformed Event: ${e.detail} at byte ${e.offset} of the record data`, {
        cause: e,
      });
    }
  });
}

/**
 * Reads a tfevents file back (for tests and kd-trainer tooling). Throws `CorruptRecordError` naming
 * the record on a CRC mismatch or a malformed Event.
 * @example readEvents(file).flatMap((e) => e.summary ?? []).filter((v) => v.tag === 'metrics/mAP_0.5')
 */
export function readEvents(file: string, options: DecodeRecordsOptions = {}): TfEvent[] {
  return decodeEvents(readFileSync(file), options);
}
