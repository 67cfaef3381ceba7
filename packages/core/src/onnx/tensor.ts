import { LITTLE_ENDIAN_HOST } from '../proto/wire-type.js';
import { dataTypeByteSize, dataTypeName } from './data-type.js';
import { bfloat16BitsToFloat32, float16BitsToFloat32, float32ToBfloat16Bits, float32ToFloat16Bits } from './float16.js';
import { OnnxError } from './onnx-error.js';
import { DataType, type TensorProto } from './types.js';

/**
 * Values of a tensor as {@link tensorValues} returns them: the typed array matching the data type
 * (float16 and bfloat16 as Uint16Array bits, bool as 0/1 bytes, float8 as Uint8Array bits, complex
 * as interleaved real/imaginary pairs), or the raw bytes of each string.
 */
export type TensorValues =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | Uint8Array[];

type NumericArray = Exclude<TensorValues, Uint8Array[]>;
type ArrayCtor = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): NumericArray; BYTES_PER_ELEMENT: number };

const CTORS: Record<number, ArrayCtor> = {
  [DataType.FLOAT]: Float32Array,
  [DataType.UINT8]: Uint8Array,
  [DataType.INT8]: Int8Array,
  [DataType.UINT16]: Uint16Array,
  [DataType.INT16]: Int16Array,
  [DataType.INT32]: Int32Array,
  [DataType.INT64]: BigInt64Array,
  [DataType.BOOL]: Uint8Array,
  [DataType.FLOAT16]: Uint16Array,
  [DataType.DOUBLE]: Float64Array,
  [DataType.UINT32]: Uint32Array,
  [DataType.UINT64]: BigUint64Array,
  [DataType.COMPLEX64]: Float32Array,
  [DataType.COMPLEX128]: Float64Array,
  [DataType.BFLOAT16]: Uint16Array,
  17: Uint8Array,
  18: Uint8Array,
  19: Uint8Array,
  20: Uint8Array,
};

function describe(t: TensorProto): string {
  return `tensor '${t.name}' (${dataTypeName(t.dataType)} [${t.dims.join(', ')}])`;
}

/** Whether the tensor's data lives in a separate file (data_location EXTERNAL or external_data entries). */
export function hasExternalData(t: TensorProto): boolean {
  return t.dataLocation === 1 || (t.externalData !== undefined && t.externalData.length > 0);
}

/** The file an external-data tensor points to ('location' entry), or '?' when it names none. */
export function externalDataLocation(t: TensorProto): string {
  return t.externalData?.find((e) => e.key === 'location')?.value ?? '?';
}

/**
 * Number of elements (the product of `dims`; 1 for a scalar). Throws OnnxError 'ONNX_MALFORMED'
 * for a negative dimension or a product past Number.MAX_SAFE_INTEGER.
 */
export function tensorElementCount(t: TensorProto): number {
  let n = 1;
  for (const d of t.dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw new OnnxError('ONNX_MALFORMED', `${describe(t)} has an invalid dimension ${d}`);
    n *= d;
    if (!Number.isSafeInteger(n)) throw new OnnxError('ONNX_MALFORMED', `${describe(t)} has more than 2^53 elements`);
  }
  return n;
}

function fromRaw(t: TensorProto, raw: Uint8Array, Ctor: ArrayCtor, count: number): NumericArray {
  const size = Ctor.BYTES_PER_ELEMENT;
  if (raw.length !== count * size) {
    throw new OnnxError(
      'ONNX_MALFORMED',
      `${describe(t)} needs ${count * size} bytes of raw_data but has ${raw.length}`,
    );
  }
  if (LITTLE_ENDIAN_HOST) {
    // A view when aligned; raw_data inside a file buffer often is not, and then it is copied.
    if (raw.byteOffset % size === 0) return new Ctor(raw.buffer, raw.byteOffset, count);
    return new Ctor(raw.slice().buffer, 0, count);
  }
  const copy = raw.slice();
  for (let i = 0; i < copy.length; i += size) copy.subarray(i, i + size).reverse();
  return new Ctor(copy.buffer, 0, count);
}

function expectLength(t: TensorProto, field: string, got: number, want: number): void {
  if (got !== want) throw new OnnxError('ONNX_MALFORMED', `${describe(t)} has ${want} values but ${field} holds ${got}`);
}

/**
 * The tensor's values as a typed array of its data type (see {@link TensorValues}), read from
 * `raw_data` or the typed field that holds them. The result may share memory with the tensor (and
 * so with the decoded file): copy it before changing it. Throws OnnxError 'ONNX_EXTERNAL_DATA' for
 * tensors stored in external files (not supported), 'ONNX_MALFORMED' when the data does not match
 * the shape, 'ONNX_UNSUPPORTED' for sub-byte types (int4, uint4, float4).
 * @example const w = tensorValues(initializerMap(graph).get('conv.weight')!) as Float32Array;
 */
export function tensorValues(t: TensorProto): TensorValues {
  if (hasExternalData(t)) {
    throw new OnnxError(
      'ONNX_EXTERNAL_DATA',
      `${describe(t)} keeps its data in the external file '${externalDataLocation(t)}'; ` +
        'external data is not supported: save the model with its weights inside the .onnx file',
    );
  }
  const dt = t.dataType;
  const count = tensorElementCount(t);
  if (dt === DataType.STRING) {
    if (t.rawData !== undefined && t.rawData.length > 0) {
      throw new OnnxError('ONNX_MALFORMED', `${describe(t)} is a string tensor with raw_data (strings use string_data)`);
    }
    const strings = t.stringData ?? [];
    expectLength(t, 'string_data', strings.length, count);
    return strings;
  }
  const Ctor = CTORS[dt];
  if (Ctor === undefined) {
    throw new OnnxError('ONNX_UNSUPPORTED', `${describe(t)} has data type ${dataTypeName(dt)}, which is not supported`);
  }
  const complex = dt === DataType.COMPLEX64 || dt === DataType.COMPLEX128;
  const n = complex ? count * 2 : count;
  if (t.rawData !== undefined) return fromRaw(t, t.rawData, Ctor, n);
  switch (dt) {
    case DataType.FLOAT:
    case DataType.COMPLEX64:
      if (t.floatData !== undefined || n === 0) {
        expectLength(t, 'float_data', t.floatData?.length ?? 0, n);
        return t.floatData ?? new Float32Array(0);
      }
      break;
    case DataType.DOUBLE:
    case DataType.COMPLEX128:
      if (t.doubleData !== undefined || n === 0) {
        expectLength(t, 'double_data', t.doubleData?.length ?? 0, n);
        return t.doubleData ?? new Float64Array(0);
      }
      break;
    case DataType.INT64:
      if (t.int64Data !== undefined || n === 0) {
        expectLength(t, 'int64_data', t.int64Data?.length ?? 0, n);
        return t.int64Data ?? new BigInt64Array(0);
      }
      break;
    case DataType.UINT64:
    case DataType.UINT32:
      if (t.uint64Data !== undefined || n === 0) {
        const src = t.uint64Data ?? new BigUint64Array(0);
        expectLength(t, 'uint64_data', src.length, n);
        if (dt === DataType.UINT64) return src;
        const out = new Uint32Array(n);
        for (let i = 0; i < n; i++) out[i] = Number(src[i] & 0xffff_ffffn);
        return out;
      }
      break;
    default:
      // int32_data holds int32 and every narrower type, widened (float16/bfloat16 as bits).
      if (t.int32Data !== undefined || n === 0) {
        const src = t.int32Data ?? new Int32Array(0);
        expectLength(t, 'int32_data', src.length, n);
        if (dt === DataType.INT32) return src;
        const out = new Ctor(new ArrayBuffer(n * Ctor.BYTES_PER_ELEMENT), 0, n) as Exclude<NumericArray, BigInt64Array | BigUint64Array>;
        if (dt === DataType.BOOL) for (let i = 0; i < n; i++) out[i] = src[i] !== 0 ? 1 : 0;
        else out.set(src);
        return out;
      }
  }
  throw new OnnxError('ONNX_MALFORMED', `${describe(t)} has ${n} elements but no data in raw_data or its typed field`);
}

/**
 * The tensor's values converted to float32: float16, bfloat16, doubles and integers are converted,
 * float32 is returned as is (possibly sharing memory, as in {@link tensorValues}).
 * Throws OnnxError 'ONNX_UNSUPPORTED' for strings, complex numbers and float8 / sub-byte types.
 */
export function tensorToFloat32(t: TensorProto): Float32Array {
  const v = tensorValues(t);
  switch (t.dataType) {
    case DataType.FLOAT:
      return v as Float32Array;
    case DataType.FLOAT16:
      return float16BitsToFloat32(v as Uint16Array);
    case DataType.BFLOAT16:
      return bfloat16BitsToFloat32(v as Uint16Array);
    case DataType.INT64:
    case DataType.UINT64: {
      const b = v as BigInt64Array | BigUint64Array;
      const out = new Float32Array(b.length);
      for (let i = 0; i < b.length; i++) out[i] = Number(b[i]);
      return out;
    }
    case DataType.DOUBLE:
    case DataType.UINT8:
    case DataType.INT8:
    case DataType.UINT16:
    case DataType.INT16:
    case DataType.INT32:
    case DataType.UINT32:
    case DataType.BOOL:
      return Float32Array.from(v as ArrayLike<number>);
    default:
      throw new OnnxError('ONNX_UNSUPPORTED', `${describe(t)} cannot be read as float32`);
  }
}

/** Values accepted by {@link makeTensor}. */
export type TensorInput = ArrayLike<number | bigint | boolean> | readonly string[] | readonly Uint8Array[];

const INT_RANGES: Record<number, readonly [number, number]> = {
  [DataType.UINT8]: [0, 255],
  [DataType.INT8]: [-128, 127],
  [DataType.UINT16]: [0, 65535],
  [DataType.INT16]: [-32768, 32767],
  [DataType.INT32]: [-0x8000_0000, 0x7fff_ffff],
  [DataType.UINT32]: [0, 0xffff_ffff],
  17: [0, 255],
  18: [0, 255],
  19: [0, 255],
  20: [0, 255],
};

function checkedInts(dt: number, values: ArrayLike<unknown>, Ctor: ArrayCtor): NumericArray {
  const n = values.length;
  const out = new Ctor(new ArrayBuffer(n * Ctor.BYTES_PER_ELEMENT), 0, n) as Uint8Array;
  if (values.constructor === out.constructor) {
    out.set(values as Uint8Array);
    return out;
  }
  const [lo, hi] = INT_RANGES[dt];
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
      throw new RangeError(`values[${i}] must be an integer in [${lo}, ${hi}] for ${dataTypeName(dt)}, got ${String(v)}`);
    }
    out[i] = v;
  }
  return out;
}

function checkedBigints(dt: number, values: ArrayLike<unknown>): BigInt64Array | BigUint64Array {
  const signed = dt === DataType.INT64;
  const n = values.length;
  const out = signed ? new BigInt64Array(n) : new BigUint64Array(n);
  if (values.constructor === out.constructor) {
    out.set(values as BigInt64Array & BigUint64Array);
    return out;
  }
  const lo = signed ? -(1n << 63n) : 0n;
  const hi = signed ? (1n << 63n) - 1n : (1n << 64n) - 1n;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    let b: bigint;
    if (typeof v === 'bigint') b = v;
    else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
    else throw new RangeError(`values[${i}] must be a bigint or a safe integer for ${dataTypeName(dt)}, got ${String(v)}`);
    if (b < lo || b > hi) throw new RangeError(`values[${i}] = ${b} is out of range for ${dataTypeName(dt)}`);
    out[i] = b;
  }
  return out;
}

function littleEndianBytes(a: NumericArray): Uint8Array {
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (LITTLE_ENDIAN_HOST || a.BYTES_PER_ELEMENT === 1) return bytes;
  const copy = bytes.slice();
  const size = a.BYTES_PER_ELEMENT;
  for (let i = 0; i < copy.length; i += size) copy.subarray(i, i + size).reverse();
  return copy;
}

function numbers(values: ArrayLike<unknown>, dt: number): ArrayLike<number> {
  for (let i = 0; i < values.length; i++) {
    if (typeof values[i] !== 'number') {
      throw new TypeError(`values[${i}] must be a number for ${dataTypeName(dt)}, got ${typeof values[i]}`);
    }
  }
  return values as ArrayLike<number>;
}

/**
 * A tensor with its values in little-endian `raw_data` (strings in `string_data`). `values` is a
 * typed array or a plain array of the element count `dims` gives (twice that for complex, as
 * real/imaginary pairs). For FLOAT16 and BFLOAT16 a Uint16Array is taken as bits and anything else
 * as real values to round; float8 types take a Uint8Array of bits; INT64 / UINT64 take bigints or
 * safe integers; BOOL takes booleans or 0/1. Integers out of the type's range throw RangeError.
 * @example makeTensor('conv.weight', DataType.FLOAT, [16, 3, 3, 3], weights)
 */
export function makeTensor(name: string, dataType: number, dims: readonly number[], values: TensorInput): TensorProto {
  if (typeof name !== 'string') throw new TypeError(`name must be a string, got ${typeof name}`);
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw new RangeError(`dims must be non-negative integers, got [${dims.join(', ')}]`);
  }
  let count = dims.reduce((a, b) => a * b, 1);
  if (!Number.isSafeInteger(count)) throw new RangeError(`dims [${dims.join(', ')}] hold more than 2^53 elements`);
  if (dataType === DataType.COMPLEX64 || dataType === DataType.COMPLEX128) count *= 2;
  if (values === null || typeof values !== 'object' || typeof values.length !== 'number') {
    throw new TypeError('values must be an array or a typed array');
  }
  if (values.length !== count) {
    throw new RangeError(`values has ${values.length} elements but dims [${dims.join(', ')}] need ${count}`);
  }
  const base: TensorProto = { dims: [...dims], dataType, name };
  let typed: NumericArray;
  switch (dataType) {
    case DataType.STRING: {
      const enc = new TextEncoder();
      base.stringData = Array.from(values as ArrayLike<unknown>, (v, i) => {
        if (typeof v === 'string') return enc.encode(v);
        if (v instanceof Uint8Array) return v.slice();
        throw new TypeError(`values[${i}] must be a string or Uint8Array for a string tensor`);
      });
      return base;
    }
    case DataType.FLOAT:
    case DataType.COMPLEX64:
      typed = Float32Array.from(numbers(values, dataType));
      break;
    case DataType.DOUBLE:
    case DataType.COMPLEX128:
      typed = Float64Array.from(numbers(values, dataType));
      break;
    case DataType.FLOAT16:
      typed = values instanceof Uint16Array ? values.slice() : float32ToFloat16Bits(numbers(values, dataType));
      break;
    case DataType.BFLOAT16:
      typed = values instanceof Uint16Array ? values.slice() : float32ToBfloat16Bits(numbers(values, dataType));
      break;
    case DataType.BOOL:
      typed = Uint8Array.from(values as ArrayLike<unknown>, (v, i) => {
        if (v === true || v === 1) return 1;
        if (v === false || v === 0) return 0;
        throw new RangeError(`values[${i}] must be a boolean or 0/1 for bool, got ${String(v)}`);
      });
      break;
    case DataType.INT64:
    case DataType.UINT64:
      typed = checkedBigints(dataType, values);
      break;
    default: {
      const Ctor = CTORS[dataType];
      if (Ctor === undefined || INT_RANGES[dataType] === undefined) {
        throw new RangeError(`dataType ${dataTypeName(dataType)} is not supported by makeTensor`);
      }
      typed = checkedInts(dataType, values, Ctor);
    }
  }
  base.rawData = littleEndianBytes(typed);
  return base;
}

/** Bytes the tensor's values take in memory: elements × element size, or the string bytes (0 for unknown types). */
export function tensorByteSize(t: TensorProto): number {
  if (t.dataType === DataType.STRING) return (t.stringData ?? []).reduce((a, s) => a + s.length, 0);
  const size = dataTypeByteSize(t.dataType);
  if (size !== undefined) return tensorElementCount(t) * size;
  // int4 / uint4 / float4 pack two elements a byte.
  if (t.dataType >= 21 && t.dataType <= 23) return Math.ceil(tensorElementCount(t) / 2);
  return 0;
}
