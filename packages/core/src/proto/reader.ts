import { ProtoDecodeError } from './proto-error.js';
import { LITTLE_ENDIAN_HOST, WireType } from './wire-type.js';

const TWO_32 = 0x1_0000_0000;
// hi word limit for a safe integer: 2^53 - 1 has hi = 2^21 - 1.
const SAFE_HI = 0x20_0000;
const TEXT = new TextDecoder('utf-8');

/**
 * A cursor over protobuf wire data in a Uint8Array. Every read is checked against `end` (the end of
 * the innermost message being read) and failures throw {@link ProtoDecodeError} with the byte offset;
 * bytes and packed fields never allocate more than the bytes actually present. Length-delimited
 * values are views into the buffer, not copies.
 * @example
 * const r = new ProtoReader(bytes);
 * while (!r.atEnd()) {
 *   const tag = r.readTag();
 *   if (tag === fieldTag(1, WireType.VARINT)) version = r.readInt64Number();
 *   else r.skip(tag);
 * }
 */
export class ProtoReader {
  /** The whole buffer; offsets in errors are relative to its start. */
  readonly buf: Uint8Array;
  /** Next byte to read. */
  pos: number;
  /** End of the current message (exclusive); reads past it fail. */
  end: number;
  /** Offset of the key read by the last {@link ProtoReader.readTag}. */
  tagPos = 0;
  private readonly view: DataView;
  // Halves of the last 64-bit varint, set by readVarintParts.
  private lo = 0;
  private hi = 0;

  constructor(buf: Uint8Array, start = 0, end = buf.length) {
    if (!(buf instanceof Uint8Array)) throw new TypeError('buf must be a Uint8Array');
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > buf.length || start > end) {
      throw new RangeError(`start and end must satisfy 0 <= start <= end <= ${buf.length}, got ${start}, ${end}`);
    }
    this.buf = buf;
    this.pos = start;
    this.end = end;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** Whether the current message has been read to its end. */
  atEnd(): boolean {
    return this.pos >= this.end;
  }

  /** Bytes left in the current message. */
  get remaining(): number {
    return this.end - this.pos;
  }

  /** Throws a {@link ProtoDecodeError} at `offset` (default: the current position). */
  fail(detail: string, offset = this.pos): never {
    throw new ProtoDecodeError(detail, offset);
  }

  /**
   * Reads a field key and returns it as `field * 8 + wireType` (see {@link fieldTag}); rejects field
   * number 0, numbers past 2^29-1 and the wire types 6 and 7.
   */
  readTag(): number {
    this.tagPos = this.pos;
    let tag: number;
    if (this.pos < this.end && this.buf[this.pos] < 0x80) tag = this.buf[this.pos++];
    else {
      this.readVarintParts();
      if (this.hi !== 0) this.fail('field key exceeds 32 bits', this.tagPos);
      tag = this.lo;
    }
    const wt = tag & 7;
    if (tag < 8) this.fail('field number 0', this.tagPos);
    if (wt > 5) this.fail(`invalid wire type ${wt} for field ${tag >>> 3}`, this.tagPos);
    return tag;
  }

  // Reads a varint of up to 10 bytes into lo/hi; bits past 64 are dropped, as protobuf does.
  private readVarintParts(): void {
    const buf = this.buf;
    const end = this.end;
    const start = this.pos;
    let pos = start;
    let lo = 0;
    let hi = 0;
    let b = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      if (pos >= end) this.truncatedVarint(start);
      b = buf[pos++];
      lo |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.pos = pos;
        this.lo = lo >>> 0;
        this.hi = 0;
        return;
      }
    }
    if (pos >= end) this.truncatedVarint(start);
    b = buf[pos++];
    lo |= (b & 0x0f) << 28;
    hi = (b & 0x7f) >> 4;
    if (b >= 0x80) {
      // Bytes 6 to 10 fill hi from bit 3; the tenth byte contributes only bit 63.
      for (let shift = 3; ; shift += 7) {
        if (pos >= end) this.truncatedVarint(start);
        b = buf[pos++];
        hi |= (b & 0x7f) << shift;
        if (b < 0x80) break;
        if (shift === 31) this.fail('varint longer than 10 bytes', start);
      }
    }
    this.pos = pos;
    this.lo = lo >>> 0;
    this.hi = hi >>> 0;
  }

  private truncatedVarint(start: number): never {
    return this.fail(this.end < this.buf.length ? 'varint runs past the end of its message' : 'truncated varint', start);
  }

  /** Varint as uint32 (higher bits dropped, as protobuf does for uint32). */
  readUint32(): number {
    if (this.pos < this.end && this.buf[this.pos] < 0x80) return this.buf[this.pos++];
    this.readVarintParts();
    return this.lo;
  }

  /** Varint as int32 / enum (truncated to 32 bits, two's complement). */
  readInt32(): number {
    return this.readUint32() | 0;
  }

  /** Varint as an unsigned integer number; throws past Number.MAX_SAFE_INTEGER. */
  readVarint(): number {
    if (this.pos < this.end && this.buf[this.pos] < 0x80) return this.buf[this.pos++];
    const start = this.pos;
    this.readVarintParts();
    if (this.hi >= SAFE_HI) this.fail(`value ${this.uint64Value()} exceeds Number.MAX_SAFE_INTEGER`, start);
    return this.hi * TWO_32 + this.lo;
  }

  /** Varint as a signed int64 number; throws when the value is not a safe integer. */
  readInt64Number(): number {
    if (this.pos < this.end && this.buf[this.pos] < 0x80) return this.buf[this.pos++];
    const start = this.pos;
    this.readVarintParts();
    const { lo, hi } = this;
    if (hi < SAFE_HI) return hi * TWO_32 + lo;
    if (hi >= 0x8000_0000) {
      // Negative: magnitude is the two's complement.
      const mlo = (~lo + 1) >>> 0;
      const mhi = (~hi + (mlo === 0 ? 1 : 0)) >>> 0;
      if (mhi < SAFE_HI) return -(mhi * TWO_32 + mlo);
    }
    return this.fail(`value ${BigInt.asIntN(64, this.uint64Value())} is not a safe integer`, start);
  }

  private uint64Value(): bigint {
    return (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }

  /** Varint as uint64. */
  readUint64(): bigint {
    this.readVarintParts();
    return this.hi === 0 ? BigInt(this.lo) : this.uint64Value();
  }

  /** Varint as int64 (two's complement). */
  readInt64(): bigint {
    this.readVarintParts();
    return this.hi === 0 ? BigInt(this.lo) : BigInt.asIntN(64, this.uint64Value());
  }

  /** Zigzag varint as sint32. */
  readSint32(): number {
    const v = this.readUint32();
    return (v >>> 1) ^ -(v & 1);
  }

  /** Zigzag varint as sint64. */
  readSint64(): bigint {
    const v = this.readUint64();
    return (v >> 1n) ^ -(v & 1n);
  }

  /** Varint as bool (any non-zero value is true). */
  readBool(): boolean {
    this.readVarintParts();
    return (this.lo | this.hi) !== 0;
  }

  private need(n: number): number {
    const at = this.pos;
    if (n > this.end - at) {
      this.fail(`needs ${n} bytes but only ${this.end - at} remain${this.end < this.buf.length ? ' in its message' : ''}`, at);
    }
    this.pos = at + n;
    return at;
  }

  /** fixed32 (unsigned). */
  readFixed32(): number {
    return this.view.getUint32(this.need(4), true);
  }

  /** sfixed32. */
  readSfixed32(): number {
    return this.view.getInt32(this.need(4), true);
  }

  /** fixed64 (unsigned). */
  readFixed64(): bigint {
    return this.view.getBigUint64(this.need(8), true);
  }

  /** sfixed64. */
  readSfixed64(): bigint {
    return this.view.getBigInt64(this.need(8), true);
  }

  /** float. */
  readFloat(): number {
    return this.view.getFloat32(this.need(4), true);
  }

  /** double. */
  readDouble(): number {
    return this.view.getFloat64(this.need(8), true);
  }

  /** A length prefix, checked against the bytes left in the current message. */
  readLength(): number {
    const at = this.pos;
    const len = this.readVarint();
    if (len > this.end - this.pos) {
      this.fail(
        `length ${len} runs past the end of the ${this.end < this.buf.length ? 'enclosing message' : 'data'} (${this.end - this.pos} bytes left)`,
        at,
      );
    }
    return len;
  }

  /** A length-delimited value as a view into the buffer (no copy). */
  readBytes(): Uint8Array {
    const len = this.readLength();
    const at = this.pos;
    this.pos += len;
    return this.buf.subarray(at, at + len);
  }

  /** A length-delimited value decoded as UTF-8 (invalid sequences become U+FFFD). */
  readString(): string {
    const len = this.readLength();
    const buf = this.buf;
    const at = this.pos;
    this.pos += len;
    if (len < 64) {
      // Names and op types are short ASCII: decode without the TextDecoder call.
      let s = '';
      for (let i = at; i < at + len; i++) {
        const c = buf[i];
        if (c >= 0x80) return TEXT.decode(buf.subarray(at, at + len));
        s += String.fromCharCode(c);
      }
      return s;
    }
    return TEXT.decode(buf.subarray(at, at + len));
  }

  /**
   * Enters an embedded message: reads its length and limits reads to it. Returns the enclosing
   * end, to pass to {@link ProtoReader.leave} once the message is read.
   */
  enter(): number {
    const len = this.readLength();
    const outer = this.end;
    this.end = this.pos + len;
    return outer;
  }

  /** Leaves the message entered by {@link ProtoReader.enter}. */
  leave(outerEnd: number): void {
    if (this.pos !== this.end) this.fail('embedded message not read to its end');
    this.end = outerEnd;
  }

  /**
   * Skips the value of the field whose key `tag` was just read and returns the whole field's raw
   * bytes (key and value) as a view, for keeping unknown fields. Groups are skipped iteratively.
   */
  skip(tag: number): Uint8Array {
    const start = this.tagPos;
    switch (tag & 7) {
      case WireType.VARINT:
        this.readVarintParts();
        break;
      case WireType.FIXED64:
        this.need(8);
        break;
      case WireType.LEN: {
        // Not `this.pos += this.readLength()`: that adds to the position from before the length.
        const len = this.readLength();
        this.pos += len;
        break;
      }
      case WireType.FIXED32:
        this.need(4);
        break;
      case WireType.START_GROUP:
        this.skipGroup(tag >>> 3);
        break;
      default:
        this.fail(`unexpected end-group for field ${tag >>> 3}`, start);
    }
    return this.buf.subarray(start, this.pos);
  }

  // A stack of open group numbers instead of recursion, so nesting cannot overflow the call stack.
  private skipGroup(field: number): void {
    const open = [field];
    while (open.length > 0) {
      const tag = this.readTag();
      const wt = tag & 7;
      if (wt === WireType.START_GROUP) open.push(tag >>> 3);
      else if (wt === WireType.END_GROUP) {
        const expected = open.pop();
        if (tag >>> 3 !== expected) this.fail(`end-group for field ${tag >>> 3} closes group ${expected}`, this.tagPos);
      } else this.skip(tag);
    }
  }

  private packedBlock(width: number, what: string): { at: number; count: number } {
    const lenAt = this.pos;
    const len = this.readLength();
    if (len % width !== 0) this.fail(`packed ${what} block of ${len} bytes is not a multiple of ${width}`, lenAt);
    const at = this.pos;
    this.pos += len;
    return { at, count: len / width };
  }

  // Copies `count * width` bytes at `at` into a fresh typed array, little-endian on any host.
  private copyFixed<T extends Float32Array | Float64Array>(
    Ctor: { new (n: number): T },
    width: number,
    at: number,
    count: number,
    get: (v: DataView, o: number) => number,
  ): T {
    const out = new Ctor(count);
    if (LITTLE_ENDIAN_HOST) {
      new Uint8Array(out.buffer).set(this.buf.subarray(at, at + count * width));
    } else {
      for (let i = 0; i < count; i++) out[i] = get(this.view, at + i * width);
    }
    return out;
  }

  /** A packed repeated float block (after a LEN key), copied into a Float32Array. */
  readPackedFloat(): Float32Array {
    const { at, count } = this.packedBlock(4, 'float');
    return this.copyFixed(Float32Array, 4, at, count, (v, o) => v.getFloat32(o, true));
  }

  /** A packed repeated double block (after a LEN key), copied into a Float64Array. */
  readPackedDouble(): Float64Array {
    const { at, count } = this.packedBlock(8, 'double');
    return this.copyFixed(Float64Array, 8, at, count, (v, o) => v.getFloat64(o, true));
  }

  /** A packed repeated fixed32 block, as unsigned values. */
  readPackedFixed32(): Uint32Array {
    const { at, count } = this.packedBlock(4, 'fixed32');
    const out = new Uint32Array(count);
    for (let i = 0; i < count; i++) out[i] = this.view.getUint32(at + i * 4, true);
    return out;
  }

  // Counts the varints in a packed block before allocating, so the array is exactly sized.
  private varintBlock(): { end: number; count: number; outerEnd: number } {
    const lenAt = this.pos;
    const len = this.readLength();
    const end = this.pos + len;
    let count = 0;
    const buf = this.buf;
    for (let i = this.pos; i < end; i++) if (buf[i] < 0x80) count++;
    if (len > 0 && buf[end - 1] >= 0x80) this.fail('packed varint block ends inside a varint', lenAt);
    const outerEnd = this.end;
    this.end = end;
    return { end, count, outerEnd };
  }

  /** A packed repeated int32 / enum block. */
  readPackedInt32(): Int32Array {
    const { count, outerEnd } = this.varintBlock();
    const out = new Int32Array(count);
    for (let i = 0; i < count; i++) out[i] = this.readInt32();
    this.end = outerEnd;
    return out;
  }

  /** A packed repeated int64 block as a BigInt64Array (no bigint is created per element). */
  readPackedInt64(): BigInt64Array {
    const { count, outerEnd } = this.varintBlock();
    const out = new BigInt64Array(count);
    this.fillWords(out, count);
    this.end = outerEnd;
    return out;
  }

  /** A packed repeated uint64 block as a BigUint64Array. */
  readPackedUint64(): BigUint64Array {
    const { count, outerEnd } = this.varintBlock();
    const out = new BigUint64Array(count);
    this.fillWords(out, count);
    this.end = outerEnd;
    return out;
  }

  // Writes each varint's two 32-bit halves straight into the 64-bit array's memory.
  private fillWords(out: BigInt64Array | BigUint64Array, count: number): void {
    if (LITTLE_ENDIAN_HOST) {
      const words = new Uint32Array(out.buffer, out.byteOffset, count * 2);
      for (let i = 0; i < count; i++) {
        this.readVarintParts();
        words[2 * i] = this.lo;
        words[2 * i + 1] = this.hi;
      }
      return;
    }
    const asSigned = out instanceof BigInt64Array;
    for (let i = 0; i < count; i++) out[i] = asSigned ? this.readInt64() : this.readUint64();
  }

  /** A packed repeated int64 block appended to `out` as numbers; throws on values that are not safe integers. */
  readPackedInt64Numbers(out: number[]): void {
    const { count, outerEnd } = this.varintBlock();
    for (let i = 0; i < count; i++) out.push(this.readInt64Number());
    this.end = outerEnd;
  }

  /** A packed repeated int64 block appended to `out` as bigints. */
  readPackedInt64Bigints(out: bigint[]): void {
    const { count, outerEnd } = this.varintBlock();
    for (let i = 0; i < count; i++) out.push(this.readInt64());
    this.end = outerEnd;
  }

  /** A packed repeated float block appended to `out` as numbers. */
  readPackedFloatNumbers(out: number[]): void {
    const { at, count } = this.packedBlock(4, 'float');
    for (let i = 0; i < count; i++) out.push(this.view.getFloat32(at + i * 4, true));
  }
}
