import { makeTensor, tensorValues } from '../onnx/tensor.js';
import { DataType, type TensorProto } from '../onnx/types.js';
import { QuantError } from './quant-error.js';

export { tensorByteSize } from '../onnx/tensor.js';

/** Values of a FLOAT initializer (may share memory with the tensor: read, don't write). */
export function readFloat32(t: TensorProto): Float32Array {
  if (t.dataType !== DataType.FLOAT) {
    throw new QuantError('QUANT_MODEL_INVALID', `tensor '${t.name}' is not float32 (data type ${t.dataType})`);
  }
  return tensorValues(t) as Float32Array;
}

/** A FLOAT initializer. */
export function float32Tensor(name: string, dims: readonly number[], values: ArrayLike<number>): TensorProto {
  return makeTensor(name, DataType.FLOAT, dims, values);
}

/** A FLOAT16 initializer from IEEE half-precision bit patterns. */
export function float16Tensor(name: string, dims: readonly number[], bits: Uint16Array): TensorProto {
  return makeTensor(name, DataType.FLOAT16, dims, bits);
}

/** An INT8 initializer. */
export function int8Tensor(name: string, dims: readonly number[], values: ArrayLike<number>): TensorProto {
  return makeTensor(name, DataType.INT8, dims, values);
}

/** An INT32 initializer. */
export function int32Tensor(name: string, dims: readonly number[], values: ArrayLike<number>): TensorProto {
  return makeTensor(name, DataType.INT32, dims, values);
}

/** An UINT8 initializer. */
export function uint8Tensor(name: string, dims: readonly number[], values: ArrayLike<number>): TensorProto {
  return makeTensor(name, DataType.UINT8, dims, values);
}
