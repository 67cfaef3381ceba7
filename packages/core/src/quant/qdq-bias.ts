import type { NodeProto, TensorProto } from '../onnx/types.js';
import type { QdqAdditions, QdqContext } from './qdq-context.js';
import { DQ_SUFFIX, dqNode } from './qdq-emit.js';
import type { BiasRequest } from './qdq-marks.js';
import type { QdqParams } from './qdq-params.js';
import { quantizeBiasInt32 } from './qparams.js';
import { float32Tensor, int32Tensor, readFloat32 } from './tensor-io.js';
import { requantize, type QuantizedWeight } from './weight-quant.js';

/** The biases now int32, by the name of their DequantizeLinear output, and the nodes whose bias stays float. */
export interface QuantizedBiases {
  biasOut: Map<string, string>;
  floatBias: Set<NodeProto>;
}

/** Biases: int32 with scale input_scale × weight_scale, zero point 0. */
export function quantizeBiases(ctx: QdqContext, requests: readonly BiasRequest[], params: QdqParams, adds: QdqAdditions): QuantizedBiases {
  const { provider, weights } = params;
  const biasOut = new Map<string, string>();
  const biasByName = new Map<string, BiasRequest>();
  const floatBias = new Set<NodeProto>();
  const keepFloat = (b: BiasRequest, why: string): void => {
    ctx.warnings.push(`bias '${b.bias}' of '${b.node.name}' left in float: ${why}`);
    floatBias.add(b.node);
  };
  const scaleOf = (p: string): number => params.act.get(p)?.scale ?? weights.get(p)!.scales[0];
  for (const b of requests) {
    const prev = biasByName.get(b.bias);
    if (prev) {
      const same = provider(prev.input) === provider(b.input) && prev.weight === b.weight && prev.beta === b.beta;
      if (!same) keepFloat(b, 'it is shared with a node of other input or weight scales');
      continue;
    }
    const input = provider(b.input);
    const w = weights.get(b.weight);
    if (input === undefined || !w) {
      keepFloat(b, `its ${input === undefined ? 'input' : 'weight'} is not quantized`);
      continue;
    }
    // Gemm's beta goes into the values (and beta becomes 1), so DequantizeLinear gives beta·C exactly
    // as Gemm used it. ORT puts beta into the scale instead, which dequantizes to C, not beta·C.
    const raw = readFloat32(ctx.inits.get(b.bias)!);
    const values = b.beta === 1 ? raw : raw.map((v) => Math.fround(v * b.beta));
    if (w.scales.length !== 1 && w.scales.length !== values.length) {
      keepFloat(b, `${values.length} values for ${w.scales.length} weight channels`);
      continue;
    }
    biasByName.set(b.bias, b);
    biasOut.set(b.bias, emitInt32Bias(ctx, adds, b, values, scaleOf(input), w));
  }
  // beta now lives in the bias values.
  for (const b of biasByName.values()) {
    const beta = b.node.attribute.find((a) => a.name === 'beta');
    if (beta && b.beta !== 1) beta.f = 1;
  }
  return { biasOut, floatBias };
}

/** Writes the int32 bias and its DequantizeLinear (as a head node); returns the DequantizeLinear's output. */
function emitInt32Bias(
  ctx: QdqContext,
  adds: QdqAdditions,
  b: BiasRequest,
  values: Float32Array,
  inputScale: number,
  w: QuantizedWeight,
): string {
  const { names } = adds;
  adjustWeightScaleForBias(w, ctx.inits.get(b.weight)!, values, inputScale);
  const q = quantizeBiasInt32(values, inputScale, w.scales);
  const perAxis = q.scales.length > 1;
  const qName = names.unique(`${b.bias}_quantized`);
  const sName = names.unique(`${b.bias}_quantized_scale`);
  const paramDims = perAxis ? [q.scales.length] : [];
  // No zero-point input: an int32 DequantizeLinear's zero point is 0 when absent (ONNX DequantizeLinear-13),
  // and ORT writes an all-zero int32 array per channel there, as large as the bias itself.
  adds.initializers.push(int32Tensor(qName, ctx.inits.get(b.bias)!.dims, q.data), float32Tensor(sName, paramDims, q.scales));
  const output = names.unique(`${b.bias}${DQ_SUFFIX}_Output`);
  adds.headNodes.push(dqNode(names.unique(`${b.bias}${DQ_SUFFIX}`), [qName, sName], output, perAxis ? 0 : undefined));
  return output;
}

/**
 * qdq_quantizer._adjust_weight_scale_for_int32_bias: when input_scale × weight_scale is so small that
 * the bias would overflow int32, the weight scale grows until the bias fits, and the weight is
 * re-quantized with it.
 */
function adjustWeightScaleForBias(w: QuantizedWeight, weight: TensorProto, bias: Float32Array, inputScale: number): void {
  const qrange = 2 ** 31 - 1 - (-(2 ** 31) + 1);
  const eps = 1.0001;
  let changed = false;
  if (w.scales.length === 1) {
    let absmax = 0;
    for (const v of bias) absmax = Math.max(absmax, Math.abs(v));
    const smallest = (eps * 2 * absmax) / qrange;
    const candidate = inputScale * w.scales[0];
    if (candidate > 0 && candidate < smallest) {
      w.scales[0] = Math.fround(w.scales[0] * (smallest / candidate));
      changed = true;
    }
  } else {
    for (let c = 0; c < w.scales.length; c++) {
      const smallest = (eps * 2 * Math.abs(bias[c])) / qrange;
      const candidate = inputScale * w.scales[c];
      if (candidate > 0 && candidate < smallest) {
        w.scales[c] = Math.fround(w.scales[c] * (smallest / candidate));
        changed = true;
      }
    }
  }
  if (changed) w.data = requantize(readFloat32(weight), weight.dims, w.axis, w.scales);
}
