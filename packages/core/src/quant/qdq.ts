import { attrFloat, attrInt, attrString } from '../onnx/graph-utils.js';
import { AttributeType, DataType, type ModelProto, type NodeProto, type TensorProto } from '../onnx/types.js';
import type { TensorRange } from './calibrate/types.js';
import { inferElemTypes } from './elem-types.js';
import {
  NameScope,
  cloneModel,
  consumerMap,
  dropGraphInput,
  matchesAny,
  onnxOpset,
  producerMap,
  requireGraph,
  topologicalNodes,
  type NamePattern,
} from './graph-index.js';
import type { SkippedNode } from './int8-weights.js';
import { computeScaleZeroPoint, quantizeBiasInt32 } from './qparams.js';
import { QuantError } from './quant-error.js';
import { float32Tensor, int32Tensor, int8Tensor, readFloat32, uint8Tensor } from './tensor-io.js';
import { quantizeConstant, quantizeWeight, requantize, weightDq, type QuantizedWeight } from './weight-quant.js';

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

type Handler = (typeof QDQ_OP_HANDLERS)[QdqOpType];

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

type Mark =
  | { kind: 'activation' }
  | { kind: 'weight'; axis: number | undefined }
  | { kind: 'constant' }
  | { kind: 'shared'; provider: string };

interface BiasRequest {
  node: NodeProto;
  bias: string;
  input: string;
  weight: string;
  beta: number;
}

interface ActParams {
  scaleName: string;
  zpName: string;
  scale: number;
  zeroPoint: number;
}

const Q_SUFFIX = '_QuantizeLinear';
const DQ_SUFFIX = '_DequantizeLinear';

function validAxis(axis: number, rank: number): number | undefined {
  if (axis < -rank || axis >= rank) return undefined;
  return axis < 0 ? axis + rank : axis;
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
  if (!options || !(options.ranges instanceof Map)) throw new TypeError('options.ranges must be a Map of tensor ranges');
  const symmetric = options.activationSymmetric ?? false;
  const actType = options.activationType ?? 'int8';
  if (actType !== 'int8' && actType !== 'uint8') throw new RangeError(`activationType must be 'int8' or 'uint8', got ${JSON.stringify(actType)}`);
  const zpTensor = actType === 'int8' ? int8Tensor : uint8Tensor;
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
  const graphInputs = new Set(graph.input.map((v) => v.name).filter((n) => !inits.has(n)));
  const graphOutputs = new Set(graph.output.map((v) => v.name));
  const consumers = consumerMap(graph);
  const producers = producerMap(graph);
  const nodes = topologicalNodes(graph);
  const ranges = new Map(options.ranges);
  const isExcluded = (n: NodeProto): boolean => matchesAny(n.name, options.exclude);
  const willQuantize = (n: NodeProto): boolean =>
    (n.domain === '' || n.domain === 'ai.onnx') && n.opType in QDQ_OP_HANDLERS && opTypes.has(n.opType) && !isExcluded(n);

  // base_quantizer.adjust_tensor_ranges: a Relu/Clip's input takes its output's range; Softmax is [0, 1].
  for (const n of nodes) {
    if (!willQuantize(n)) continue;
    if ((n.opType === 'Relu' || n.opType === 'Clip') && !symmetric) {
      const r = ranges.get(n.output[0]);
      if (r && ranges.has(n.input[0]) && consumers.get(n.input[0])?.length === 1) ranges.set(n.input[0], r);
    } else if (n.opType === 'Softmax') {
      ranges.set(n.output[0], { min: 0, max: 1 });
    }
  }

  const marks = new Map<string, Mark>();
  const biases: BiasRequest[] = [];
  const removed = new Set<NodeProto>();
  const skipped: SkippedNode[] = [];
  // float16 activations would need float16 scales (opset 19); only float32 is quantized.
  const isFloat = (t: string): boolean => t !== '' && types.get(t) === DataType.FLOAT;
  const isQuantized = (t: string): boolean => marks.has(t);

  const markActivation = (t: string): void => {
    if (!isFloat(t) || marks.has(t)) return;
    // A float constant in an activation slot is quantized from its own values, per tensor.
    marks.set(t, inits.has(t) ? { kind: 'constant' } : { kind: 'activation' });
  };
  const markWeight = (t: string, defaultAxis: number): void => {
    const w = inits.get(t);
    if (!w) return markActivation(t); // a computed weight is an activation like any other
    if (w.dataType !== DataType.FLOAT || marks.has(t)) return;
    const axis = perChannel ? validAxis(defaultAxis, w.dims.length) : undefined;
    marks.set(t, { kind: 'weight', axis: w.dims.length > 1 ? axis : undefined });
  };
  const markShared = (t: string, provider: string): void => {
    if (!isFloat(t) || marks.has(t)) return;
    marks.set(t, inits.has(t) ? { kind: 'constant' } : { kind: 'shared', provider });
  };
  const markBias = (node: NodeProto, bias: string, beta: number): void => {
    const b = inits.get(bias);
    if (!b || b.dataType !== DataType.FLOAT) {
      warnings.push(`bias '${bias}' of '${node.name}' is not a float32 initializer; left in float`);
      return;
    }
    biases.push({ node, bias, input: node.input[0], weight: node.input[1], beta });
  };
  // qdq_quantizer.try_replacing_upstream_output: fold a Relu/Clip into the producer's quantization.
  const tryReplaceUpstream = (up: string, outName: string): boolean => {
    const producer = producers.get(up);
    if (!producer || !ranges.has(outName)) return false;
    if (consumers.get(up)?.length !== 1 || graphOutputs.has(up) || graphInputs.has(up)) return false;
    producer.output = producer.output.map((o) => (o === up ? outName : o));
    producers.set(outName, producer);
    marks.delete(up);
    return true;
  };

  const handle = (n: NodeProto, kind: Handler): string | undefined => {
    const [in0] = n.input;
    switch (kind) {
      case 'conv':
        markActivation(in0);
        markActivation(n.output[0]);
        markWeight(n.input[1], n.opType === 'Conv' ? 0 : 1);
        if (n.input[2]) markBias(n, n.input[2], 1);
        return undefined;
      case 'gemm': {
        markActivation(in0);
        markActivation(n.output[0]);
        markWeight(n.input[1], attrInt(n, 'transB', 0) !== 0 ? 0 : 1);
        if (n.input[2] && inits.has(n.input[2])) {
          markBias(n, n.input[2], attrFloat(n, 'beta', 1));
        } else if (n.input[2]) {
          markActivation(n.input[2]);
        }
        return undefined;
      }
      case 'matmul':
        for (const t of n.input) {
          if (inits.has(t)) markWeight(t, 1);
          else markActivation(t);
        }
        markActivation(n.output[0]);
        return undefined;
      case 'removable':
        if (!isQuantized(in0)) return 'input not quantized';
        if (!symmetric && !keepRemovable && tryReplaceUpstream(in0, n.output[0])) {
          removed.add(n);
        } else {
          markActivation(in0);
        }
        markActivation(n.output[0]);
        return undefined;
      case 'maxpool':
        if (opset < 12) return 'int8 MaxPool needs opset 12';
        return direct8bit(n);
      case 'resize':
        if (opset < 11) return 'int8 Resize needs opset 11';
        return direct8bit(n);
      case 'direct8bit':
        return direct8bit(n);
      case 'gather':
        if (inits.has(in0) && isFloat(in0)) {
          markActivation(in0);
          markShared(n.output[0], in0);
          return undefined;
        }
        return direct8bit(n);
      case 'split':
        markActivation(in0);
        for (const o of n.output) markShared(o, in0);
        return undefined;
      case 'pad': {
        markActivation(in0);
        const mode = attrString(n, 'mode', 'constant');
        const value = n.input[2] ? inits.get(n.input[2]) : undefined;
        const zeroPad = !n.input[2] || (value !== undefined && value.dataType === DataType.FLOAT && readFloat32(value).every((v) => v === 0));
        if (mode !== 'constant' || zeroPad) markShared(n.output[0], in0);
        else markActivation(n.output[0]);
        return undefined;
      }
      case 'base':
        for (const t of n.input) markActivation(t);
        for (const t of n.output) markActivation(t);
        return undefined;
    }
  };
  const direct8bit = (n: NodeProto): string | undefined => {
    if (!isQuantized(n.input[0])) return 'input not quantized';
    markShared(n.output[0], n.input[0]);
    return undefined;
  };

  for (const n of nodes) {
    const label = n.name || n.output[0];
    const skip = (reason: string): void => void skipped.push({ node: label, opType: n.opType, reason });
    if (n.opType === 'QuantizeLinear' || n.opType === 'DequantizeLinear') skip('already a quantization node');
    else if (n.domain !== '' && n.domain !== 'ai.onnx') skip(`custom domain '${n.domain}'`);
    else if (isExcluded(n)) skip('excluded');
    else if (!(n.opType in QDQ_OP_HANDLERS)) skip('op type not in the QDQ registry');
    else if (!opTypes.has(n.opType)) skip('op type not selected');
    else {
      const reason = handle(n, QDQ_OP_HANDLERS[n.opType as QdqOpType]);
      if (reason) skip(reason);
    }
  }

  const names = new NameScope(graph);
  const newInits: TensorProto[] = [];
  const headNodes: NodeProto[] = [];

  // Activation parameters (scale and zero point initializers named after the tensor, as ORT does).
  const actParams = new Map<string, ActParams>();
  const missing: string[] = [];
  for (const [t, m] of marks) {
    if (m.kind !== 'activation') continue;
    const r = ranges.get(t);
    if (!r) {
      missing.push(t);
      continue;
    }
    const { scale, zeroPoint } = computeScaleZeroPoint(r.min, r.max, { type: actType, symmetric });
    const scaleName = names.unique(`${t}_scale`);
    const zpName = names.unique(`${t}_zero_point`);
    newInits.push(float32Tensor(scaleName, [], [scale]), zpTensor(zpName, [], [zeroPoint]));
    actParams.set(t, { scaleName, zpName, scale, zeroPoint });
  }
  if (missing.length > 0) {
    const list = missing.slice(0, 5).map((s) => `'${s}'`).join(', ');
    throw new QuantError(
      'QUANT_RANGE_MISSING',
      `no calibrated range for ${missing.length} tensor(s) to quantize: ${list}${missing.length > 5 ? ', ...' : ''}`,
    );
  }

  // Weights: quantized now, emitted after the biases had a chance to widen their scales.
  const weights = new Map<string, QuantizedWeight>();
  for (const [t, m] of marks) {
    if (m.kind === 'weight') weights.set(t, quantizeWeight(inits.get(t)!, m.axis, options.reduceRange));
    else if (m.kind === 'constant') weights.set(t, quantizeConstant(inits.get(t)!, actType));
  }

  // The tensor whose scale and zero point `t` uses: itself, or the end of its chain of providers.
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
  const scaleOf = (p: string): number => actParams.get(p)?.scale ?? weights.get(p)!.scales[0];
  // A tensor sharing a per-channel weight's parameters can't: it gets its own range if it has one.
  for (const [t, m] of marks) {
    if (m.kind !== 'shared' || provider(t) !== undefined) continue;
    const r = ranges.get(t);
    if (!r) throw new QuantError('QUANT_RANGE_MISSING', `no calibrated range for '${t}', which can't share '${m.provider}''s parameters`);
    marks.set(t, { kind: 'activation' });
    const { scale, zeroPoint } = computeScaleZeroPoint(r.min, r.max, { type: actType, symmetric });
    const scaleName = names.unique(`${t}_scale`);
    const zpName = names.unique(`${t}_zero_point`);
    newInits.push(float32Tensor(scaleName, [], [scale]), zpTensor(zpName, [], [zeroPoint]));
    actParams.set(t, { scaleName, zpName, scale, zeroPoint });
  }

  // Biases: int32 with scale input_scale × weight_scale, zero point 0.
  const biasOut = new Map<string, string>();
  const biasByName = new Map<string, BiasRequest>();
  const floatBias = new Set<NodeProto>();
  const keepFloat = (b: BiasRequest, why: string): void => {
    warnings.push(`bias '${b.bias}' of '${b.node.name}' left in float: ${why}`);
    floatBias.add(b.node);
  };
  for (const b of biases) {
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
    const raw = readFloat32(inits.get(b.bias)!);
    const values = b.beta === 1 ? raw : raw.map((v) => Math.fround(v * b.beta));
    if (w.scales.length !== 1 && w.scales.length !== values.length) {
      keepFloat(b, `${values.length} values for ${w.scales.length} weight channels`);
      continue;
    }
    biasByName.set(b.bias, b);
    const inputScale = scaleOf(input);
    adjustWeightScaleForBias(w, inits.get(b.weight)!, values, inputScale);
    const q = quantizeBiasInt32(values, inputScale, w.scales);
    const perAxis = q.scales.length > 1;
    const qName = names.unique(`${b.bias}_quantized`);
    const sName = names.unique(`${b.bias}_quantized_scale`);
    const paramDims = perAxis ? [q.scales.length] : [];
    // No zero-point input: an int32 DequantizeLinear's zero point is 0 when absent (ONNX DequantizeLinear-13),
    // and ORT writes an all-zero int32 array per channel there, as large as the bias itself.
    newInits.push(int32Tensor(qName, inits.get(b.bias)!.dims, q.data), float32Tensor(sName, paramDims, q.scales));
    const output = names.unique(`${b.bias}${DQ_SUFFIX}_Output`);
    biasOut.set(b.bias, output);
    headNodes.push(dqNode(names.unique(`${b.bias}${DQ_SUFFIX}`), [qName, sName], output, perAxis ? 0 : undefined));
  }
  // beta now lives in the bias values.
  for (const b of biasByName.values()) {
    const beta = b.node.attribute.find((a) => a.name === 'beta');
    if (beta && b.beta !== 1) beta.f = 1;
  }

  const weightOut = new Map<string, string>();
  for (const [t, w] of weights) {
    const dq = weightDq(w, names);
    newInits.push(...dq.initializers);
    headNodes.push(dq.node);
    weightOut.set(t, dq.output);
    if (w.axis === undefined) {
      const [, scaleName, zpName] = dq.node.input;
      actParams.set(t, { scaleName, zpName, scale: w.scales[0], zeroPoint: w.zeroPoints[0] });
    }
  }

  // Activation Q → DQ pairs, one per tensor; a graph output keeps its name on the DequantizeLinear.
  const floatName = new Map<string, string>(); // tensor -> name of its float value for excluded readers
  const dqOut = new Map<string, string>();
  const pairsAfter = new Map<string, NodeProto[]>(); // producer output -> Q, DQ
  const quantizedTensors: string[] = [];
  for (const [t, m] of marks) {
    if (m.kind === 'weight' || m.kind === 'constant') continue;
    const p = actParams.get(provider(t)!)!;
    let qIn = t;
    let dOut: string;
    if (graphOutputs.has(t) && !graphInputs.has(t)) {
      qIn = names.unique(`${t}${Q_SUFFIX}_Input`);
      dOut = t;
      const producer = producers.get(t);
      if (producer) producer.output = producer.output.map((o) => (o === t ? qIn : o));
      floatName.set(t, qIn);
    } else {
      dOut = names.unique(`${t}${DQ_SUFFIX}_Output`);
    }
    const qOut = names.unique(`${t}${Q_SUFFIX}_Output`);
    const q: NodeProto = {
      name: names.unique(`${t}${Q_SUFFIX}`),
      opType: 'QuantizeLinear',
      domain: '',
      input: [qIn, p.scaleName, p.zpName],
      output: [qOut],
      attribute: [],
    };
    const dq = dqNode(names.unique(`${t}${DQ_SUFFIX}`), [qOut, p.scaleName, p.zpName], dOut, undefined);
    dqOut.set(t, dOut);
    quantizedTensors.push(t);
    if (graphInputs.has(t) || !producers.has(t)) headNodes.push(q, dq);
    else pairsAfter.set(qIn, [q, dq]);
  }

  // Rewire readers: every reader gets the dequantized value (ORT's replace_input_of_all_nodes);
  // excluded nodes keep their float weights and biases.
  const body: NodeProto[] = [];
  for (const n of nodes) {
    if (removed.has(n)) continue;
    const excluded = isExcluded(n);
    n.input = n.input.map((t, i) => {
      if (t === '') return t;
      if (excluded) return options.excludedReadFloat ? floatName.get(t) ?? t : dqOut.get(t) ?? t;
      if (i === 2 && floatBias.has(n)) return t;
      return biasOut.get(t) ?? weightOut.get(t) ?? dqOut.get(t) ?? t;
    });
    body.push(n);
    for (const o of n.output) {
      const pair = pairsAfter.get(o);
      if (pair) body.push(...pair);
    }
  }
  graph.node = [...headNodes, ...body];

  // Float initializers nobody reads any more go (and leave graph.input, where IR < 4 listed them).
  const read = new Set<string>(graph.output.map((o) => o.name));
  for (const n of graph.node) for (const t of n.input) read.add(t);
  const replaced = new Set([...weights.keys(), ...biasOut.keys()]);
  graph.initializer = graph.initializer.filter((t) => !replaced.has(t.name) || read.has(t.name));
  for (const t of replaced) if (!read.has(t)) dropGraphInput(graph, t);
  graph.initializer.push(...newInits);
  // value_info of tensors that no longer exist (a folded Relu's input) would confuse readers.
  const live = new Set<string>([...graph.input, ...graph.output].map((v) => v.name));
  for (const n of graph.node) for (const t of n.output) live.add(t);
  graph.valueInfo = graph.valueInfo.filter((v) => live.has(v.name));

  return {
    model: out,
    quantizedTensors,
    quantizedWeights: [...weights.keys(), ...biasOut.keys()],
    skipped,
    warnings,
  };
}

function dqNode(name: string, input: string[], output: string, axis: number | undefined): NodeProto {
  return {
    name,
    opType: 'DequantizeLinear',
    domain: '',
    input,
    output: [output],
    attribute: axis === undefined ? [] : [{ name: 'axis', type: AttributeType.INT, i: BigInt(axis) }],
  };
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
