import type { ModelProto, NodeProto } from '../onnx/types.js';
import type { TensorRange } from './calibrate/types.js';
import { inferElemTypes } from './elem-types.js';
import {
  NameScope,
  cloneModel,
  consumerMap,
  matchesAny,
  onnxOpset,
  producerMap,
  requireGraph,
  topologicalNodes,
  type NamePattern,
} from './graph-index.js';
import type { SkippedNode } from './int8-weights.js';
import { quantizeBiases } from './qdq-bias.js';
import type { QdqAdditions, QdqContext } from './qdq-context.js';
import { emitActivationPairs, emitWeightDqs } from './qdq-emit.js';
import { TensorMarker } from './qdq-marks.js';
import { quantizeParams } from './qdq-params.js';
import { removeDeadTensors, rewireReaders } from './qdq-rewire.js';
import { QuantError } from './quant-error.js';

/**
 * How each op type is quantized in QDQ form, after onnxruntime `quantization/registry.py`:
 * - `conv`, `gemm`, `matmul`: input and output Q→DQ, weight int8 → DQ, bias int32 → DQ (QDQConv, QDQGemm, QDQMatMul).
 * - `removable`: Relu / Clip are dropped into the producer's Q when activations are asymmetric (QDQRemovableActivation).
 * - `direct8bit`, `maxpool`, `resize`, `gather`: only when input 0 is already quantized, the output
 *   reuses input 0's scale and zero point (QDQDirect8BitOp, QDQMaxPool, QDQResize, QDQGather).
 * - `split`, `pad`: input quantized, outputs share its parameters (QDQSplit, QDQPad).
 * - `base`: every float input and output gets its own calibrated parameters (QDQOperatorBase, used for
 *   the op types ORT lists only in QLinearOpsRegistry).
 */
export const QDQ_OP_HANDLERS = {
  Conv: 'conv',
  ConvTranspose: 'conv',
  Gemm: 'gemm',
  MatMul: 'matmul',
  Relu: 'removable',
  Clip: 'removable',
  Reshape: 'direct8bit',
  Transpose: 'direct8bit',
  Squeeze: 'direct8bit',
  Unsqueeze: 'direct8bit',
  AveragePool: 'direct8bit',
  Slice: 'direct8bit',
  MaxPool: 'maxpool',
  Resize: 'resize',
  Gather: 'gather',
  GatherElements: 'gather',
  Split: 'split',
  Pad: 'pad',
  Add: 'base',
  Mul: 'base',
  Sigmoid: 'base',
  LeakyRelu: 'base',
  GlobalAveragePool: 'base',
  Concat: 'base',
  Softmax: 'base',
  Where: 'base',
  ArgMax: 'base',
} as const;

/** An op type the QDQ pass knows how to quantize. */
export type QdqOpType = keyof typeof QDQ_OP_HANDLERS;

/** Default op types: all of {@link QDQ_OP_HANDLERS}, as `quantize_static` defaults to its whole registry. */
export const DEFAULT_QDQ_OP_TYPES: readonly QdqOpType[] = Object.keys(QDQ_OP_HANDLERS) as QdqOpType[];

/** Options of {@link quantizeQdq}. */
export interface QdqOptions {
  /** Calibrated range of every activation tensor that gets quantized (from {@link calibrate}). */
  ranges: ReadonlyMap<string, TensorRange>;
  /** Symmetric int8 activations (ORT extra option ActivationSymmetric, default false). */
  activationSymmetric?: boolean;
  /** Per-channel weights (default true, as `per_channel=True`; per tensor below opset 13). */
  perChannel?: boolean;
  /**
   * Node names or patterns left in float: they add no Q/DQ and their weights and biases stay float.
   * As in ORT (`nodes_to_exclude`), an input that is quantized because another node needs it still
   * reaches them dequantized, which keeps the producer fusable; see `excludedReadFloat`.
   */
  exclude?: readonly NamePattern[];
  /**
   * Excluded nodes read the float value of every input instead (default false). The producer's
   * output then has a float reader besides its QuantizeLinear, so ORT can't fuse the producer.
   */
  excludedReadFloat?: boolean;
  /** Op types to quantize (default {@link DEFAULT_QDQ_OP_TYPES}). */
  opTypes?: readonly string[];
  /** Keep Relu / Clip nodes instead of folding them into the producer's Q (ORT QDQKeepRemovableActivations). */
  keepRemovableActivations?: boolean;
  /**
   * Activation type (default 'int8', ORT's QInt8 and what TensorRT wants). On x86 onnxruntime only
   * fuses uint8-activation QDQ groups into QLinearConv, and its S8→U8 rewrite skips tensors read by
   * more than one node, so 'uint8' (U8S8) is the CPU choice.
   */
  activationType?: 'int8' | 'uint8';
  /** 7-bit weights ([-64, 64]) for U8S8 on x86 CPUs without VNNI (ORT reduce_range; default false). */
  reduceRange?: boolean;
}

/** Result of {@link quantizeQdq}. */
export interface QdqResult {
  model: ModelProto;
  /** Activation tensors (original names) that now pass through QuantizeLinear → DequantizeLinear. */
  quantizedTensors: string[];
  /** Weight and bias initializers now stored as int8 / int32 behind a DequantizeLinear. */
  quantizedWeights: string[];
  /** Nodes left in float, with the reason. */
  skipped: SkippedNode[];
  /** Departures from the requested setup (per-tensor fallback, float biases, ...). */
  warnings: string[];
}

/**
 * Static INT8 quantization in QDQ form, as onnxruntime's
 * `quantize_static(quant_format=QDQ, activation_type=QInt8, weight_type=QInt8, per_channel=True)` writes
 * it: one QuantizeLinear → DequantizeLinear pair per quantized activation (shared by all its readers,
 * graph outputs keep their name on the DequantizeLinear), weights as int8 initializers behind a
 * DequantizeLinear (per output channel, symmetric), Conv/Gemm biases as int32 with scale
 * input_scale × weight_scale and zero point 0. ORT's CPU provider fuses the QDQ Conv groups into
 * QLinearConv. Ops outside the registry (or excluded) stay float and are listed in `skipped`.
 * @example
 * const { ranges } = await calibrate(model, batches, { method: 'minmax', inputShape: [1, 3, 640, 640] });
 * const { model: int8 } = quantizeQdq(model, { ranges, exclude: [/^\/model\.24\//] });
 */
export function quantizeQdq(model: ModelProto, options: QdqOptions): QdqResult {
  const ctx = qdqContext(model, options);
  adjustRanges(ctx);
  const marker = new TensorMarker(ctx);
  const skipped = markNodes(ctx, marker);
  const adds: QdqAdditions = { names: new NameScope(ctx.graph), initializers: [], headNodes: [] };
  const params = quantizeParams(ctx, marker.marks, adds);
  const biases = quantizeBiases(ctx, marker.biases, params, adds);
  const weightOut = emitWeightDqs(params, adds);
  const pairs = emitActivationPairs(ctx, marker.marks, params, adds);
  rewireReaders(ctx, marker.removed, adds.headNodes, { ...biases, ...pairs, weightOut });
  const quantizedWeights = [...params.weights.keys(), ...biases.biasOut.keys()];
  removeDeadTensors(ctx.graph, quantizedWeights, adds.initializers);
  return { model: ctx.model, quantizedTensors: pairs.quantizedTensors, quantizedWeights, skipped, warnings: ctx.warnings };
}

/** Checks the options and the model's opset, and indexes a copy of the model for the steps. */
function qdqContext(model: ModelProto, options: QdqOptions): QdqContext {
  if (!options || !(options.ranges instanceof Map)) throw new TypeError('options.ranges must be a Map of tensor ranges');
  const symmetric = options.activationSymmetric ?? false;
  const actType = options.activationType ?? 'int8';
  if (actType !== 'int8' && actType !== 'uint8') throw new RangeError(`activationType must be 'int8' or 'uint8', got ${JSON.stringify(actType)}`);
  const keepRemovable = options.keepRemovableActivations ?? false;
  const opTypes = new Set(options.opTypes ?? DEFAULT_QDQ_OP_TYPES);
  const out = cloneModel(model);
  const graph = requireGraph(out);
  const opset = onnxOpset(out);
  if (opset < 10) {
    throw new QuantError('QUANT_MODEL_INVALID', `QuantizeLinear needs ai.onnx opset 10 or later; the model imports opset ${opset}`);
  }
  const warnings: string[] = [];
  const perChannel = (options.perChannel ?? true) && opset >= 13;
  if ((options.perChannel ?? true) && opset < 13) {
    warnings.push(`opset ${opset} has no per-axis DequantizeLinear (needs 13); weights are quantized per tensor`);
  }

  const types = inferElemTypes(graph);
  const inits = new Map(graph.initializer.map((t) => [t.name, t]));
  return {
    model: out,
    graph,
    opset,
    symmetric,
    actType,
    perChannel,
    keepRemovable,
    reduceRange: options.reduceRange,
    excludedReadFloat: options.excludedReadFloat,
    opTypes,
    isExcluded: (n) => matchesAny(n.name, options.exclude),
    types,
    inits,
    graphInputs: new Set(graph.input.map((v) => v.name).filter((n) => !inits.has(n))),
    graphOutputs: new Set(graph.output.map((v) => v.name)),
    consumers: consumerMap(graph),
    producers: producerMap(graph),
    nodes: topologicalNodes(graph),
    ranges: new Map(options.ranges),
    warnings,
  };
}

function willQuantize(ctx: QdqContext, n: NodeProto): boolean {
  return (n.domain === '' || n.domain === 'ai.onnx') && n.opType in QDQ_OP_HANDLERS && ctx.opTypes.has(n.opType) && !ctx.isExcluded(n);
}

// base_quantizer.adjust_tensor_ranges: a Relu/Clip's input takes its output's range; Softmax is [0, 1].
function adjustRanges(ctx: QdqContext): void {
  const { ranges } = ctx;
  for (const n of ctx.nodes) {
    if (!willQuantize(ctx, n)) continue;
    if ((n.opType === 'Relu' || n.opType === 'Clip') && !ctx.symmetric) {
      const r = ranges.get(n.output[0]);
      if (r && ranges.has(n.input[0]) && ctx.consumers.get(n.input[0])?.length === 1) ranges.set(n.input[0], r);
    } else if (n.opType === 'Softmax') {
      ranges.set(n.output[0], { min: 0, max: 1 });
    }
  }
}

/** Hands each node to its op handler, or lists it in the returned skipped nodes with the reason. */
function markNodes(ctx: QdqContext, marker: TensorMarker): SkippedNode[] {
  const skipped: SkippedNode[] = [];
  for (const n of ctx.nodes) {
    const label = n.name || n.output[0];
    const skip = (reason: string): void => void skipped.push({ node: label, opType: n.opType, reason });
    if (n.opType === 'QuantizeLinear' || n.opType === 'DequantizeLinear') skip('already a quantization node');
    else if (n.domain !== '' && n.domain !== 'ai.onnx') skip(`custom domain '${n.domain}'`);
    else if (ctx.isExcluded(n)) skip('excluded');
    else if (!(n.opType in QDQ_OP_HANDLERS)) skip('op type not in the QDQ registry');
    else if (!ctx.opTypes.has(n.opType)) skip('op type not selected');
    else {
      const reason = marker.mark(n, QDQ_OP_HANDLERS[n.opType as QdqOpType]);
      if (reason) skip(reason);
    }
  }
  return skipped;
}
