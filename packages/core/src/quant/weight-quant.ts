import { AttributeType, type NodeProto, type TensorProto } from '../onnx/types.js';
import type { NameScope } from './graph-index.js';
import { quantizePerTensor, quantizeWeightsPerChannel, roundHalfEven } from './qparams.js';
import { float32Tensor, int8Tensor, readFloat32, uint8Tensor } from './tensor-io.js';

/** A float weight quantized to int8, symmetric (zero point 0), per channel or per tensor. */
export interface QuantizedWeight {
  /** Name of the float initializer it replaces. */
  name: string;
  dims: number[];
  /** Channel axis, or undefined for one scale over the whole tensor. */
  axis: number | undefined;
  type: 'int8' | 'uint8';
  data: Int8Array | Uint8Array;
  scales: Float32Array;
  zeroPoints: Int8Array | Uint8Array;
}

/**
 * Quantizes a float32 initializer to int8 symmetric ([-127, 127], ORT's weight default; [-64, 64]
 * with `reduceRange`), one scale per slice along `axis`, or one scale for the tensor when `axis` is
 * undefined.
 */
export function quantizeWeight(t: TensorProto, axis: number | undefined, reduceRange = false): QuantizedWeight {
  const values = readFloat32(t);
  // Per tensor is per channel over a single channel.
  const shape = axis === undefined ? [1, values.length] : t.dims;
  const q = quantizeWeightsPerChannel(values, shape, axis ?? 0, { type: 'int8', symmetric: true, reduceRange });
  return {
    name: t.name,
    dims: [...t.dims],
    axis,
    type: 'int8',
    data: q.data,
    scales: Float32Array.from(q.scales),
    zeroPoints: Int8Array.from(q.zeroPoints),
  };
}

/**
 * A float constant read where an activation is expected (Mul by 2, an Add offset): one symmetric
 * scale, in the activation type, as ORT quantizes initializers in activation slots.
 */
export function quantizeConstant(t: TensorProto, type: 'int8' | 'uint8'): QuantizedWeight {
  const q = quantizePerTensor(readFloat32(t), { type, symmetric: true });
  const zeroPoints = type === 'int8' ? Int8Array.of(q.zeroPoint) : Uint8Array.of(q.zeroPoint);
  return { name: t.name, dims: [...t.dims], axis: undefined, type, data: q.data, scales: Float32Array.of(q.scale), zeroPoints };
}

/** Re-quantizes `values` with given per-channel scales (zero point 0), as numpy's `quantize_nparray` does. */
export function requantize(values: Float32Array, dims: readonly number[], axis: number | undefined, scales: Float32Array): Int8Array {
  const out = new Int8Array(values.length);
  const inner = axis === undefined ? values.length : dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const channels = axis === undefined ? 1 : dims[axis];
  for (let i = 0; i < values.length; i++) {
    const c = axis === undefined ? 0 : Math.floor(i / inner) % channels;
    const q = roundHalfEven(Math.fround(values[i] / scales[c]));
    out[i] = Math.max(-128, Math.min(127, q));
  }
  return out;
}

/** Initializers and DequantizeLinear node that replace a float weight, named as ORT names them. */
export interface WeightDq {
  initializers: TensorProto[];
  node: NodeProto;
  /** The DequantizeLinear output that consumers read instead of the float weight. */
  output: string;
  scaleName: string;
}

/**
 * ORT's layout for a quantized weight `w`: `w_quantized` (int8), `w_scale`, `w_zero_point`
 * (scalars per tensor, [C] per channel) and `w_DequantizeLinear` → `w_DequantizeLinear_Output`.
 * A symmetric int8 weight's zero points are all 0, so the input is left out (DequantizeLinear-13:
 * absent means 0, and int8 data keeps the type): ORT writes the zeros, one byte per channel.
 */
export function weightDq(q: QuantizedWeight, names: NameScope): WeightDq {
  const qName = names.unique(`${q.name}_quantized`);
  const scaleName = names.unique(`${q.name}_scale`);
  const omitZp = q.type === 'int8' && q.zeroPoints.every((z) => z === 0);
  const zpName = omitZp ? '' : names.unique(`${q.name}_zero_point`);
  const output = names.unique(`${q.name}_DequantizeLinear_Output`);
  const paramDims = q.axis === undefined ? [] : [q.scales.length];
  const intTensor = q.type === 'int8' ? int8Tensor : uint8Tensor;
  const node: NodeProto = {
    name: names.unique(`${q.name}_DequantizeLinear`),
    opType: 'DequantizeLinear',
    domain: '',
    input: omitZp ? [qName, scaleName] : [qName, scaleName, zpName],
    output: [output],
    attribute: q.axis === undefined ? [] : [{ name: 'axis', type: AttributeType.INT, i: BigInt(q.axis) }],
  };
  return {
    initializers: [
      intTensor(qName, q.dims, q.data),
      float32Tensor(scaleName, paramDims, q.scales),
      ...(omitZp ? [] : [intTensor(zpName, paramDims, q.zeroPoints)]),
    ],
    node,
    output,
    scaleName,
  };
}
