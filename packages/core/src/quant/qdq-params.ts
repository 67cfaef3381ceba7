import type { TensorRange } from './calibrate/types.js';
import type { QdqAdditions, QdqContext } from './qdq-context.js';
import type { Mark } from './qdq-marks.js';
import { computeScaleZeroPoint } from './qparams.js';
import { QuantError } from './quant-error.js';
import { float32Tensor, int8Tensor, uint8Tensor } from './tensor-io.js';
import { quantizeConstant, quantizeWeight, type QuantizedWeight } from './weight-quant.js';

/** The scale and zero-point initializers of a tensor quantized per tensor, and their values. */
export interface ActParams {
  scaleName: string;
  zpName: string;
  scale: number;
  zeroPoint: number;
}

/** Quantization parameters of the marked tensors. */
export interface QdqParams {
  /** Per-tensor parameters by tensor: activations now, per-tensor weights once their DequantizeLinear is written. */
  act: Map<string, ActParams>;
  /** Weights and constants, quantized but not yet written. */
  weights: Map<string, QuantizedWeight>;
  /** The tensor whose parameters `t` uses, or undefined when it has none to use. */
  provider: (t: string) => string | undefined;
}

/**
 * Scales and zero points of the activations, int8 data of the weights and constants, and the provider of
 * every shared tensor. A tensor that can't share its provider's parameters becomes an activation.
 */
export function quantizeParams(ctx: QdqContext, marks: Map<string, Mark>, adds: QdqAdditions): QdqParams {
  const act = activationParams(ctx, marks, adds);
  // Weights: quantized now, emitted after the biases had a chance to widen their scales.
  const weights = new Map<string, QuantizedWeight>();
  for (const [t, m] of marks) {
    if (m.kind === 'weight') weights.set(t, quantizeWeight(ctx.inits.get(t)!, m.axis, ctx.reduceRange));
    else if (m.kind === 'constant') weights.set(t, quantizeConstant(ctx.inits.get(t)!, ctx.actType));
  }
  // The tensor whose scale and zero point `t` uses: itself, or the end of its chain of providers.
  // It reads `marks` as they are when called, as the loop below turns shared tensors into activations.
  const provider = (t: string): string | undefined => {
    const seen = new Set<string>();
    for (let cur = t; ; ) {
      const m = marks.get(cur);
      if (!m || seen.has(cur)) return undefined;
      seen.add(cur);
      if (m.kind === 'activation') return cur;
      // Only a per-tensor weight or constant has a single scale to share.
      if (m.kind === 'weight' || m.kind === 'constant') return weights.get(cur)?.axis === undefined ? cur : undefined;
      cur = m.provider;
    }
  };
  // A tensor sharing a per-channel weight's parameters can't: it gets its own range if it has one.
  for (const [t, m] of marks) {
    if (m.kind !== 'shared' || provider(t) !== undefined) continue;
    const r = ctx.ranges.get(t);
    if (!r) throw new QuantError('QUANT_RANGE_MISSING', `no calibrated range for '${t}', which can't share '${m.provider}''s parameters`);
    marks.set(t, { kind: 'activation' });
    act.set(t, addActParams(ctx, adds, t, r));
  }
  return { act, weights, provider };
}

/** Activation parameters (scale and zero point initializers named after the tensor, as ORT does). */
function activationParams(ctx: QdqContext, marks: ReadonlyMap<string, Mark>, adds: QdqAdditions): Map<string, ActParams> {
  const act = new Map<string, ActParams>();
  const missing: string[] = [];
  for (const [t, m] of marks) {
    if (m.kind !== 'activation') continue;
    const r = ctx.ranges.get(t);
    if (!r) {
      missing.push(t);
      continue;
    }
    act.set(t, addActParams(ctx, adds, t, r));
  }
  if (missing.length > 0) {
    const list = missing.slice(0, 5).map((s) => `'${s}'`).join(', ');
    throw new QuantError(
      'QUANT_RANGE_MISSING',
      `no calibrated range for ${missing.length} tensor(s) to quantize: ${list}${missing.length > 5 ? ', ...' : ''}`,
    );
  }
  return act;
}

function addActParams(ctx: QdqContext, adds: QdqAdditions, t: string, r: TensorRange): ActParams {
  const { scale, zeroPoint } = computeScaleZeroPoint(r.min, r.max, { type: ctx.actType, symmetric: ctx.symmetric });
  const scaleName = adds.names.unique(`${t}_scale`);
  const zpName = adds.names.unique(`${t}_zero_point`);
  const zpTensor = ctx.actType === 'int8' ? int8Tensor : uint8Tensor;
  adds.initializers.push(float32Tensor(scaleName, [], [scale]), zpTensor(zpName, [], [zeroPoint]));
  return { scaleName, zpName, scale, zeroPoint };
}
