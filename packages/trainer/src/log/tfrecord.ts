import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { maskedCrc32c } from './crc32c.js';
import { CorruptRecordError } from './log-errors.js';

/**
 * Frames one record as TFRecord does (SPECS.md §1):
 * `uint64 length | masked crc32c(length bytes) | data | masked crc32c(data)`, all little-endian.
 */
export function encodeRecord(data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(data.length + 16);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

/** Options of {@link decodeRecords}. */
export interface DecodeRecordsOptions {
  /**
   * Stop quietly at an incomplete last record instead of throwing. A writer killed mid-append
   * leaves such a tail, and TensorBoard likewise ignores it.
   */
  allowTruncatedTail?: boolean;
}

/**
 * Splits a TFRecord stream into its payloads, verifying both CRCs of every record. Throws
 * {@link CorruptRecordError} naming the record index and byte offset of the first bad record.
 */
export function decodeRecords(buf: Uint8Array, options: DecodeRecordsOptions = {}): Uint8Array[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const records: Uint8Array[] = [];
  let pos = 0;
  for (let index = 0; pos < b.length; index++) {
    const where = `record ${index} at byte ${pos}`;
    if (b.length - pos < 12) {
      if (options.allowTruncatedTail) break;
      throw new CorruptRecordError(`${where}: truncated header (${b.length - pos} of 12 bytes)`);
    }
    if (b.readUInt32LE(pos + 8) !== maskedCrc32c(b.subarray(pos, pos + 8))) {
      throw new CorruptRecordError(`${where}: length CRC mismatch`);
    }
    const length = b.readBigUInt64LE(pos);
    if (length > BigInt(b.length - pos - 16)) {
      if (options.allowTruncatedTail) break;
      throw new CorruptRecordError(`${where}: truncated data (length ${length}, ${b.length - pos - 12} bytes left)`);
    }
    const n = Number(length);
    const data = b.subarray(pos + 12, pos + 12 + n);
    if (b.readUInt32LE(pos + 12 + n) !== maskedCrc32c(data)) {
      throw new CorruptRecordError(`${where}: data CRC mismatch`);
    }
    records.push(data);
    pos += n + 16;
  }
  return records;
}

/** Reads and verifies every record of a TFRecord file; see {@link decodeRecords}. */
export function readRecordFile(file: string, options: DecodeRecordsOptions = {}): Uint8Array[] {
  return decodeRecords(readFileSync(file), options);
}

/**
 * Appends framed records to a file. Records are buffered in memory until {@link TfRecordWriter.flush},
 * which appends them with one synchronous write so a crash loses at most the unflushed batch.
 */
export class TfRecordWriter {
  private fd: number | undefined;
  private pending: Buffer[] = [];

  /** Opens (creating if needed) `file` for appending. */
  constructor(readonly file: string) {
    this.fd = openSync(file, 'a');
  }

  /** Number of records waiting for {@link TfRecordWriter.flush}. */
  get pendingCount(): number {
    return this.pending.length;
  }

  /** Queues one record. */
  write(data: Uint8Array): void {
    if (this.fd === undefined) throw new Error(`TfRecordWriter for ${this.file} is closed`);
    this.pending.push(encodeRecord(data));
  }

  /** Appends every queued record to the file. */
  flush(): void {
    if (this.fd === undefined || this.pending.length === 0) return;
    const batch = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    this.pending = [];
    let off = 0;
    while (off < batch.length) off += writeSync(this.fd, batch, off, batch.length - off);
  }

  /** Flushes and closes the file; later writes throw. Closing twice is allowed. */
  close(): void {
    if (this.fd === undefined) return;
    this.flush();
    closeSync(this.fd);
    this.fd = undefined;
  }
}
