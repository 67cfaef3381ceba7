import { describe, expect, it } from 'vitest';
import { ProtoDecodeError } from '../src/proto/proto-error.js';
import { ProtoReader } from '../src/proto/reader.js';
import { fieldTag, WireType } from '../src/proto/wire-type.js';
import { ProtoWriter } from '../src/proto/writer.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h.replace(/\s+/g, ''), 'hex'));

function failure(fn: () => unknown): ProtoDecodeError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ProtoDecodeError) return e;
    throw e;
  }
  throw new Error('expected a ProtoDecodeError');
}

describe('ProtoWriter', () => {
  it('encodes varints as the protobuf documentation shows', () => {
    // protobuf.dev encoding guide: 150 → 96 01 for field 1; 300 → ac 02.
    expect(hex(new ProtoWriter().int64(1, 150).finish())).toBe('089601');
    expect(hex(new ProtoWriter().rawVarint(300).finish())).toBe('ac02');
    expect(hex(new ProtoWriter().rawVarint(0).finish())).toBe('00');
    expect(hex(new ProtoWriter().rawVarint(2 ** 32).finish())).toBe('8080808010');
    expect(hex(new ProtoWriter().rawVarint(Number.MAX_SAFE_INTEGER).finish())).toBe('ffffffffffffff0f');
  });

  it('writes negative int32 and int64 as ten-byte two\'s complement', () => {
    expect(hex(new ProtoWriter().rawVarint(-1).finish())).toBe('ffffffffffffffffff01');
    expect(hex(new ProtoWriter().rawVarint(-1n).finish())).toBe('ffffffffffffffffff01');
    expect(hex(new ProtoWriter().int32(1, -2).finish())).toBe('08feffffffffffffffff01');
    expect(hex(new ProtoWriter().rawVarint(-(2n ** 63n)).finish())).toBe('80808080808080808001');
    expect(hex(new ProtoWriter().rawVarint(2n ** 64n - 1n).finish())).toBe('ffffffffffffffffff01');
    // A negative number past 2^32 in magnitude goes through the number path, not bigint.
    expect(hex(new ProtoWriter().rawVarint(-(2 ** 40)).finish())).toBe(hex(new ProtoWriter().rawVarint(-(2n ** 40n)).finish()));
  });

  it('rejects values that do not fit', () => {
    expect(() => new ProtoWriter().rawVarint(2 ** 53)).toThrow(RangeError);
    expect(() => new ProtoWriter().rawVarint(1.5)).toThrow(RangeError);
    expect(() => new ProtoWriter().rawVarint(2n ** 64n)).toThrow(RangeError);
    expect(() => new ProtoWriter().int32(1, 2 ** 31)).toThrow(RangeError);
    expect(() => new ProtoWriter().uint64(1, -1)).toThrow(RangeError);
    expect(() => new ProtoWriter().tag(0, WireType.VARINT)).toThrow(/field/);
  });

  it('writes strings as UTF-8 with their byte length', () => {
    expect(hex(new ProtoWriter().string(2, 'Conv').finish())).toBe('1204436f6e76');
    expect(hex(new ProtoWriter().string(2, 'é€').finish())).toBe('1205c3a9e282ac');
    const long = 'x'.repeat(200);
    const w = new ProtoWriter().string(1, long).finish();
    expect(hex(w.subarray(0, 3))).toBe('0ac801');
    expect(w.length).toBe(203);
  });

  it.each([0, 1, 127, 128, 16383, 16384, 70000])('fork/ldelim fixes up a body of %i bytes', (n) => {
    const w = new ProtoWriter(16);
    w.int64(1, 7).fork(2).raw(new Uint8Array(n).fill(0xab)).ldelim().int64(3, 9);
    const out = w.finish();
    const r = new ProtoReader(out);
    expect(r.readTag()).toBe(fieldTag(1, WireType.VARINT));
    expect(r.readVarint()).toBe(7);
    expect(r.readTag()).toBe(fieldTag(2, WireType.LEN));
    const body = r.readBytes();
    expect(body.length).toBe(n);
    expect(body.every((b) => b === 0xab)).toBe(true);
    expect(r.readTag()).toBe(fieldTag(3, WireType.VARINT));
    expect(r.readVarint()).toBe(9);
    expect(r.atEnd()).toBe(true);
  });

  it.each([
    [0, 300],
    [300, 0],
    [100, 20000],
    [20000, 100],
    [20000, 20000],
  ])('fork with a size guess of %i writes a minimal length for a body of %i bytes', (guess, n) => {
    const body = new Uint8Array(n).fill(7);
    const guessed = new ProtoWriter().fork(3, guess).raw(body).ldelim().int64(4, 1).finish();
    const plain = new ProtoWriter().bytes(3, body).int64(4, 1).finish();
    expect(hex(guessed)).toBe(hex(plain));
  });

  it('starts over after finish', () => {
    const w = new ProtoWriter(8);
    const a = w.int64(1, 1).finish();
    const b = w.int64(2, 2).finish();
    expect(hex(a)).toBe('0801');
    expect(hex(b)).toBe('1002');
  });

  it('nests forks', () => {
    const w = new ProtoWriter();
    w.fork(1).fork(2).string(3, 'a'.repeat(130)).ldelim().ldelim();
    const r = new ProtoReader(w.finish());
    r.readTag();
    const outer = r.enter();
    r.readTag();
    const inner = r.enter();
    r.readTag();
    expect(r.readString()).toBe('a'.repeat(130));
    r.leave(inner);
    r.leave(outer);
    expect(r.atEnd()).toBe(true);
    expect(() => new ProtoWriter().fork(1).finish()).toThrow(/unclosed/);
  });

  it('writes packed fields and skips empty ones', () => {
    expect(hex(new ProtoWriter().packedVarint(4, [3, 270, 86942]).finish())).toBe('2206038e029ea705');
    expect(new ProtoWriter().packedVarint(4, []).finish().length).toBe(0);
    expect(hex(new ProtoWriter().packedFloat(1, [1, -2]).finish())).toBe('0a080000803f000000c0');
    expect(hex(new ProtoWriter().packedFloat(1, new Float32Array([1, -2])).finish())).toBe('0a080000803f000000c0');
    expect(hex(new ProtoWriter().packedDouble(1, [1]).finish())).toBe('0a08000000000000f03f');
  });

  it('writes typed arrays as varints exactly like plain arrays', () => {
    const same = (a: ArrayLike<number | bigint>, b: ArrayLike<number | bigint>): void =>
      expect(hex(new ProtoWriter().packedVarint(1, a).finish())).toBe(hex(new ProtoWriter().packedVarint(1, b).finish()));
    same(new Int32Array([-1, 0, 300, -2147483648, 2147483647]), [-1, 0, 300, -2147483648, 2147483647]);
    same(new BigInt64Array([-(2n ** 63n), -1n, 0n, 2n ** 40n]), [-(2n ** 63n), -1n, 0n, 2n ** 40n]);
    same(new BigUint64Array([2n ** 64n - 1n, 127n, 128n]), [2n ** 64n - 1n, 127n, 128n]);
  });
});

describe('ProtoReader', () => {
  it('reads every scalar type back', () => {
    const w = new ProtoWriter();
    w.uint64(1, 2n ** 64n - 1n)
      .int64(2, -(2n ** 63n))
      .int32(3, -5)
      .sint64(4, -3)
      .sint64(5, 2n ** 62n)
      .bool(6, true)
      .fixed32(7, 0xdeadbeef)
      .sfixed32(8, -7)
      .fixed64(9, 2n ** 64n - 2n)
      .fixed64(10, -9n)
      .float(11, 1.5)
      .double(12, Math.PI)
      .bytes(13, new Uint8Array([1, 2, 3]))
      .string(14, 'naïve')
      .uint32(15, 0xffffffff);
    const r = new ProtoReader(w.finish());
    const next = (field: number, wt: number): void => expect(r.readTag()).toBe(fieldTag(field, wt as 0));
    next(1, 0);
    expect(r.readUint64()).toBe(2n ** 64n - 1n);
    next(2, 0);
    expect(r.readInt64()).toBe(-(2n ** 63n));
    next(3, 0);
    expect(r.readInt32()).toBe(-5);
    next(4, 0);
    expect(r.readSint64()).toBe(-3n);
    next(5, 0);
    expect(r.readSint64()).toBe(2n ** 62n);
    next(6, 0);
    expect(r.readBool()).toBe(true);
    next(7, 5);
    expect(r.readFixed32()).toBe(0xdeadbeef);
    next(8, 5);
    expect(r.readSfixed32()).toBe(-7);
    next(9, 1);
    expect(r.readFixed64()).toBe(2n ** 64n - 2n);
    next(10, 1);
    expect(r.readSfixed64()).toBe(-9n);
    next(11, 5);
    expect(r.readFloat()).toBe(1.5);
    next(12, 1);
    expect(r.readDouble()).toBe(Math.PI);
    next(13, 2);
    expect([...r.readBytes()]).toEqual([1, 2, 3]);
    next(14, 2);
    expect(r.readString()).toBe('naïve');
    next(15, 0);
    expect(r.readUint32()).toBe(0xffffffff);
    expect(r.atEnd()).toBe(true);
  });

  it('reads int64 as a number when safe and refuses otherwise', () => {
    const read = (v: number | bigint): number => new ProtoReader(new ProtoWriter().rawVarint(v).finish()).readInt64Number();
    expect(read(-1)).toBe(-1);
    expect(read(Number.MAX_SAFE_INTEGER)).toBe(Number.MAX_SAFE_INTEGER);
    expect(read(Number.MIN_SAFE_INTEGER)).toBe(Number.MIN_SAFE_INTEGER);
    expect(read(2 ** 40 + 3)).toBe(2 ** 40 + 3);
    expect(() => read(2n ** 53n)).toThrow(/9007199254740992 is not a safe integer/);
    expect(() => read(-(2n ** 53n))).toThrow(/-9007199254740992 is not a safe integer/);
    const unsigned = (v: bigint): number => new ProtoReader(new ProtoWriter().rawVarint(v).finish()).readVarint();
    expect(unsigned(2n ** 53n - 1n)).toBe(Number.MAX_SAFE_INTEGER);
    expect(() => unsigned(2n ** 64n - 1n)).toThrow(/exceeds Number.MAX_SAFE_INTEGER/);
  });

  it('truncates int32 as protobuf does and drops bits past 64', () => {
    expect(new ProtoReader(bytes('ffffffff0f')).readInt32()).toBe(-1);
    expect(new ProtoReader(bytes('ffffffffffffffffff7f')).readUint64()).toBe(2n ** 64n - 1n);
  });

  it('reports truncation, over-long varints and bad lengths with byte offsets', () => {
    let e = failure(() => new ProtoReader(bytes('08 80 80')).readTag() && new ProtoReader(bytes('0880 80'), 1).readVarint());
    expect(e.offset).toBe(1);
    expect(e.message).toMatch(/truncated varint at byte 1/);
    e = failure(() => new ProtoReader(bytes('ffffffffffffffffffff01')).readUint64());
    expect(e.detail).toMatch(/longer than 10 bytes/);
    e = failure(() => {
      const r = new ProtoReader(bytes('0a 05 01 02'));
      r.readTag();
      r.readBytes();
    });
    expect(e.offset).toBe(1);
    expect(e.detail).toMatch(/length 5 runs past the end/);
    e = failure(() => new ProtoReader(bytes('0f')).readTag());
    expect(e.detail).toMatch(/invalid wire type 7/);
    e = failure(() => new ProtoReader(bytes('00')).readTag());
    expect(e.detail).toMatch(/field number 0/);
    e = failure(() => new ProtoReader(bytes('0d 00 00')).readTag() && new ProtoReader(bytes('0d0000'), 1).readFloat());
    expect(e.detail).toMatch(/needs 4 bytes but only 2 remain/);
  });

  it('keeps reads inside the entered message', () => {
    // Field 1 holds a 2-byte message whose inner string claims 3 bytes: the outer data has them, the message does not.
    const r = new ProtoReader(bytes('0a 02 12 03 41 42 43'));
    r.readTag();
    r.enter();
    r.readTag();
    const e = failure(() => r.readBytes());
    expect(e.detail).toMatch(/enclosing message/);
  });

  it('skips unknown fields, returning their raw bytes, groups included', () => {
    const w = new ProtoWriter().int64(1, 5).fixed64(2, 1n).string(3, 'hi').fixed32(4, 9);
    const grp = bytes('2b 08 01 33 10 02 34 2c'); // group 5 { f1=1, group 6 { f2=2 } }
    const all = new Uint8Array([...w.finish(), ...grp, ...bytes('08 07')]);
    const r = new ProtoReader(all);
    const raws: string[] = [];
    while (!r.atEnd()) raws.push(hex(r.skip(r.readTag())));
    expect(raws).toEqual(['0805', '110100000000000000', '1a026869', '2509000000', '2b0801331002342c', '0807']);
    expect(failure(() => new ProtoReader(bytes('2b 08 01 3c')).skip(0x2b)).detail).toMatch(/end-group/);
    const bad = new ProtoReader(bytes('2b 08 01 3c'));
    expect(failure(() => bad.skip(bad.readTag())).detail).toMatch(/closes group 5/);
    const lone = new ProtoReader(bytes('2c'));
    expect(failure(() => lone.skip(lone.readTag())).detail).toMatch(/unexpected end-group/);
  });

  it('skips deeply nested groups without recursion', () => {
    const depth = 100_000;
    const all = new Uint8Array(depth * 2);
    all.fill(0x0b, 0, depth); // start group 1
    all.fill(0x0c, depth); // end group 1
    const r = new ProtoReader(all);
    expect(r.skip(r.readTag()).length).toBe(all.length);
  });

  it('reads packed blocks into typed arrays', () => {
    const w = new ProtoWriter()
      .packedFloat(1, [1.5, -2])
      .packedDouble(2, [Math.E])
      .packedVarint(3, [-1, 0, 2147483647])
      .packedVarint(4, [-(2n ** 63n), -1n, 2n ** 63n - 1n, 300n])
      .packedVarint(5, [2n ** 64n - 1n, 0n])
      .packedVarint(6, [-1, 2 ** 40]);
    const r = new ProtoReader(w.finish());
    r.readTag();
    expect([...r.readPackedFloat()]).toEqual([1.5, -2]);
    r.readTag();
    expect([...r.readPackedDouble()]).toEqual([Math.E]);
    r.readTag();
    expect([...r.readPackedInt32()]).toEqual([-1, 0, 2147483647]);
    r.readTag();
    expect([...r.readPackedInt64()]).toEqual([-(2n ** 63n), -1n, 2n ** 63n - 1n, 300n]);
    r.readTag();
    expect([...r.readPackedUint64()]).toEqual([2n ** 64n - 1n, 0n]);
    r.readTag();
    const nums: number[] = [];
    r.readPackedInt64Numbers(nums);
    expect(nums).toEqual([-1, 2 ** 40]);
    expect(r.atEnd()).toBe(true);
  });

  it('copies packed floats that sit at an unaligned offset', () => {
    const payload = new ProtoWriter().packedFloat(1, [0.25, 8]).finish();
    const shifted = new Uint8Array(payload.length + 1);
    shifted.set(payload, 1);
    const r = new ProtoReader(shifted, 1);
    r.readTag();
    expect([...r.readPackedFloat()]).toEqual([0.25, 8]);
  });

  it('rejects packed blocks that end inside a value', () => {
    expect(failure(() => new ProtoReader(bytes('05 00 00 80 3f 00'), 0).readPackedFloat()).detail).toMatch(/not a multiple of 4/);
    expect(failure(() => new ProtoReader(bytes('02 01 80')).readPackedInt64()).detail).toMatch(/ends inside a varint/);
    // A 2^31 element count claimed by a 6-byte block fails before allocating.
    expect(failure(() => new ProtoReader(bytes('80 80 80 80 08 00')).readPackedInt64()).detail).toMatch(/runs past the end/);
  });
});
