import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { crc32c, maskCrc32c, maskedCrc32c } from '../src/log/crc32c.js';
import { CorruptRecordError } from '../src/log/log-errors.js';
import { TfRecordWriter, decodeRecords, encodeRecord, readRecordFile } from '../src/log/tfrecord.js';

const dir = mkdtempSync(join(tmpdir(), 'kd-tfrecord-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function bitwiseCrc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

describe('crc32c', () => {
  it('matches the published test vectors', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(maskedCrc32c(new Uint8Array(8))).toBe(0x07980329);
    expect(crc32c(new Uint8Array(0))).toBe(0);
  });

  it('agrees with a bit-by-bit reference for every tail length and continues across chunks', () => {
    const data = Uint8Array.from({ length: 301 }, (_, i) => (i * 131 + 7) & 0xff);
    for (let n = 0; n <= 40; n++) expect(crc32c(data.subarray(1, 1 + n))).toBe(bitwiseCrc32c(data.subarray(1, 1 + n)));
    expect(crc32c(data)).toBe(bitwiseCrc32c(data));
    expect(crc32c(data.subarray(100), crc32c(data.subarray(0, 100)))).toBe(crc32c(data));
  });

  it('masks by rotating 15 bits and adding the TFRecord delta', () => {
    expect(maskCrc32c(0)).toBe(0xa282ead8);
    expect(maskCrc32c(0x00008000)).toBe((1 + 0xa282ead8) >>> 0);
  });
});

describe('tfrecord', () => {
  it('frames a record with little-endian length and masked CRCs', () => {
    const rec = encodeRecord(new Uint8Array(0));
    expect(rec.length).toBe(16);
    expect(rec.readBigUInt64LE(0)).toBe(0n);
    expect(rec.readUInt32LE(8)).toBe(0x07980329);
    expect(rec.readUInt32LE(12)).toBe(maskCrc32c(0));
  });

  it('writes, appends and reads back records', () => {
    const file = join(dir, 'a.tfrecord');
    const w = new TfRecordWriter(file);
    w.write(Buffer.from('first'));
    w.write(new Uint8Array(1000).fill(7));
    expect(readFileSync(file).length).toBe(0);
    w.flush();
    w.write(Buffer.from('third'));
    w.close();
    w.close();
    expect(() => w.write(Buffer.from('x'))).toThrow(/closed/);
    const recs = readRecordFile(file);
    expect(recs.map((r) => r.length)).toEqual([5, 1000, 5]);
    expect(Buffer.from(recs[2]!).toString()).toBe('third');
  });

  it('names the record whose CRC does not match', () => {
    const good = Buffer.concat([encodeRecord(Buffer.from('aaaa')), encodeRecord(Buffer.from('bbbb'))]);
    const badData = Buffer.from(good);
    badData[20 + 12 + 1] ^= 0x01; // a payload byte of record 1
    expect(() => decodeRecords(badData)).toThrow(/record 1 at byte 20: data CRC mismatch/);
    const badLen = Buffer.from(good);
    badLen[0] ^= 0x01;
    expect(() => decodeRecords(badLen)).toThrow(/record 0 at byte 0: length CRC mismatch/);
  });

  it('treats a truncated tail as an error unless asked to tolerate it', () => {
    const buf = Buffer.concat([encodeRecord(Buffer.from('ok')), encodeRecord(Buffer.from('partial')).subarray(0, 15)]);
    expect(() => decodeRecords(buf)).toThrow(/record 1 .*truncated/);
    expect(decodeRecords(buf, { allowTruncatedTail: true })).toHaveLength(1);
    const file = join(dir, 'trunc.tfrecord');
    writeFileSync(file, buf.subarray(0, buf.length - 10));
    expect(() => readRecordFile(file)).toThrow(CorruptRecordError);
  });
});
