import { readFileSync, readdirSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { ProtoDecodeError, ProtoWriter } from '@kd-edge/core';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeEvents, readEvents } from '../src/log/event-reader.js';
import { SummaryWriter } from '../src/log/event-writer.js';
import { DEFAULT_BUCKET_LIMITS, buildHistogram } from '../src/log/histogram.js';
import { CorruptRecordError } from '../src/log/log-errors.js';
import { encodeRecord } from '../src/log/tfrecord.js';

const root = mkdtempSync(join(tmpdir(), 'kd-events-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const newDir = () => join(root, `run${n++}`);

async function testPng(width: number, height: number, channels: 3 | 4): Promise<Buffer> {
  const px = Buffer.alloc(width * height * channels);
  for (let i = 0; i < px.length; i++) px[i] = (i * 37) & 0xff;
  return sharp(px, { raw: { width, height, channels } }).png().toBuffer();
}

describe('histogram', () => {
  it('uses TensorFlow default edges: symmetric, increasing, ending at ±DBL_MAX', () => {
    const l = DEFAULT_BUCKET_LIMITS;
    expect(l[0]).toBe(-Number.MAX_VALUE);
    expect(l[l.length - 1]).toBe(Number.MAX_VALUE);
    expect(l[(l.length - 1) / 2]).toBe(0);
    expect(l[(l.length - 1) / 2 + 1]).toBe(1e-12);
    for (let i = 1; i < l.length; i++) expect(l[i]!).toBeGreaterThan(l[i - 1]!);
    expect(l[l.length - 2]!).toBeLessThan(1e20);
    expect(l[l.length - 2]! * 1.1).toBeGreaterThanOrEqual(1e20);
  });

  it('counts each value in the bucket whose right edge is the first edge above it', () => {
    const h = buildHistogram([0, 0, 1, -1, 5, NaN, Infinity]);
    expect(h.num).toBe(5);
    expect(h.min).toBe(-1);
    expect(h.max).toBe(5);
    expect(h.sum).toBe(5);
    expect(h.sumSquares).toBe(27);
    expect(h.bucket.reduce((a, b) => a + b, 0)).toBe(5);
    // zeros land in [0, 1e-12): the bucket whose limit is 1e-12
    expect(h.bucket[h.bucketLimit.indexOf(1e-12)]).toBe(2);
    for (const [v, c] of [[1, 1], [-1, 1], [5, 1]] as const) {
      const i = h.bucketLimit.findIndex((lim) => lim > v);
      expect(h.bucket[i]).toBe(c);
      expect(h.bucketLimit[i - 1]!).toBeLessThanOrEqual(v);
    }
    // runs of empty buckets are merged: no two consecutive zero buckets remain
    for (let i = 1; i < h.bucket.length; i++) expect(h.bucket[i - 1]! + h.bucket[i]!).toBeGreaterThan(0);
    expect(h.bucketLimit.length).toBeLessThan(20);
  });

  it('encodes an empty histogram as one empty DBL_MAX bucket', () => {
    expect(buildHistogram([])).toEqual({
      min: 0, max: 0, num: 0, sum: 0, sumSquares: 0, bucketLimit: [Number.MAX_VALUE], bucket: [0],
    });
  });
});

describe('SummaryWriter', () => {
  it('names the file like the TensorBoard Python writer', () => {
    const t = Date.UTC(2026, 0, 2) + 123;
    const dir = newDir();
    const a = new SummaryWriter(dir, { now: () => t });
    const b = new SummaryWriter(dir, { now: () => t, filenameSuffix: '.v2' });
    a.close();
    b.close();
    const m = /^events\.out\.tfevents\.(\d{10})\.(.+)\.(\d+)\.(\d+)$/.exec(basename(a.file));
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBe(Math.floor(t / 1000));
    expect(m![2]).toBe(hostname());
    expect(Number(m![3])).toBe(process.pid);
    expect(basename(b.file)).toBe(`${basename(a.file).replace(/\.\d+$/, '')}.${Number(m![4]) + 1}.v2`);
    // TensorBoard's IsTensorFlowEventsFile rule
    expect(readdirSync(dir).every((f) => f.includes('tfevents'))).toBe(true);
  });

  it('writes a readable file_version event first and flushes it immediately', () => {
    const w = new SummaryWriter(newDir(), { now: () => 1_700_000_000_500 });
    const events = readEvents(w.file);
    expect(events).toEqual([{ wallTime: 1_700_000_000.5, step: 0, fileVersion: 'brain.Event:2' }]);
    w.close();
  });

  it('round-trips scalars, histograms and images', async () => {
    const w = new SummaryWriter(newDir());
    w.addScalar('train/box_loss', 0.1, 0);
    w.addScalar('metrics/mAP_0.5', 1 / 3, 7);
    w.addScalars({ 'x/lr0': 0.01, 'x/lr1': 2.5e-5 }, 2 ** 40);
    const values = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * (i % 7));
    w.addHistogram('weights/conv0', values, 3);
    const rgb = await testPng(17, 9, 3);
    const rgba = await testPng(5, 4, 4);
    w.addImage('val/pred', rgb, 17, 9, 4);
    w.addImage('val/alpha', rgba, 5, 4, 4);
    w.close();

    const events = readEvents(w.file);
    expect(events).toHaveLength(7);
    expect(events.map((e) => e.step)).toEqual([0, 0, 7, 2 ** 40, 3, 4, 4]);
    const now = Date.now() / 1000;
    for (const e of events) expect(Math.abs(e.wallTime - now)).toBeLessThan(60);
    const v = events.slice(1).map((e) => e.summary!);
    expect(v[0]).toEqual([{ tag: 'train/box_loss', simpleValue: Math.fround(0.1) }]);
    expect(v[1]).toEqual([{ tag: 'metrics/mAP_0.5', simpleValue: Math.fround(1 / 3) }]);
    expect(v[2]).toEqual([
      { tag: 'x/lr0', simpleValue: Math.fround(0.01) },
      { tag: 'x/lr1', simpleValue: Math.fround(2.5e-5) },
    ]);

    const h = v[3]![0]!.histo!;
    expect(v[3]![0]!.tag).toBe('weights/conv0');
    expect(h.num).toBe(1000);
    expect(h.bucket.reduce((a, b) => a + b, 0)).toBe(1000);
    expect(h.min).toBe(Math.min(...values));
    expect(h.max).toBe(Math.max(...values));
    expect(h.sum).toBeCloseTo(values.reduce((a, b) => a + b, 0), 9);
    expect(h.bucketLimit).toHaveLength(h.bucket.length);
    for (let i = 1; i < h.bucketLimit.length; i++) expect(h.bucketLimit[i]!).toBeGreaterThan(h.bucketLimit[i - 1]!);
    expect(h).toEqual(buildHistogram(values));

    const img = v[4]![0]!.image!;
    expect(img).toMatchObject({ width: 17, height: 9, colorspace: 3 });
    expect(img.encoded.equals(rgb)).toBe(true);
    const meta = await sharp(img.encoded).metadata();
    expect([meta.width, meta.height, meta.channels]).toEqual([17, 9, 3]);
    expect(v[5]![0]!.image).toMatchObject({ width: 5, height: 4, colorspace: 4 });
  });

  it('lays out a scalar event with the wire tags of event.proto and summary.proto', () => {
    const w = new SummaryWriter(newDir(), { now: () => 2000 });
    w.addScalar('ab', 1, 5);
    w.close();
    const file = readFileSync(w.file);
    const first = Number(file.readBigUInt64LE(0));
    const rec = file.subarray(first + 16 + 12, file.length - 4);
    const f64 = Buffer.alloc(8);
    f64.writeDoubleLE(2);
    const f32 = Buffer.alloc(4);
    f32.writeFloatLE(1);
    // 09 wall_time | 10 05 step | 2a summary { 0a value { 0a 02 'ab' | 15 simple_value } }
    const expected = Buffer.concat([
      Buffer.from([0x09]), f64, Buffer.from([0x10, 0x05, 0x2a, 0x0b, 0x0a, 0x09, 0x0a, 0x02, 0x61, 0x62, 0x15]), f32,
    ]);
    expect(rec.toString('hex')).toBe(expected.toString('hex'));
  });

  it('queues events until maxQueue, flush() or close()', () => {
    const w = new SummaryWriter(newDir(), { maxQueue: 3, flushMs: Infinity });
    w.addScalar('a', 1, 1);
    w.addScalar('a', 2, 2);
    expect(readEvents(w.file)).toHaveLength(1);
    w.addScalar('a', 3, 3);
    expect(readEvents(w.file)).toHaveLength(4);
    w.addScalar('a', 4, 4);
    w.flush();
    expect(readEvents(w.file)).toHaveLength(5);
    w.addScalar('a', 5, 5);
    w.close();
    expect(readEvents(w.file).map((e) => e.summary?.[0]?.simpleValue)).toEqual([undefined, 1, 2, 3, 4, 5]);
    expect(() => w.addScalar('a', 6, 6)).toThrow(/closed/);
  });

  it('flushes on the next event once flushMs has passed', () => {
    let t = 1_000_000;
    const w = new SummaryWriter(newDir(), { flushMs: 100, now: () => t });
    w.addScalar('a', 1, 1);
    expect(readEvents(w.file)).toHaveLength(1);
    t += 100;
    w.addScalar('a', 2, 2);
    expect(readEvents(w.file)).toHaveLength(3);
    w.close();
  });

  it('rejects bad steps and image sizes that disagree with the PNG', async () => {
    const w = new SummaryWriter(newDir());
    expect(() => w.addScalar('a', 1, 1.5)).toThrow(RangeError);
    const png = await testPng(4, 3, 3);
    expect(() => w.addImage('i', png, 3, 4, 0)).toThrow(/does not match the PNG header 4x3/);
    expect(() => w.addImage('i', png, 0, 3, 0)).toThrow(/width must be a positive integer/);
    w.close();
  });

  it('reports a flipped byte as a CRC error naming the record', () => {
    const w = new SummaryWriter(newDir());
    w.addScalar('loss', 0.5, 1);
    w.addScalar('loss', 0.25, 2);
    w.close();
    const buf = readFileSync(w.file);
    const sizes = decodeEvents(buf).length;
    expect(sizes).toBe(3);
    // flip the last byte of the float in the last record's payload (just before its 4-byte data CRC)
    buf[buf.length - 5] ^= 0x40;
    writeFileSync(w.file, buf);
    expect(() => readEvents(w.file)).toThrow(CorruptRecordError);
    expect(() => readEvents(w.file)).toThrow(/record 2 at byte \d+: data CRC mismatch/);
  });
});

describe('decodeEvents', () => {
  it('reads layouts other writers produce: unpacked doubles, repeated singular fields, unknown fields', () => {
    // Event { wall_time, step twice, file_version twice, source_metadata, summary { value { tag, histo } } }
    const event = new ProtoWriter()
      .double(1, 5)
      .int64(2, 3)
      .int64(2, -9)
      .string(3, 'x')
      .string(3, 'brain.Event:2')
      .fork(10)
      .string(1, 'other-writer')
      .ldelim()
      .fork(5)
      .fork(1)
      .string(1, 'h')
      .fixed32(99, 7)
      .fork(5)
      .double(1, -1)
      .double(6, 1)
      .packedDouble(6, [2, 3])
      .double(7, 4)
      .double(7, 5)
      .packedDouble(7, [6])
      .ldelim()
      .ldelim()
      .ldelim()
      .finish();
    expect(decodeEvents(encodeRecord(event))).toEqual([
      {
        wallTime: 5,
        step: -9,
        fileVersion: 'brain.Event:2',
        summary: [{ tag: 'h', histo: { min: -1, max: 0, num: 0, sum: 0, sumSquares: 0, bucketLimit: [1, 2, 3], bucket: [4, 5, 6] } }],
      },
    ]);
  });

  it('reports malformed protobuf inside a record with a good CRC as CorruptRecordError naming the record', () => {
    const good = new ProtoWriter().double(1, 1).finish();
    // step (field 2) whose varint is cut off after one continuation byte
    const truncated = Uint8Array.of(0x10, 0x96);
    // summary (field 5) claiming 5 bytes with 1 left
    const overlong = Uint8Array.of(0x2a, 0x05, 0x0a);
    const file = (bad: Uint8Array) => Buffer.concat([encodeRecord(good), encodeRecord(bad)]);
    expect(() => decodeEvents(file(truncated))).toThrow(/^record 1: malformed Event: truncated varint at byte 1 of the record data$/);
    expect(() => decodeEvents(file(overlong))).toThrow(/^record 1: malformed Event: length 5 runs past the end/);
    let err: unknown;
    try {
      decodeEvents(file(truncated));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CorruptRecordError);
    expect((err as CorruptRecordError).code).toBe('RECORD_CORRUPT');
    expect((err as CorruptRecordError).cause).toBeInstanceOf(ProtoDecodeError);
  });
});
