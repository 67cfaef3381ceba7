import { DataType } from './types.js';

// TensorProto.DataType values past BFLOAT16 (IR 9 and later; onnx.proto3).
const FLOAT8E4M3FN = 17;
const FLOAT8E4M3FNUZ = 18;
const FLOAT8E5M2 = 19;
const FLOAT8E5M2FNUZ = 20;
const UINT4 = 21;
const INT4 = 22;
const FLOAT4E2M1 = 23;

const NAMES: Record<number, string> = {
  [DataType.UNDEFINED]: 'undefined',
  [DataType.FLOAT]: 'float32',
  [DataType.UINT8]: 'uint8',
  [DataType.INT8]: 'int8',
  [DataType.UINT16]: 'uint16',
  [DataType.INT16]: 'int16',
  [DataType.INT32]: 'int32',
  [DataType.INT64]: 'int64',
  [DataType.STRING]: 'string',
  [DataType.BOOL]: 'bool',
  [DataType.FLOAT16]: 'float16',
  [DataType.DOUBLE]: 'float64',
  [DataType.UINT32]: 'uint32',
  [DataType.UINT64]: 'uint64',
  [DataType.COMPLEX64]: 'complex64',
  [DataType.COMPLEX128]: 'complex128',
  [DataType.BFLOAT16]: 'bfloat16',
  [FLOAT8E4M3FN]: 'float8e4m3fn',
  [FLOAT8E4M3FNUZ]: 'float8e4m3fnuz',
  [FLOAT8E5M2]: 'float8e5m2',
  [FLOAT8E5M2FNUZ]: 'float8e5m2fnuz',
  [UINT4]: 'uint4',
  [INT4]: 'int4',
  [FLOAT4E2M1]: 'float4e2m1',
};

const BYTE_SIZES: Record<number, number> = {
  [DataType.FLOAT]: 4,
  [DataType.UINT8]: 1,
  [DataType.INT8]: 1,
  [DataType.UINT16]: 2,
  [DataType.INT16]: 2,
  [DataType.INT32]: 4,
  [DataType.INT64]: 8,
  [DataType.BOOL]: 1,
  [DataType.FLOAT16]: 2,
  [DataType.DOUBLE]: 8,
  [DataType.UINT32]: 4,
  [DataType.UINT64]: 8,
  [DataType.COMPLEX64]: 8,
  [DataType.COMPLEX128]: 16,
  [DataType.BFLOAT16]: 2,
  [FLOAT8E4M3FN]: 1,
  [FLOAT8E4M3FNUZ]: 1,
  [FLOAT8E5M2]: 1,
  [FLOAT8E5M2FNUZ]: 1,
};

const FLOAT_TYPES = new Set<number>([
  DataType.FLOAT,
  DataType.FLOAT16,
  DataType.DOUBLE,
  DataType.BFLOAT16,
  FLOAT8E4M3FN,
  FLOAT8E4M3FNUZ,
  FLOAT8E5M2,
  FLOAT8E5M2FNUZ,
  FLOAT4E2M1,
]);

/**
 * A TensorProto.DataType as a short numpy-style name: 'float32', 'uint8', 'float16', 'bool', ...;
 * values this file does not know read as `'unknown(<n>)'`.
 */
export function dataTypeName(dataType: number): string {
  return NAMES[dataType] ?? `unknown(${dataType})`;
}

/**
 * Bytes one element takes in `raw_data` (a complex number counts as one element), or undefined
 * for strings, sub-byte types (int4, float4) and unknown types.
 */
export function dataTypeByteSize(dataType: number): number | undefined {
  return BYTE_SIZES[dataType];
}

/** Whether a data type holds real floating-point values (float32/16/64, bfloat16, float8, float4). */
export function isFloatDataType(dataType: number): boolean {
  return FLOAT_TYPES.has(dataType);
}
