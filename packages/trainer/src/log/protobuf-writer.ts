/**
 * A minimal protobuf wire-format encoder: the varint, fixed and length-delimited encodings that the
 * TensorBoard Event, Summary and HistogramProto messages need. Not a general protobuf library.
 */

/** Protobuf wire types. */
export const WireType = { VARINT: 0, FIXED64: 1, LEN: 2, FIXED32: 5 } as const;

/** One of the wire types in {@link WireType}. */
export type WireTypeValue = (typeof WireType)[keyof typeof WireType];

const TEXT = new TextEncoder();
const TWO_64 = 1n << 64n;

/**
 * Appends protobuf fields to a growing buffer; nested messages are written by encoding them with a
 * second writer and passing the result to {@link ProtoWriter.message}.
 * @example new ProtoWriter().double(1, Date.now() / 1000).string(3, 'brain.Event:2').finish()
 */
export class ProtoWriter {
  private buf = new Uint8Array(64);
  private view = new DataView(this.buf.buffer);
  private pos = 0;

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
    if (!Number.isInteger(field) || field < 1 || field > 0x1fffffff) {
      throw new RangeError(`field must be an integer in 1..2^29-1, got ${field}`);
    }
    return this.rawVarint(field * 8 + wireType);
  }

  /**
   * Writes a bare varint. Negative values are encoded as 64-bit two's complement (10 bytes), as
   * protobuf does for int32/int64.
   */
  rawVarint(value: number | bigint): this {
    if (typeof value === 'number') {
      if (!Number.isSafeInteger(value)) throw new RangeError(`varint value must be a safe integer, got ${value}`);
      if (value >= 0 && value < 0x80000000) {
        // Fast path for the common small case: plain 32-bit shifts.
        this.reserve(5);
        let v = value;
        while (v > 0x7f) {
          this.buf[this.pos++] = (v & 0x7f) | 0x80;
          v >>>= 7;
        }
        this.buf[this.pos++] = v;
        return this;
      }
      value = BigInt(value);
    }
    if (value < -(1n << 63n) || value >= TWO_64) throw new RangeError(`varint value out of 64-bit range: ${value}`);
    let v = value < 0n ? value + TWO_64 : value;
    this.reserve(10);
    while (v > 0x7fn) {
      this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
    return this;
  }

  /** Writes raw bytes with no key or length prefix. */
  raw(bytes: Uint8Array): this {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
    return this;
  }

  /** int32/int64/uint32/uint64/bool/enum field (wire type 0). */
  varint(field: number, value: number | bigint | boolean): this {
    const v = typeof value === 'boolean' ? (value ? 1 : 0) : value;
    return this.tag(field, WireType.VARINT).rawVarint(v);
  }

  /** fixed32 field (unsigned 32-bit, little-endian). */
  fixed32(field: number, value: number): this {
    this.tag(field, WireType.FIXED32).reserve(4);
    this.view.setUint32(this.pos, value >>> 0, true);
    this.pos += 4;
    return this;
  }

  /** fixed64 field (unsigned 64-bit, little-endian). */
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
    return this.bytes(field, TEXT.encode(value));
  }

  /** Embedded message field: `value` is an encoded message or a writer holding one. */
  message(field: number, value: Uint8Array | ProtoWriter): this {
    return this.bytes(field, value instanceof ProtoWriter ? value.finish() : value);
  }

  /** Packed repeated double field (the proto3 default for `repeated double`). */
  packedDoubles(field: number, values: ArrayLike<number>): this {
    this.tag(field, WireType.LEN).rawVarint(values.length * 8).reserve(values.length * 8);
    for (let i = 0; i < values.length; i++) {
      this.view.setFloat64(this.pos, values[i]!, true);
      this.pos += 8;
    }
    return this;
  }

  /** The encoded bytes (a copy, so the writer may keep being used). */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}
