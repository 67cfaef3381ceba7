import { attrInt } from '../onnx/graph-utils.js';
import { DataType, type ModelProto, type NodeProto } from '../onnx/types.js';
import {
  NameScope,
  cloneModel,
  consumerMap,
  dropGraphInput,
  matchesAny,
  onnxOpset,
  requireGraph,
  topologicalNodes,
  type NamePattern,
} from './graph-index.js';
import { tensorByteSize } from './tensor-io.js';
import { quantizeWeight, weightDq, type WeightDq } from './weight-quant.js';

/** Op types whose weight input the weight-only pass quantizes. */
export const INT8_WEIGHT_OPS = ['Conv', 'ConvTranspose', 'Gemm', 'MatMul'] as const;

/** One of {@link INT8_WEIGHT_OPS}. */
export type Int8WeightOp = (typeof INT8_WEIGHT_OPS)[number];

/** Options of {@link quantizeWeightsInt8}. */
export interface Int8WeightsOptions {
  /** Op types to quantize (default all of {@link INT8_WEIGHT_OPS}). */
  opTypes?: readonly Int8WeightOp[];
  /** Node names or patterns whose weights stay float. */
  exclude?: readonly NamePattern[];
  /** One scale per output channel (default true; needs opset 13, else per tensor). */
  perChannel?: boolean;
}

/** A node a pass left as it was, and why. */
export interface SkippedNode {
  node: string;
  opType: string;
  reason: string;
}

/** Result of {@link quantizeWeightsInt8}. */
export interface Int8WeightsResult {
  model: ModelProto;
  /** Names of the float initializers now stored as int8. */
  quantizedWeights: string[];
  skipped: SkippedNode[];
  /** Bytes of initializer data before and after. */
  bytesBefore: number;
  bytesAfter: number;
}

/** The weight input index and its output-channel axis, as ORT's per-channel defaults. */
function weightSlot(node: NodeProto, rank: number): { index: number; axis: number } {
  switch (node.opType) {
    case 'Conv':
      return { index: 1, axis: 0 };
    case 'ConvTranspose':
      return { index: 1, axis: 1 };
    case 'Gemm':
      return { index: 1, axis: attrInt(node, 'transB', 0) !== 0 ? 0 : 1 };
    default:
      // MatMul: ORT's default axis is 1, the output columns of a [K, N] weight; for batched
      // weights the columns are the last axis.
      return { index: 1, axis: rank <= 2 ? 1 : rank - 1 };
  }
}

/**
 * Weight-only INT8 ("dynamic" in the CLI): each Conv / ConvTranspose / Gemm / MatMul weight
 * initializer becomes int8 with a symmetric scale per output channel plus a DequantizeLinear;
 * activations and biases stay float, so any runtime that runs the float model runs this one and
 * the file is about 4x smaller.
 * @example
 * const { model: small } = quantizeWeightsInt8(model);
 */
export function quantizeWeightsInt8(model: ModelProto, options: Int8WeightsOptions = {}): Int8WeightsResult {
  const ops = new Set<string>(options.opTypes ?? INT8_WEIGHT_OPS);
  for (const op of ops) {
    if (!(INT8_WEIGHT_OPS as readonly string[]).includes(op)) {
      throw new RangeError(`opTypes: '${op}' is not one of ${INT8_WEIGHT_OPS.join(', ')}`);
    }
  }
  const out = cloneModel(model);
  const graph = requireGraph(out);
  const bytesBefore = graph.initializer.reduce((s, t) => s + tensorByteSize(t), 0);
  // DequantizeLinear's axis attribute arrived in opset 13.
  const perChannel = (options.perChannel ?? true) && onnxOpset(out) >= 13;
  const inits = new Map(graph.initializer.map((t) => [t.name, t]));
  const names = new NameScope(graph);
  const skipped: SkippedNode[] = [];
  const done = new Map<string, WeightDq>();
  const nodes = topologicalNodes(graph);

  for (const node of nodes) {
    if (!ops.has(node.opType) || node.domain !== '') continue;
    const label = node.name || node.output[0];
    if (matchesAny(node.name, options.exclude)) {
      skipped.push({ node: label, opType: node.opType, reason: 'excluded' });
      continue;
    }
    const w = inits.get(node.input[1] ?? '');
    if (!w) {
      skipped.push({ node: label, opType: node.opType, reason: 'weight is not an initializer' });
      continue;
    }
    if (w.dataType !== DataType.FLOAT) {
      skipped.push({ node: label, opType: node.opType, reason: `weight is not float32 (data type ${w.dataType})` });
      continue;
    }
    const { index, axis } = weightSlot(node, w.dims.length);
    let dq = done.get(w.name);
    if (!dq) {
      dq = weightDq(quantizeWeight(w, perChannel && w.dims.length > 1 ? axis : undefined), names);
      done.set(w.name, dq);
    }
    node.input[index] = dq.output;
  }

  // Readers outside the quantized ops (or excluded ones) keep reading the float weight.
  const stillRead = consumerMap(graph);
  for (const [name, dq] of done) {
    graph.initializer.push(...dq.initializers);
    if (!stillRead.has(name) && !graph.output.some((o) => o.name === name)) {
      graph.initializer = graph.initializer.filter((t) => t.name !== name);
      dropGraphInput(graph, name);
    }
  }
  graph.node = [...[...done.values()].map((d) => d.node), ...nodes];
  const bytesAfter = graph.initializer.reduce((s, t) => s + tensorByteSize(t), 0);
  return { model: out, quantizedWeights: [...done.keys()], skipped, bytesBefore, bytesAfter };
}
