/**
 * Scale and zero-point maths of ONNX Runtime's static quantizer (`quant_utils.py` `compute_scale_zp`,
 * `get_qmin_qmax_for_qType`, `quantize_data`, `quantize_nparray`; `base_quantizer.py`
 * `quantize_weight_per_channel_impl`, `quantize_bias_static_impl`), reproduced with numpy's float32
 * rounding so that scales and quantized values come out bit-identical.
 */

/** 8-bit element types a tensor can be quantized to. */
export type QuantType = 'int8' | 'uint8';

/** Typed array holding values of a {@link QuantType}. */
export type QuantArray<T extends QuantType> = T extends 'int8' ? Int8Array : Uint8Array;

/** Options of {@link qRange}. */
export interface QRangeOptions {
  /** Symmetric range: int8 -127..127, uint8 0..254 (default false). */
  symmetric?: boolean;
  /** 7-bit range for U8S8 on CPUs without VNNI; takes precedence over `symmetric` (default false). */
  reduceRange?: boolean;
}

/** Smallest and largest quantized value of a range. */
export interface QRange {
  qmin: number;
  qmax: number;
}

/** Options of {@link computeScaleZeroPoint}. */
export interface ScaleZeroPointOptions {
  type: QuantType;
  /** Widen the range to ±max(|rmin|, |rmax|) and centre the zero point. */
  symmetric: boolean;
  reduceRange?: boolean;
  /** Smallest `rmax - rmin` to enforce (ORT extra option `MinimumRealRange`). */
  minRealRange?: number;
}

/** Result of {@link computeScaleZeroPoint}: `real = scale * (q - zeroPoint)`. */
export interface ScaleZeroPoint {
  /** A float32 value. */
  scale: number;
  zeroPoint: number;
}

/** Options of {@link quantizePerTensor} and {@link quantizeWeightsPerChannel}. */
export interface QuantizeOptions<T extends QuantType = QuantType> {
  type: T;
  symmetric: boolean;
  reduceRange?: boolean;
  minRealRange?: number;
}

/** A tensor quantized with one scale and zero point. */
export interface PerTensorQuantized<T extends QuantType> {
  data: QuantArray<T>;
  scale: number;
  zeroPoint: number;
}

/** A tensor quantized with one scale and zero point per slice along an axis. */
export interface PerChannelQuantized<T extends QuantType> {
  data: QuantArray<T>;
  scales: Float32Array;
  zeroPoints: QuantArray<T>;
}

/** An int32 bias with its per-channel (or single) scales; the zero point is always 0. */
export interface BiasQuantized {
  data: Int32Array;
  scales: Float32Array;
}

// numpy.finfo(float32).tiny: the smallest normal float32.
const FLOAT32_TINY = 2 ** -126;
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

const TYPE_RANGE: Readonly<Record<QuantType, QRange>> = {
  int8: { qmin: -128, qmax: 127 },
  uint8: { qmin: 0, qmax: 255 },
};
const SYMMETRIC_RANGE: Readonly<Record<QuantType, QRange>> = {
  int8: { qmin: -127, qmax: 127 },
  uint8: { qmin: 0, qmax: 254 },
};
const REDUCED_RANGE: Readonly<Record<QuantType, QRange>> = {
  int8: { qmin: -64, qmax: 64 },
  uint8: { qmin: 0, qmax: 127 },
};

function checkType(type: unknown): asserts type is QuantType {
  if (type !== 'int8' && type !== 'uint8') {
    throw new TypeError(`type must be 'int8' or 'uint8', got ${JSON.stringify(type)}`);
  }
}

/**
 * Rounds to the nearest integer, ties to even, as numpy's `round`/`rint` do.
 * @example roundHalfEven(2.5) // 2
 */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  // Math.round sends ties towards +∞; pull odd results of exact ties back down.
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Quantized range of a type, checked in ORT's order: reduce_range, then symmetric, then the full type.
 * @example qRange('int8', { symmetric: true }) // { qmin: -127, qmax: 127 }
 */
export function qRange(type: QuantType, options: QRangeOptions = {}): QRange {
  checkType(type);
  const table = options.reduceRange ? REDUCED_RANGE : options.symmetric ? SYMMETRIC_RANGE : TYPE_RANGE;
  return { ...table[type] };
}

/**
 * ORT's `compute_scale_zp` for a float32 range: the range is widened to include 0 (and made symmetric when asked),
 * the scale is computed in float64 and cast to float32, and a scale below the smallest normal float32 becomes 1
 * with zero point 0.
 * @example computeScaleZeroPoint(-1, 1, { type: 'int8', symmetric: false }) // { scale: fround(2/255), zeroPoint: 0 }
 */
export function computeScaleZeroPoint(rmin: number, rmax: number, options: ScaleZeroPointOptions): ScaleZeroPoint {
  checkType(options.type);
  if (!Number.isFinite(rmin) || !Number.isFinite(rmax)) {
    throw new RangeError(`rmin and rmax must be finite, got ${rmin} and ${rmax}`);
  }
  if (options.minRealRange !== undefined && !(options.minRealRange >= 0 && Number.isFinite(options.minRealRange))) {
    throw new RangeError(`minRealRange must be a finite number >= 0, got ${options.minRealRange}`);
  }
  const { qmin, qmax } = qRange(options.type, options);
  // ORT holds rmin/rmax as float32 arrays, so every step before the float64 division rounds to float32.
  let lo = Math.min(Math.fround(rmin), 0);
  let hi = Math.max(Math.fround(rmax), 0);
  if (options.minRealRange !== undefined) {
    hi = Math.max(hi, Math.fround(lo + Math.fround(options.minRealRange)));
  }
  if (options.symmetric) {
    const absmax = Math.max(Math.abs(lo), Math.abs(hi));
    lo = -absmax;
    hi = absmax;
  }
  const scale = Math.fround(hi - lo) / (qmax - qmin);
  if (scale < FLOAT32_TINY) return { scale: 1, zeroPoint: 0 };
  // Symmetric: (qmin + qmax) / 2 exactly, so every channel of a symmetric tensor shares one zero point.
  const zeroPoint = options.symmetric ? roundHalfEven((qmin + qmax) / 2) : roundHalfEven(qmin - lo / scale);
  // Normalise -0 so zero points compare equal with ===-based tests and serialise as 0.
  return { scale: Math.fround(scale), zeroPoint: zeroPoint + 0 };
}

/** numpy `quantize_nparray`: clip(round_half_even(float32(x / scale)) + zp) to the full range of the type. */
function quantizeInto(
  out: Int8Array | Uint8Array,
  outIndex: (i: number) => number,
  values: Float32Array,
  indices: ArrayLike<number> | null,
  count: number,
  scale: number,
  zeroPoint: number,
  type: QuantType,
): void {
  // ORT clips to the type's full range even for symmetric tensors; |x| <= absmax keeps those within ±127 anyway.
  const { qmin, qmax } = TYPE_RANGE[type];
  for (let k = 0; k < count; k++) {
    const x = values[indices ? indices[k] : k];
    const q = roundHalfEven(Math.fround(x / scale)) + zeroPoint;
    out[outIndex(k)] = q < qmin ? qmin : q > qmax ? qmax : q;
  }
}

function newQuantArray<T extends QuantType>(type: T, n: number): QuantArray<T> {
  return (type === 'int8' ? new Int8Array(n) : new Uint8Array(n)) as QuantArray<T>;
}

function checkFinite(name: string, values: Float32Array): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) throw new RangeError(`${name}[${i}] must be finite, got ${values[i]}`);
  }
}

function minMax(values: Float32Array, indices: ArrayLike<number> | null, count: number): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let k = 0; k < count; k++) {
    const x = values[indices ? indices[k] : k];
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  return [lo, hi];
}

/**
 * ORT's `quantize_data` on a whole tensor: range from the data's min and max, then {@link computeScaleZeroPoint}
 * and element-wise quantization. An empty tensor gets scale 1 and zero point 0.
 * @example quantizePerTensor(Float32Array.of(-1, 0.5, 1), { type: 'int8', symmetric: true })
 */
export function quantizePerTensor<T extends QuantType>(
  values: Float32Array,
  options: QuantizeOptions<T>,
): PerTensorQuantized<T> {
  checkType(options.type);
  checkFinite('values', values);
  const data = newQuantArray(options.type, values.length);
  if (values.length === 0) return { data, scale: 1, zeroPoint: 0 };
  const [lo, hi] = minMax(values, null, values.length);
  const { scale, zeroPoint } = computeScaleZeroPoint(lo, hi, options);
  quantizeInto(data, (k) => k, values, null, values.length, scale, zeroPoint, options.type);
  return { data, scale, zeroPoint };
}

/**
 * ORT's per-channel weight quantization: each slice along `axis` gets its range from its own min and max over the
 * other axes (symmetric: ±absmax) and its own scale and zero point. `axis` may be negative. Defaults to ORT's
 * weight setting, symmetric int8 (-127..127).
 * @example quantizeWeightsPerChannel(w, [16, 3, 3, 3], 0) // Conv weight, one scale per output channel
 */
export function quantizeWeightsPerChannel<T extends QuantType = 'int8'>(
  values: Float32Array,
  shape: readonly number[],
  axis: number,
  options: QuantizeOptions<T> = { type: 'int8', symmetric: true } as QuantizeOptions<T>,
): PerChannelQuantized<T> {
  checkType(options.type);
  for (const [i, d] of shape.entries()) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`shape[${i}] must be a non-negative integer, got ${d}`);
  }
  const rank = shape.length;
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new RangeError(`axis must be an integer in [${-rank}, ${rank - 1}], got ${axis}`);
  }
  const size = shape.reduce((a, b) => a * b, 1);
  if (values.length !== size) {
    throw new RangeError(`values has ${values.length} elements but shape [${shape.join(', ')}] needs ${size}`);
  }
  checkFinite('values', values);
  const ax = axis < 0 ? axis + rank : axis;
  const channels = shape[ax];
  const inner = shape.slice(ax + 1).reduce((a, b) => a * b, 1);
  const outer = size / Math.max(channels * inner, 1);
  const perChannel = outer * inner;
  const data = newQuantArray(options.type, size);
  const scales = new Float32Array(channels);
  const zeroPoints = newQuantArray(options.type, channels);
  const idx = new Int32Array(perChannel);
  for (let c = 0; c < channels; c++) {
    // Flat indices of channel c, in the order numpy's take(c, axis).flatten() visits them.
    let k = 0;
    for (let o = 0; o < outer; o++) {
      const base = (o * channels + c) * inner;
      for (let j = 0; j < inner; j++) idx[k++] = base + j;
    }
    let scale = 1;
    let zeroPoint = 0;
    if (perChannel > 0) {
      const [lo, hi] = minMax(values, idx, perChannel);
      ({ scale, zeroPoint } = computeScaleZeroPoint(lo, hi, options));
    }
    scales[c] = scale;
    zeroPoints[c] = zeroPoint;
    quantizeInto(data, (m) => idx[m], values, idx, perChannel, scale, zeroPoint, options.type);
  }
  return { data, scales, zeroPoints };
}

/**
 * ORT's `quantize_bias_static_impl`: bias scale = float32(inputScale × weightScale × beta) per channel (one weight
 * scale broadcasts), zero point 0, values round_half_even(bias / scale) in float64 clipped to int32. Like ORT a zero
 * scale saturates non-zero biases to the int32 limits; 0 / 0 gives 0 here (numpy's NaN-to-int32 cast is undefined).
 * @example quantizeBiasInt32(Float32Array.of(0.5), 0.02, Float32Array.of(0.01)).data // Int32Array [2500]
 */
export function quantizeBiasInt32(
  bias: Float32Array,
  inputScale: number,
  weightScales: Float32Array | readonly number[] | number,
  options: { beta?: number } = {},
): BiasQuantized {
  const ws = typeof weightScales === 'number' ? [weightScales] : weightScales;
  if (ws.length !== 1 && ws.length !== bias.length) {
    throw new RangeError(`weightScales must have 1 or ${bias.length} (bias length) elements, got ${ws.length}`);
  }
  if (!(Number.isFinite(inputScale) && inputScale >= 0)) {
    throw new RangeError(`inputScale must be a finite number >= 0, got ${inputScale}`);
  }
  const beta = options.beta ?? 1;
  if (!Number.isFinite(beta)) throw new RangeError(`beta must be finite, got ${beta}`);
  checkFinite('bias', bias);
  const scales = new Float32Array(ws.length);
  for (let c = 0; c < ws.length; c++) {
    if (!(Number.isFinite(ws[c]) && ws[c] >= 0)) {
      throw new RangeError(`weightScales[${c}] must be a finite number >= 0, got ${ws[c]}`);
    }
    // float32 array × float32 array × Python float: numpy keeps float32 and casts beta to float32 first.
    scales[c] = Math.fround(Math.fround(Math.fround(inputScale) * Math.fround(ws[c])) * Math.fround(beta));
  }
  const data = new Int32Array(bias.length);
  for (let i = 0; i < bias.length; i++) {
    const s = scales[ws.length === 1 ? 0 : i];
    const q = roundHalfEven(bias[i] / s);
    data[i] = Number.isNaN(q) ? 0 : q < INT32_MIN ? INT32_MIN : q > INT32_MAX ? INT32_MAX : q;
  }
  return { data, scales };
}
