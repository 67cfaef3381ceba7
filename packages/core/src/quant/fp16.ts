import { float32ToFloat16Bits } from '../onnx/float16.js';
import {
  AttributeType,
  DataType,
  type AttributeProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from '../onnx/types.js';
import { inferElemTypes } from './elem-types.js';
import { NameScope, cloneModel, matchesAny, requireGraph, topologicalNodes, type NamePattern } from './graph-index.js';
import { float16Tensor, readFloat32 } from './tensor-io.js';

/**
 * Op types left in float32 by default: onnxconverter-common / onnxruntime `float16.py`
 * DEFAULT_OP_BLOCK_LIST (ops without float16 kernels or where float16 breaks the result).
 */
export const DEFAULT_FP16_BLOCK_OPS: readonly string[] = [
  'ArrayFeatureExtractor',
  'Binarizer',
  'CastMap',
  'CategoryMapper',
  'DictVectorizer',
  'FeatureVectorizer',
  'Imputer',
  'LabelEncoder',
  'LinearClassifier',
  'LinearRegressor',
  'Normalizer',
  'OneHotEncoder',
  'RandomUniformLike',
  'SVMClassifier',
  'SVMRegressor',
  'Scaler',
  'TreeEnsembleClassifier',
  'TreeEnsembleRegressor',
  'TreeEnsemble',
  'ZipMap',
  'NonMaxSuppression',
  'TopK',
  'RoiAlign',
  'Range',
  'CumSum',
  'Min',
  'Max',
  'Upsample',
];

/** Inputs whose type is fixed to float32 by the op schema (onnxruntime `float16.py` ALWAYS_FLOAT_INPUTS). */
const ALWAYS_FLOAT_INPUTS: Readonly<Record<string, readonly number[]>> = {
  Resize: [2], // 'scales' is tensor(float) in every Resize version
  GroupNorm: [1, 2],
  SkipGroupNorm: [1, 2],
};

/** Ops whose `dtype` attribute picks the output type, with float as the default where absent. */
const DTYPE_ATTR_OPS: Readonly<Record<string, boolean>> = {
  RandomNormal: true,
  RandomUniform: true,
  EyeLike: false,
  RandomNormalLike: false,
  Bernoulli: false,
};

const FP16_MAX = 65504;
const FP16_MIN_SUBNORMAL = 5.960464477539063e-8; // 2^-24

/** Options of {@link convertToFloat16}. */
export interface Float16Options {
  /** Keep float32 graph inputs and outputs, with Cast nodes at the boundary (default true). */
  keepIoTypes?: boolean;
  /** Op types that stay float32 (default {@link DEFAULT_FP16_BLOCK_OPS}). */
  blockOps?: readonly string[];
  /** Node names (or patterns) that stay float32. */
  blockNodes?: readonly NamePattern[];
}

/** Result of {@link convertToFloat16}. */
export interface Float16Result {
  model: ModelProto;
  /** Things worth telling the user: clamped values, nodes kept in float32. */
  notes: string[];
}

type Precision = 16 | 32;

/**
 * Converts a float32 model to float16 the way onnxconverter-common's `convert_float_to_float16`
 * does: float initializers, Constant values, attribute tensors, Cast targets and value_info types
 * become float16; blocked ops keep float32 with Cast nodes around them; graph inputs and outputs
 * stay float32 unless `keepIoTypes` is false. Values beyond ±65504 are clamped and reported.
 * @example
 * const { model: half, notes } = convertToFloat16(model);
 */
export function convertToFloat16(model: ModelProto, options: Float16Options = {}): Float16Result {
  const keepIo = options.keepIoTypes ?? true;
  const blockOps = new Set(options.blockOps ?? DEFAULT_FP16_BLOCK_OPS);
  const out = cloneModel(model);
  const graph = requireGraph(out);
  const notes: string[] = [];
  const types = inferElemTypes(graph);
  const isF32 = (name: string): boolean => name !== '' && types.get(name) === DataType.FLOAT;
  const names = new NameScope(graph);

  const isBlocked = (n: NodeProto): boolean =>
    blockOps.has(n.opType) ||
    matchesAny(n.name, options.blockNodes) ||
    (n.domain !== '' && n.domain !== 'ai.onnx') ||
    // Control flow bodies are not converted; the whole node stays float32.
    n.attribute.some((a) => a.type === AttributeType.GRAPH || a.type === AttributeType.GRAPHS);

  const nodes = topologicalNodes(graph);
  const blocked = new Set(nodes.filter(isBlocked));
  const initializers = new Map(graph.initializer.map((t) => [t.name, t]));
  const graphInputs = new Set(graph.input.map((v) => v.name).filter((n) => !initializers.has(n)));
  const graphOutputs = new Set(graph.output.map((v) => v.name));

  const slotPrecision = (n: NodeProto, i: number): Precision =>
    blocked.has(n) || (ALWAYS_FLOAT_INPUTS[n.opType]?.includes(i) ?? false) ? 32 : 16;
  const outputPrecision: Precision = keepIo ? 32 : 16;

  // Which precisions each float tensor is read at; constants live in the one their readers want.
  const wanted = new Map<string, Set<Precision>>();
  const want = (t: string, p: Precision): void => {
    if (!isF32(t)) return;
    let s = wanted.get(t);
    if (!s) wanted.set(t, (s = new Set()));
    s.add(p);
  };
  for (const n of nodes) n.input.forEach((t, i) => want(t, slotPrecision(n, i)));
  for (const t of graphOutputs) want(t, outputPrecision);

  const isConstantNode = (n: NodeProto): boolean => n.opType === 'Constant' && !blocked.has(n);
  const home = new Map<string, Precision>();
  for (const t of graphInputs) if (isF32(t)) home.set(t, keepIo ? 32 : 16);
  for (const t of initializers.keys()) {
    // An initializer that is also a graph output can't be renamed; it stays in the output's type.
    const asOutput = graphOutputs.has(t) && outputPrecision === 32;
    if (isF32(t)) home.set(t, wanted.get(t)?.has(16) && !asOutput ? 16 : 32);
  }
  for (const n of nodes) {
    for (const t of n.output) {
      if (!isF32(t)) continue;
      if (isConstantNode(n)) home.set(t, wanted.get(t)?.has(16) ? 16 : 32);
      else home.set(t, blocked.has(n) ? 32 : 16);
    }
  }

  // A float16 tensor that must leave the graph as float32 keeps its name for the Cast's output.
  const homeName = new Map<string, string>();
  const castMemo = new Map<string, string>(); // `${tensor}|${precision}` -> name
  const emitted: NodeProto[] = [];
  const pendingOutputCasts = new Map<string, NodeProto>();
  for (const t of graphOutputs) {
    if (home.get(t) === 16 && outputPrecision === 32 && !graphInputs.has(t)) {
      const inner = names.unique(`${t}_fp16`);
      homeName.set(t, inner);
      castMemo.set(`${t}|32`, t);
      pendingOutputCasts.set(t, castNode(names.unique(`${t}_cast_fp32`), inner, t, DataType.FLOAT));
    }
  }
  const nameOf = (t: string): string => homeName.get(t) ?? t;
  const castAfter = new Map<string, NodeProto>([...pendingOutputCasts].map(([t, c]) => [nameOf(t), c]));

  const read = (t: string, p: Precision, before: NodeProto[]): string => {
    const h = home.get(t);
    if (h === undefined || h === p) return nameOf(t);
    const key = `${t}|${p}`;
    let name = castMemo.get(key);
    if (name === undefined) {
      name = names.unique(`${t}_fp${p}`);
      castMemo.set(key, name);
      before.push(castNode(names.unique(`${t}_cast_fp${p}`), nameOf(t), name, p === 16 ? DataType.FLOAT16 : DataType.FLOAT));
    }
    return name;
  };

  let clampedLarge = 0;
  let raisedTiny = 0;
  const toHalf = (t: TensorProto, where: string): TensorProto => {
    const r = tensorToHalf(t);
    if (r.large > 0) notes.push(`${where}: ${r.large} value(s) beyond ±${FP16_MAX} clamped`);
    clampedLarge += r.large;
    raisedTiny += r.tiny;
    return r.tensor;
  };

  for (const n of nodes) {
    const before: NodeProto[] = [];
    n.input = n.input.map((t, i) => (isF32(t) ? read(t, slotPrecision(n, i), before) : t));
    if (!blocked.has(n)) convertNodeContents(n, (t, where) => toHalf(t, where), isConstantNode(n) && home.get(n.output[0]) === 32);
    n.output = n.output.map((t) => nameOf(t));
    emitted.push(...before, n);
    for (const t of n.output) {
      const cast = castAfter.get(t);
      if (cast) emitted.push(cast);
    }
  }
  graph.node = emitted;

  for (const [name, t] of initializers) {
    if (home.get(name) === 16) {
      const half = toHalf(t, `initializer '${name}'`);
      Object.assign(t, half);
    }
  }

  const retype = (vi: ValueInfoProto, p: Precision | undefined): void => {
    const tt = vi.type?.tensorType;
    if (tt && tt.elemType === DataType.FLOAT && p === 16) tt.elemType = DataType.FLOAT16;
  };
  for (const vi of graph.input) retype(vi, home.get(vi.name));
  for (const vi of graph.output) retype(vi, homeName.has(vi.name) ? outputPrecision : home.get(vi.name));
  for (const vi of graph.valueInfo) retype(vi, home.get(vi.name));
  // value_info entries follow the renamed float16 tensors.
  for (const vi of graph.valueInfo) {
    const inner = homeName.get(vi.name);
    if (inner !== undefined) vi.name = inner;
  }

  if (blocked.size > 0) {
    const ops = [...new Set([...blocked].map((n) => n.opType))].sort();
    notes.push(`${blocked.size} node(s) kept in float32 (${ops.join(', ')})`);
  }
  if (raisedTiny > 0) notes.push(`${raisedTiny} nonzero value(s) below ${FP16_MIN_SUBNORMAL} raised to the smallest float16 subnormal`);
  if (clampedLarge > 0) notes.push(`${clampedLarge} value(s) in total clamped to ±${FP16_MAX}`);
  return { model: out, notes };
}

function castNode(name: string, input: string, output: string, to: number): NodeProto {
  return {
    name,
    opType: 'Cast',
    domain: '',
    input: [input],
    output: [output],
    attribute: [{ name: 'to', type: AttributeType.INT, i: BigInt(to) }],
  };
}

/** Float attribute tensors, Constant values, Cast targets and dtype attributes move to float16. */
function convertNodeContents(n: NodeProto, toHalf: (t: TensorProto, where: string) => TensorProto, keepConstantF32: boolean): void {
  const label = n.name || n.output[0] || n.opType;
  if (n.opType === 'Cast') {
    for (const a of n.attribute) if (a.name === 'to' && a.i === BigInt(DataType.FLOAT)) a.i = BigInt(DataType.FLOAT16);
    return;
  }
  if (n.opType === 'Constant') {
    if (keepConstantF32) return;
    n.attribute = n.attribute.map((a) => constantAttrToHalf(a, label, toHalf));
    return;
  }
  const dtypeDefaultFloat = DTYPE_ATTR_OPS[n.opType];
  if (dtypeDefaultFloat !== undefined) {
    const a = n.attribute.find((x) => x.name === 'dtype');
    if (a && a.i === BigInt(DataType.FLOAT)) a.i = BigInt(DataType.FLOAT16);
    else if (!a && dtypeDefaultFloat) n.attribute.push({ name: 'dtype', type: AttributeType.INT, i: BigInt(DataType.FLOAT16) });
  }
  for (const a of n.attribute) {
    if (a.t && a.t.dataType === DataType.FLOAT) a.t = toHalf(a.t, `attribute '${a.name}' of '${label}'`);
    if (a.tensors) a.tensors = a.tensors.map((t) => (t.dataType === DataType.FLOAT ? toHalf(t, `attribute '${a.name}' of '${label}'`) : t));
  }
}

function constantAttrToHalf(a: AttributeProto, label: string, toHalf: (t: TensorProto, where: string) => TensorProto): AttributeProto {
  const where = `Constant '${label}'`;
  if (a.name === 'value' && a.t && a.t.dataType === DataType.FLOAT) return { ...a, t: toHalf(a.t, where) };
  // value_float(s) can't carry float16; re-express them as a float16 'value' tensor.
  if (a.name === 'value_float' && a.f !== undefined) {
    return { name: 'value', type: AttributeType.TENSOR, t: toHalf({ name: '', dataType: DataType.FLOAT, dims: [], floatData: Float32Array.of(a.f) }, where) };
  }
  if (a.name === 'value_floats' && a.floats) {
    const v = Float32Array.from(a.floats);
    return { name: 'value', type: AttributeType.TENSOR, t: toHalf({ name: '', dataType: DataType.FLOAT, dims: [v.length], floatData: v }, where) };
  }
  return a;
}

/** Float32 tensor to float16 with onnxconverter-common's clamping (finite values stay finite, nonzero stays nonzero). */
function tensorToHalf(t: TensorProto): { tensor: TensorProto; large: number; tiny: number } {
  const v = Float32Array.from(readFloat32(t));
  let large = 0;
  let tiny = 0;
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (!Number.isFinite(x)) continue;
    if (x > FP16_MAX) (v[i] = FP16_MAX), large++;
    else if (x < -FP16_MAX) (v[i] = -FP16_MAX), large++;
    else if (x !== 0 && Math.abs(x) < FP16_MIN_SUBNORMAL) (v[i] = Math.sign(x) * FP16_MIN_SUBNORMAL), tiny++;
  }
  const bits = float32ToFloat16Bits(v);
  const half = float16Tensor(t.name, t.dims, bits);
  if (t.docString) half.docString = t.docString;
  return { tensor: half, large, tiny };
}
