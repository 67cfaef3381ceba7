import { LITTLE_ENDIAN_HOST, WireType, type WireTypeValue } from './wire-type.js';

const TEXT = new TextEncoder();
const TWO_32 = 0x1_0000_0000;
const INT64_MIN = -(1n << 63n);
const UINT64_LIMIT = 1n << 64n;

/** Bytes a varint of the non-negative 32-bit value `v` takes. */
function varint32Size(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x20_0000 ? 3 : v < 0x1000_0000 ? 4 : 5;
}

/**
 * A general protobuf wire-format encoder over one growing buffer. Nested messages are written in
 * place: {@link ProtoWriter.fork} opens one, {@link ProtoWriter.ldelim} closes it and fills in its
 * length, so no message is encoded twice. The writer writes what it is told; skipping proto3
 * defaults is the caller's business.
 * @example
 * const w = new ProtoWriter();
 * w.int64(1, 8).fork(7).string(2, 'main').ldelim();
 * const bytes = w.finish();
 */
export class ProtoWriter {
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;
  // Per open fork: the offset of its length and the bytes reserved for it.
  private readonly forks: number[] = [];

  /** `initialCapacity` in bytes; a good guess (for example the model's weight bytes) avoids regrowth. */
  constructor(initialCapacity = 256) {
    if (!Number.isSafeInteger(initialCapacity) || initialCapacity < 0) {
      throw new RangeError(`initialCapacity must be a non-negative integer, got ${initialCapacity}`);
    }
    this.buf = new Uint8Array(Math.max(16, initialCapacity));
    this.view = new DataView(this.buf.buffer);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.pos;
  }

  private reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  /** Writes a field key (field number and wire type). */
  tag(field: number, wireType: WireTypeValue): this {
    if (!Number.isInteger(field) || field < 1 || field > 0x1fff_ffff) {
      throw new RangeError(`field must be an integer in 1..2^29-1, got ${field}`);
    }
    this.reserve(5);
    this.varint32(field * 8 + wireType);
    return this;
  }

  // Unchecked: `v` is an integer in [0, 2^32) and 5 bytes are reserved.
  private varint32(v: number): void {
    const buf = this.buf;
    while (v > 0x7f) {
      buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[this.pos++] = v;
  }

  // Unchecked: lo and hi are the two 32-bit halves of a 64-bit value.
  private varint64(lo: number, hi: number): void {
    this.reserve(10);
    const buf = this.buf;
    while (hi !== 0) {
      buf[this.pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    while (lo > 0x7f) {
      buf[this.pos++] = (lo & 0x7f) | 0x80;
      lo >>>= 7;
    }
    buf[this.pos++] = lo;
  }

  /**
   * Writes a bare varint: a safe-integer number or a bigint in [-2^63, 2^64). Negative values are
   * 64-bit two's complement (10 bytes), as protobuf encodes negative int32 and int64.
   */
  rawVarint(value: number | bigint): this {
    if (typeof value === 'number') {
      if (value >= 0 && value < TWO_32 && Number.isInteger(value)) {
        this.reserve(5);
        this.varint32(value);
        return this;
      }
      if (!Number.isSafeInteger(value)) throw new RangeError(`varint value must be a safe integer, got ${value}`);
      const mag = Math.abs(value);
      let lo = mag % TWO_32;
      let hi = (mag - lo) / TWO_32;
      if (value < 0) {
        // Two's complement negation of the 64-bit magnitude.
        lo = (~lo + 1) >>> 0;
        hi = (~hi + (lo === 0 ? 1 : 0)) >>> 0;
      }
      this.varint64(lo, hi);
      return this;
    }
    if (typeof value !== 'bigint') throw new TypeError(`varint value must be a number or bigint, got ${typeof value}`);
    if (value < INT64_MIN || value >= UINT64_LIMIT) throw new RangeError(`varint value out of 64-bit range: ${value}`);
    const u = BigInt.asUintN(64, value);
    this.varint64(Number(u & 0xffff_ffffn), Number(u >> 32n));
    return this;
  }

  /** Writes raw bytes with no key or length prefix (for example a preserved unknown field). */
  raw(bytes: Uint8Array): this {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
    return this;
  }

  /** uint32 / uint64 field (wire type 0); values must be non-negative. */
  uint64(field: number, value: number | bigint): this {
    if (value < 0) throw new RangeError(`field ${field}: unsigned value must be non-negative, got ${value}`);
    return this.tag(field, WireType.VARINT).rawVarint(value);
  }

  /** int32 / int64 / enum field (wire type 0); negative values take 10 bytes. */
  int64(field: number, value: number | bigint): this {
    return this.tag(field, WireType.VARINT).rawVarint(value);
  }

  /** int32 field; the value must fit in 32 bits. */
  int32(field: number, value: number): this {
    if ((value | 0) !== value) throw new RangeError(`field ${field}: int32 value out of range: ${value}`);
    return this.tag(field, WireType.VARINT).rawVarint(value);
  }

  /** uint32 field; the value must fit in 32 bits. */
  uint32(field: number, value: number): this {
    if (value >>> 0 !== value) throw new RangeError(`field ${field}: uint32 value out of range: ${value}`);
    return this.tag(field, WireType.VARINT).rawVarint(value);
  }

  /** sint32 / sint64 field (zigzag varint). */
  sint64(field: number, value: number | bigint): this {
    const v = BigInt(value);
    if (v < INT64_MIN || v >= 1n << 63n) throw new RangeError(`field ${field}: sint64 value out of range: ${value}`);
    return this.tag(field, WireType.VARINT).rawVarint(BigInt.asUintN(64, (v << 1n) ^ (v >> 63n)));
  }

  /** bool field. */
  bool(field: number, value: boolean): this {
    return this.tag(field, WireType.VARINT).rawVarint(value ? 1 : 0);
  }

  /** fixed32 field (unsigned, little-endian). */
  fixed32(field: number, value: number): this {
    this.tag(field, WireType.FIXED32).reserve(4);
    this.view.setUint32(this.pos, value >>> 0, true);
    this.pos += 4;
    return this;
  }

  /** sfixed32 field (signed, little-endian). */
  sfixed32(field: number, value: number): this {
    this.tag(field, WireType.FIXED32).reserve(4);
    this.view.setInt32(this.pos, value | 0, true);
    this.pos += 4;
    return this;
  }

  /** fixed64 / sfixed64 field (little-endian; negative values are two's complement). */
  fixed64(field: number, value: number | bigint): this {
    this.tag(field, WireType.FIXED64).reserve(8);
    this.view.setBigUint64(this.pos, BigInt.asUintN(64, BigInt(value)), true);
    this.pos += 8;
    return this;
  }

  /** float field (IEEE-754 single, so the value is rounded to float32). */
  float(field: number, value: number): this {
    this.tag(field, WireType.FIXED32).reserve(4);
    this.view.setFloat32(this.pos, value, true);
    this.pos += 4;
    return this;
  }

  /** double field. */
  double(field: number, value: number): this {
    this.tag(field, WireType.FIXED64).reserve(8);
    this.view.setFloat64(this.pos, value, true);
    this.pos += 8;
    return this;
  }

  /** bytes field (length-delimited). */
  bytes(field: number, value: Uint8Array): this {
    return this.tag(field, WireType.LEN).rawVarint(value.length).raw(value);
  }

  /** string field, UTF-8 encoded. */
  string(field: number, value: string): this {
    this.tag(field, WireType.LEN);
    const n = value.length;
    // Short ASCII strings (names, op types) are the common case: no encoder call.
    if (n < 0x80) {
      this.reserve(1 + n);
      const buf = this.buf;
      const start = this.pos;
      let i = 0;
      for (; i < n; i++) {
        const c = value.charCodeAt(i);
        if (c >= 0x80) break;
        buf[start + 1 + i] = c;
      }
      if (i === n) {
        buf[start] = n;
        this.pos = start + 1 + n;
        return this;
      }
    }
    const encoded = TEXT.encode(value);
    return this.rawVarint(encoded.length).raw(encoded);
  }

  /**
   * Starts an embedded message (or any length-delimited field) written in place; close it with
   * {@link ProtoWriter.ldelim}. Forks nest. `expectedLength` is a guess of the body's size: when the
   * final length takes as many varint bytes as the guess, the body is not moved, which matters for
   * messages holding megabytes of tensor data.
   */
  fork(field: number, expectedLength = 0): this {
    const reserved = varint32Size(Math.min(Math.max(0, Math.floor(expectedLength)), TWO_32 - 1));
    this.tag(field, WireType.LEN).reserve(reserved);
    this.forks.push(this.pos, reserved);
    this.pos += reserved;
    return this;
  }

  /** Ends the innermost {@link ProtoWriter.fork} and writes its length. */
  ldelim(): this {
    const reserved = this.forks.pop();
    const start = this.forks.pop();
    if (start === undefined || reserved === undefined) throw new Error('ProtoWriter.ldelim() without a matching fork()');
    const bodyStart = start + reserved;
    const len = this.pos - bodyStart;
    if (len >= TWO_32) throw new RangeError(`embedded message of ${len} bytes exceeds 4 GiB`);
    const size = varint32Size(len);
    if (size !== reserved) {
      // Lengths are written minimal, as protobuf does, so the body moves when the guess was off.
      this.reserve(Math.max(0, size - reserved));
      this.buf.copyWithin(start + size, bodyStart, this.pos);
      this.pos += size - reserved;
    }
    const end = this.pos;
    this.pos = start;
    this.varint32(len);
    this.pos = end;
    return this;
  }

  /** Packed repeated float field; nothing is written for an empty list. */
  packedFloat(field: number, values: ArrayLike<number>): this {
    const n = values.length;
    if (n === 0) return this;
    this.tag(field, WireType.LEN).rawVarint(n * 4).reserve(n * 4);
    if (values instanceof Float32Array && LITTLE_ENDIAN_HOST) {
      this.buf.set(new Uint8Array(values.buffer, values.byteOffset, n * 4), this.pos);
      this.pos += n * 4;
      return this;
    }
    for (let i = 0; i < n; i++, this.pos += 4) this.view.setFloat32(this.pos, values[i], true);
    return this;
  }

  /** Packed repeated double field; nothing is written for an empty list. */
  packedDouble(field: number, values: ArrayLike<number>): this {
    const n = values.length;
    if (n === 0) return this;
    this.tag(field, WireType.LEN).rawVarint(n * 8).reserve(n * 8);
    if (values instanceof Float64Array && LITTLE_ENDIAN_HOST) {
      this.buf.set(new Uint8Array(values.buffer, values.byteOffset, n * 8), this.pos);
      this.pos += n * 8;
      return this;
    }
    for (let i = 0; i < n; i++, this.pos += 8) this.view.setFloat64(this.pos, values[i], true);
    return this;
  }

  /**
   * Packed repeated varint field (int32, int64, uint32, uint64, enum, bool as 0/1): numbers must be
   * safe integers, bigints within 64 bits. Nothing is written for an empty list.
   */
  packedVarint(field: number, values: ArrayLike<number | bigint>): this {
    const n = values.length;
    if (n === 0) return this;
    // Each value takes at least one byte, so n is a fair guess of the length.
    this.fork(field, n);
    if ((values instanceof BigInt64Array || values instanceof BigUint64Array) && LITTLE_ENDIAN_HOST) {
      // Straight from the 32-bit halves in memory: no bigint per element.
      const words = new Uint32Array(values.buffer, values.byteOffset, n * 2);
      for (let i = 0; i < n; i++) this.varint64(words[2 * i], words[2 * i + 1]);
    } else if (values instanceof Int32Array) {
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v >= 0) {
          this.reserve(5);
          this.varint32(v);
        } else this.varint64(v >>> 0, 0xffff_ffff);
      }
    } else {
      for (let i = 0; i < n; i++) this.rawVarint(values[i]);
    }
    return this.ldelim();
  }

  /**
   * The encoded bytes; the writer starts over empty. The buffer is handed over without a copy when
   * little of it is unused (a good `initialCapacity`), and trimmed by copying otherwise.
   */
  finish(): Uint8Array {
    if (this.forks.length > 0) throw new Error(`ProtoWriter.finish() with ${this.forks.length / 2} unclosed fork()`);
    const out = this.buf.length - this.pos <= this.buf.length / 8 ? this.buf.subarray(0, this.pos) : this.buf.slice(0, this.pos);
    this.buf = new Uint8Array(16);
    this.view = new DataView(this.buf.buffer);
    this.pos = 0;
    return out;
  }
}

