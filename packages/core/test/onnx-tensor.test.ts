import { describe, expect, it } from 'vitest';
import { dataTypeByteSize, dataTypeName, isFloatDataType } from '../src/onnx/data-type.js';
import { decodeTensor } from '../src/onnx/decode.js';
import { encodeTensor } from '../src/onnx/encode.js';
import { bfloat16BitsToFloat32, float16BitsToFloat32, float32ToBfloat16Bits, float32ToFloat16Bits } from '../src/onnx/float16.js';
import { OnnxError } from '../src/onnx/onnx-error.js';
import { makeTensor, tensorByteSize, tensorElementCount, tensorToFloat32, tensorValues } from '../src/onnx/tensor.js';
import { DataType, type TensorProto } from '../src/onnx/types.js';

const hex16 = (a: Uint16Array): string[] => [...a].map((v) => v.toString(16).padStart(4, '0'));

function onnxError(fn: () => unknown): OnnxError {
  try {
    fn();
  } catch (e) {
    if (e instanceof OnnxError) return e;
    throw e;
  }
  throw new Error('expected an OnnxError');
}

describe('float16 conversion', () => {
  it('matches IEEE-754 binary16 for known values', () => {
    const v = [1, -2, 65504, 0.1, 1 / 3, 0, -0, Infinity, -Infinity, 2 ** -14, 2 ** -24, 5.960464477539063e-8 * 1.5];
    // numpy: np.array(v, np.float32).astype(np.float16).view(np.uint16)
    expect(hex16(float32ToFloat16Bits(v))).toEqual([
      '3c00', 'c000', '7bff', '2e66', '3555', '0000', '8000', '7c00', 'fc00', '0400', '0001', '0002',
    ]);
  });

  it('rounds to nearest even, overflowing to infinity from 65520', () => {
    expect(hex16(float32ToFloat16Bits([65519.99, 65520, 1e10, -70000]))).toEqual(['7bff', '7c00', '7c00', 'fc00']);
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1).
    expect(hex16(float32ToFloat16Bits([1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -11 + 2 ** -20]))).toEqual(['3c00', '3c02', '3c01']);
    // 2^-25 is half the smallest subnormal: ties to even (0); anything above rounds up.
    expect(hex16(float32ToFloat16Bits([2 ** -25, 2 ** -25 * 1.0001, 2 ** -26, 3 * 2 ** -25]))).toEqual(['0000', '0001', '0000', '0002']);
    // Rounding a subnormal up into the smallest normal.
    expect(hex16(float32ToFloat16Bits([2 ** -14 - 2 ** -25]))).toEqual(['0400']);
  });

  it('keeps NaN a NaN, quiet, with its sign', () => {
    const bits = float32ToFloat16Bits([NaN, -NaN]);
    expect(bits[0] & 0x7e00).toBe(0x7e00);
    expect(Number.isNaN(float16BitsToFloat32(bits)[0])).toBe(true);
    const signalling = new Float32Array(new Uint32Array([0xff800001]).buffer);
    expect(float32ToFloat16Bits(signalling)[0] & 0xfe00).toBe(0xfe00);
  });

  it('float16 → float32 → float16 is the identity on all 65 536 bit patterns but NaN payloads', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const f = float16BitsToFloat32(all);
    const back = float32ToFloat16Bits(f);
    for (let i = 0; i < 65536; i++) {
      const isNaN = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
      if (isNaN) expect(Number.isNaN(f[i])).toBe(true);
      else if (back[i] !== i) throw new Error(`0x${i.toString(16)} → ${f[i]} → 0x${back[i].toString(16)}`);
    }
    expect(f[0x3c00]).toBe(1);
    expect(f[0x0001]).toBe(2 ** -24);
    expect(Object.is(f[0x8000], -0)).toBe(true);
    expect(f[0x7bff]).toBe(65504);
  });

  it('converts bfloat16 with round to nearest even', () => {
    expect(hex16(float32ToBfloat16Bits([1, -2, 1 + 2 ** -8, 1 + 3 * 2 ** -8, Infinity]))).toEqual(['3f80', 'c000', '3f80', '3f82', '7f80']);
    expect(Number.isNaN(bfloat16BitsToFloat32(float32ToBfloat16Bits([NaN]))[0])).toBe(true);
    expect([...bfloat16BitsToFloat32([0x3f80, 0xc000])]).toEqual([1, -2]);
  });
});

describe('makeTensor and tensorValues', () => {
  it.each([
    [DataType.FLOAT, [1.5, -2, 3.25], Float32Array],
    [DataType.DOUBLE, [Math.PI, -1e300, 0], Float64Array],
    [DataType.INT8, [-128, 0, 127], Int8Array],
    [DataType.UINT8, [0, 128, 255], Uint8Array],
    [DataType.INT16, [-32768, 1, 32767], Int16Array],
    [DataType.UINT16, [0, 1, 65535], Uint16Array],
    [DataType.INT32, [-2147483648, 0, 2147483647], Int32Array],
    [DataType.UINT32, [0, 1, 4294967295], Uint32Array],
    [DataType.INT64, [-(2n ** 63n), 0n, 2n ** 63n - 1n], BigInt64Array],
    [DataType.UINT64, [0n, 1n, 2n ** 64n - 1n], BigUint64Array],
  ] as const)('round-trips data type %i through raw_data', (dt, values, Ctor) => {
    const t = makeTensor('t', dt, [3], values as unknown as number[]);
    expect(t.rawData!.length).toBe(3 * dataTypeByteSize(dt)!);
    const back = tensorValues(decodeTensor(encodeTensor(t)));
    expect(back).toBeInstanceOf(Ctor);
    expect([...(back as ArrayLike<number | bigint> & Iterable<number | bigint>)]).toEqual([...values]);
  });

  it('writes raw_data little-endian', () => {
    expect([...makeTensor('a', DataType.INT32, [1], [0x01020304]).rawData!]).toEqual([4, 3, 2, 1]);
    expect([...makeTensor('b', DataType.FLOAT, [1], [1]).rawData!]).toEqual([0, 0, 0x80, 0x3f]);
    expect([...makeTensor('c', DataType.INT64, [1], [-2]).rawData!]).toEqual([0xfe, 255, 255, 255, 255, 255, 255, 255]);
  });

  it('takes float16 as bits (Uint16Array) or as values to round', () => {
    const bits = makeTensor('h', DataType.FLOAT16, [2], new Uint16Array([0x3c00, 0xc000]));
    const vals = makeTensor('h', DataType.FLOAT16, [2], [1, -2]);
    expect(vals.rawData).toEqual(bits.rawData);
    expect([...tensorValues(vals) as Uint16Array]).toEqual([0x3c00, 0xc000]);
    expect([...tensorToFloat32(vals)]).toEqual([1, -2]);
    expect([...tensorToFloat32(makeTensor('bf', DataType.BFLOAT16, [1], [3]))]).toEqual([3]);
  });

  it('handles bool, strings, complex and scalars', () => {
    expect([...tensorValues(makeTensor('b', DataType.BOOL, [3], [true, false, 1])) as Uint8Array]).toEqual([1, 0, 1]);
    const s = makeTensor('s', DataType.STRING, [2], ['a', 'ü']);
    expect(s.rawData).toBeUndefined();
    expect((tensorValues(s) as Uint8Array[]).map((b) => new TextDecoder().decode(b))).toEqual(['a', 'ü']);
    expect([...tensorValues(makeTensor('c', DataType.COMPLEX64, [1], [1, -1])) as Float32Array]).toEqual([1, -1]);
    const scalar = makeTensor('k', DataType.FLOAT, [], [42]);
    expect(tensorElementCount(scalar)).toBe(1);
    expect([...tensorValues(scalar) as Float32Array]).toEqual([42]);
  });

  it('rejects values that do not fit', () => {
    expect(() => makeTensor('x', DataType.UINT8, [1], [256])).toThrow(/values\[0\] must be an integer in \[0, 255\] for uint8/);
    expect(() => makeTensor('x', DataType.INT8, [1], [1.5])).toThrow(RangeError);
    expect(() => makeTensor('x', DataType.INT64, [1], [2 ** 53])).toThrow(RangeError);
    expect(() => makeTensor('x', DataType.INT64, [1], [2n ** 63n])).toThrow(/out of range for int64/);
    expect(() => makeTensor('x', DataType.FLOAT, [2, 2], [1, 2, 3])).toThrow(/3 elements but dims \[2, 2\] need 4/);
    expect(() => makeTensor('x', DataType.FLOAT, [-1], [])).toThrow(RangeError);
    expect(() => makeTensor('x', DataType.FLOAT, [1], ['a' as unknown as number])).toThrow(TypeError);
    expect(() => makeTensor('x', DataType.BOOL, [1], [2])).toThrow(RangeError);
    expect(() => makeTensor('x', 22, [2], [1, 2])).toThrow(/int4 is not supported/);
  });

  it('reads every typed storage field, widening int32_data', () => {
    const cases: [TensorProto, unknown[]][] = [
      [{ name: 'f', dims: [2], dataType: DataType.FLOAT, floatData: new Float32Array([1, 2]) }, [1, 2]],
      [{ name: 'i8', dims: [2], dataType: DataType.INT8, int32Data: new Int32Array([-5, 7]) }, [-5, 7]],
      [{ name: 'u16', dims: [1], dataType: DataType.UINT16, int32Data: new Int32Array([65535]) }, [65535]],
      [{ name: 'h', dims: [1], dataType: DataType.FLOAT16, int32Data: new Int32Array([0x3c00]) }, [0x3c00]],
      [{ name: 'b', dims: [2], dataType: DataType.BOOL, int32Data: new Int32Array([0, 5]) }, [0, 1]],
      [{ name: 'i64', dims: [1], dataType: DataType.INT64, int64Data: new BigInt64Array([-3n]) }, [-3n]],
      [{ name: 'd', dims: [1], dataType: DataType.DOUBLE, doubleData: new Float64Array([0.1]) }, [0.1]],
      [{ name: 'u32', dims: [1], dataType: DataType.UINT32, uint64Data: new BigUint64Array([4294967295n]) }, [4294967295]],
      [{ name: 'e', dims: [0], dataType: DataType.FLOAT }, []],
    ];
    for (const [t, want] of cases) expect([...(tensorValues(t) as Iterable<unknown>)]).toEqual(want);
  });

  it('copies unaligned raw_data and views aligned raw_data', () => {
    const buf = new Uint8Array(9);
    buf.set(makeTensor('x', DataType.FLOAT, [2], [1, 2]).rawData!, 1);
    const unaligned = { name: 'x', dims: [2], dataType: DataType.FLOAT, rawData: buf.subarray(1) };
    const v = tensorValues(unaligned) as Float32Array;
    expect([...v]).toEqual([1, 2]);
    expect(v.buffer).not.toBe(buf.buffer);
    const aligned = { name: 'y', dims: [2], dataType: DataType.FLOAT, rawData: buf.subarray(0, 8) };
    expect((tensorValues(aligned) as Float32Array).buffer).toBe(buf.buffer);
  });

  it('fails with OnnxError when data and shape disagree', () => {
    let e = onnxError(() => tensorValues({ name: 'w', dims: [2, 2], dataType: DataType.FLOAT, rawData: new Uint8Array(12) }));
    expect(e.code).toBe('ONNX_MALFORMED');
    expect(e.message).toBe("tensor 'w' (float32 [2, 2]) needs 16 bytes of raw_data but has 12");
    e = onnxError(() => tensorValues({ name: 'w', dims: [3], dataType: DataType.FLOAT, floatData: new Float32Array(2) }));
    expect(e.message).toMatch(/has 3 values but float_data holds 2/);
    e = onnxError(() => tensorValues({ name: 'w', dims: [3], dataType: DataType.FLOAT }));
    expect(e.message).toMatch(/no data/);
    e = onnxError(() => tensorValues({ name: 'w', dims: [-1], dataType: DataType.FLOAT }));
    expect(e.message).toMatch(/invalid dimension -1/);
    e = onnxError(() => tensorValues({ name: 'w', dims: [1], dataType: 99, rawData: new Uint8Array(1) }));
    expect(e.code).toBe('ONNX_UNSUPPORTED');
  });

  it('refuses external data, naming the tensor and the file', () => {
    const t: TensorProto = {
      name: 'conv.weight',
      dims: [16],
      dataType: DataType.FLOAT,
      dataLocation: 1,
      externalData: [{ key: 'location', value: 'model.onnx.data' }, { key: 'offset', value: '0' }],
    };
    const e = onnxError(() => tensorValues(t));
    expect(e.code).toBe('ONNX_EXTERNAL_DATA');
    expect(e.message).toMatch(/tensor 'conv.weight' .* external file 'model.onnx.data'; external data is not supported/);
  });

  it('sizes tensors', () => {
    expect(tensorByteSize(makeTensor('w', DataType.FLOAT, [2, 3], new Float32Array(6)))).toBe(24);
    expect(tensorByteSize(makeTensor('s', DataType.STRING, [2], ['ab', 'c']))).toBe(3);
    expect(tensorByteSize({ name: 'q', dims: [5], dataType: 22 })).toBe(3);
  });
});

describe('data type helpers', () => {
  it('names data types', () => {
    expect([1, 2, 3, 7, 9, 10, 11, 16, 17, 99].map(dataTypeName)).toEqual([
      'float32', 'uint8', 'int8', 'int64', 'bool', 'float16', 'float64', 'bfloat16', 'float8e4m3fn', 'unknown(99)',
    ]);
    expect(isFloatDataType(DataType.FLOAT16)).toBe(true);
    expect(isFloatDataType(DataType.INT8)).toBe(false);
    expect(dataTypeByteSize(DataType.STRING)).toBeUndefined();
  });
});
