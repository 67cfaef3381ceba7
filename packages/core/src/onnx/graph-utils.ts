import { OnnxError } from './onnx-error.js';
import {
  AttributeType,
  type AttributeProto,
  type DataTypeValue,
  type Dimension,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type OperatorSetId,
  type TensorProto,
  type ValueInfoProto,
} from './types.js';

const TEXT_ENCODER = new TextEncoder();
const TEXT_DECODER = new TextDecoder();

/**
 * An attribute value for {@link makeNode}. Bare values are typed by what they are: an integer
 * number or a bigint is INT, any other number FLOAT, a number array INTS when every element is an
 * integer and FLOATS otherwise, a string STRING, a string array STRINGS, a Uint8Array STRING (raw
 * bytes), a TensorProto TENSOR, a GraphProto GRAPH. Wrap the value when that guess is wrong or
 * impossible: `{ float: 1 }` (LeakyRelu alpha = 1.0), `{ floats: [1, 2] }`, `{ ints: [] }`.
 */
export type AttrValue =
  | number
  | bigint
  | string
  | Uint8Array
  | readonly number[]
  | readonly bigint[]
  | readonly string[]
  | TensorProto
  | GraphProto
  | { float: number }
  | { floats: readonly number[] }
  | { int: number | bigint }
  | { ints: readonly (number | bigint)[] }
  | { strings: readonly string[] }
  | { tensors: readonly TensorProto[] }
  | { graphs: readonly GraphProto[] };

function toBigint(v: number | bigint, what: string): bigint {
  if (typeof v === 'bigint') {
    if (v < -(1n << 63n) || v >= 1n << 63n) throw new RangeError(`${what} = ${v} is outside int64`);
    return v;
  }
  if (!Number.isSafeInteger(v)) throw new RangeError(`${what} must be a safe integer, got ${v}`);
  return BigInt(v);
}

const isTensor = (v: object): v is TensorProto => 'dataType' in v && 'dims' in v;
const isGraph = (v: object): v is GraphProto => 'node' in v && 'initializer' in v;

/**
 * An AttributeProto from a name and a value typed as {@link AttrValue} describes.
 * @example makeAttribute('alpha', { float: 1 }) // FLOAT 1, not INT 1
 */
export function makeAttribute(name: string, value: AttrValue): AttributeProto {
  const what = `attribute '${name}'`;
  if (typeof value === 'number') {
    if (Number.isInteger(value)) return { name, type: AttributeType.INT, i: toBigint(value, what) };
    return { name, type: AttributeType.FLOAT, f: value };
  }
  if (typeof value === 'bigint') return { name, type: AttributeType.INT, i: toBigint(value, what) };
  if (typeof value === 'string') return { name, type: AttributeType.STRING, s: TEXT_ENCODER.encode(value) };
  if (value instanceof Uint8Array) return { name, type: AttributeType.STRING, s: value };
  if (Array.isArray(value)) {
    const list = value as readonly unknown[];
    if (list.length === 0) {
      throw new TypeError(`${what}: an empty list has no type; write { ints: [] }, { floats: [] } or { strings: [] }`);
    }
    if (list.every((v) => typeof v === 'string')) {
      return { name, type: AttributeType.STRINGS, strings: (list as string[]).map((s) => TEXT_ENCODER.encode(s)) };
    }
    if (list.every((v) => typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v)))) {
      return { name, type: AttributeType.INTS, ints: (list as (number | bigint)[]).map((v, i) => toBigint(v, `${what}[${i}]`)) };
    }
    if (list.every((v) => typeof v === 'number')) return { name, type: AttributeType.FLOATS, floats: [...(list as number[])] };
    throw new TypeError(`${what}: a list must hold only numbers, only bigints or only strings`);
  }
  if (value === null || typeof value !== 'object') throw new TypeError(`${what}: unsupported value ${String(value)}`);
  if ('float' in value) return { name, type: AttributeType.FLOAT, f: value.float };
  if ('floats' in value) return { name, type: AttributeType.FLOATS, floats: [...value.floats] };
  if ('int' in value) return { name, type: AttributeType.INT, i: toBigint(value.int, what) };
  if ('ints' in value) {
    return { name, type: AttributeType.INTS, ints: value.ints.map((v, i) => toBigint(v, `${what}[${i}]`)) };
  }
  if ('strings' in value) {
    return { name, type: AttributeType.STRINGS, strings: value.strings.map((s) => TEXT_ENCODER.encode(s)) };
  }
  if ('tensors' in value) return { name, type: AttributeType.TENSORS, tensors: [...value.tensors] };
  if ('graphs' in value) return { name, type: AttributeType.GRAPHS, graphs: [...value.graphs] };
  if (isTensor(value)) return { name, type: AttributeType.TENSOR, t: value };
  if (isGraph(value)) return { name, type: AttributeType.GRAPH, g: value };
  throw new TypeError(`${what}: unsupported value; see AttrValue for the accepted forms`);
}

/**
 * A NodeProto. Attributes whose value is undefined are left out, which keeps optional ones tidy.
 * @example makeNode('Conv', ['x', 'w', 'b'], ['y'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [1, 1] }, 'conv0')
 */
export function makeNode(
  opType: string,
  inputs: readonly string[],
  outputs: readonly string[],
  attrs?: Record<string, AttrValue | undefined>,
  name = '',
  domain = '',
): NodeProto {
  if (typeof opType !== 'string' || opType === '') throw new TypeError('opType must be a non-empty string');
  const attribute: AttributeProto[] = [];
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value !== undefined) attribute.push(makeAttribute(key, value));
  }
  return { input: [...inputs], output: [...outputs], name, opType, domain, attribute };
}

/**
 * A tensor ValueInfoProto (graph input, output or value_info). In `shape` a number is a fixed size,
 * a string a symbolic one (`'batch'`) and null an unknown one; leave `shape` out for unknown rank.
 * @example makeValueInfo('images', DataType.FLOAT, ['batch', 3, 640, 640])
 */
export function makeValueInfo(
  name: string,
  elemType: DataTypeValue,
  shape?: readonly (number | string | null)[],
): ValueInfoProto {
  const tensorType: NonNullable<NonNullable<ValueInfoProto['type']>['tensorType']> = { elemType };
  if (shape !== undefined) {
    tensorType.shape = {
      dim: shape.map((d, i): Dimension => {
        if (d === null) return {};
        if (typeof d === 'string') return { dimParam: d };
        if (!Number.isSafeInteger(d) || d < 0) throw new RangeError(`shape[${i}] must be a non-negative integer, a name or null, got ${d}`);
        return { dimValue: d };
      }),
    };
  }
  return { name, type: { tensorType } };
}

// onnx/helper.py VERSION_TABLE: the IR version of the ONNX release that introduced each ai.onnx opset.
const IR_FOR_OPSET: readonly (readonly [number, number])[] = [
  [8, 3],
  [9, 4],
  [10, 5],
  [11, 6],
  [14, 7],
  [18, 8],
  [20, 9],
  [22, 10],
  [23, 11],
];

/**
 * The IR version that goes with an ai.onnx opset (onnx `helper.VERSION_TABLE`): 13 → 7, 17 → 8
 * (SPECS.md section 2). Throws RangeError for opsets newer than the table.
 */
export function irVersionForOpset(opset: number): number {
  if (!Number.isInteger(opset) || opset < 1) throw new RangeError(`opset must be a positive integer, got ${opset}`);
  for (const [upTo, ir] of IR_FOR_OPSET) if (opset <= upTo) return ir;
  throw new RangeError(`opset ${opset} is newer than the IR version table (up to ${IR_FOR_OPSET.at(-1)![0]}); pass irVersion`);
}

/** Options of {@link makeModel}. */
export interface MakeModelOptions {
  graph: GraphProto;
  /** The ai.onnx opset version. */
  opset: number;
  /** Other operator sets, domain → version (for example `{ 'com.microsoft': 1 }`). */
  extraOpsets?: Record<string, number>;
  /** Defaults to {@link irVersionForOpset}(opset). */
  irVersion?: number;
  /** Default 'kd-edge'. */
  producerName?: string;
  producerVersion?: string;
  docString?: string;
  /** metadata_props, key → value. */
  metadata?: Record<string, string>;
}

/**
 * A ModelProto around a graph, with the IR version that matches the opset.
 * @example encodeModel(makeModel({ graph, opset: 13, metadata: { stride: '32' } }))
 */
export function makeModel(options: MakeModelOptions): ModelProto {
  const { graph, opset } = options;
  if (graph === null || typeof graph !== 'object') throw new TypeError('graph must be a GraphProto');
  const opsetImport: OperatorSetId[] = [{ domain: '', version: opset }];
  for (const [domain, version] of Object.entries(options.extraOpsets ?? {})) {
    if (!Number.isInteger(version) || version < 1) throw new RangeError(`extraOpsets['${domain}'] must be a positive integer, got ${version}`);
    opsetImport.push({ domain, version });
  }
  const irVersion = options.irVersion ?? irVersionForOpset(opset);
  if (!Number.isInteger(irVersion) || irVersion < 1) throw new RangeError(`irVersion must be a positive integer, got ${irVersion}`);
  return {
    irVersion,
    opsetImport,
    producerName: options.producerName ?? 'kd-edge',
    producerVersion: options.producerVersion ?? '',
    domain: '',
    modelVersion: 0,
    docString: options.docString ?? '',
    graph,
    metadataProps: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
  };
}

/** The graph's initializers by name. */
export function initializerMap(graph: GraphProto): Map<string, TensorProto> {
  return new Map(graph.initializer.map((t) => [t.name, t]));
}

/** The first attribute of `node` called `name`. */
export function getAttr(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute.find((a) => a.name === name);
}

function nodeLabel(node: NodeProto): string {
  return node.name ? `node '${node.name}' (${node.opType})` : `${node.opType} node with outputs [${node.output.join(', ')}]`;
}

/** The attribute's type: its `type` field, or for writers that leave it 0, the value field that is set. */
function typeOf(a: AttributeProto): number {
  if (a.type !== AttributeType.UNDEFINED) return a.type;
  if (a.f !== undefined) return AttributeType.FLOAT;
  if (a.i !== undefined) return AttributeType.INT;
  if (a.s !== undefined) return AttributeType.STRING;
  if (a.t !== undefined) return AttributeType.TENSOR;
  if (a.g !== undefined) return AttributeType.GRAPH;
  if (a.floats !== undefined) return AttributeType.FLOATS;
  if (a.ints !== undefined) return AttributeType.INTS;
  if (a.strings !== undefined) return AttributeType.STRINGS;
  return AttributeType.UNDEFINED;
}

const TYPE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(AttributeType).map(([k, v]) => [v, k]));

function typed<T>(node: NodeProto, name: string, type: number, dflt: T | undefined): AttributeProto | T {
  const a = getAttr(node, name);
  if (a === undefined) {
    if (dflt === undefined) throw new OnnxError('ONNX_BAD_ATTRIBUTE', `${nodeLabel(node)} has no attribute '${name}'`);
    return dflt;
  }
  const got = typeOf(a);
  if (got !== type) {
    throw new OnnxError(
      'ONNX_BAD_ATTRIBUTE',
      `${nodeLabel(node)}: attribute '${name}' is ${TYPE_NAMES[got] ?? got}, expected ${TYPE_NAMES[type]}`,
    );
  }
  return a;
}

function safe(node: NodeProto, name: string, v: bigint): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new OnnxError('ONNX_BAD_ATTRIBUTE', `${nodeLabel(node)}: attribute '${name}' = ${v} is not a safe integer`);
  }
  return Number(v);
}

/**
 * An INT attribute as a number; `dflt` when absent (throws OnnxError 'ONNX_BAD_ATTRIBUTE' when
 * absent without a default, of another type, or past Number.MAX_SAFE_INTEGER).
 * @example const group = attrInt(node, 'group', 1);
 */
export function attrInt(node: NodeProto, name: string, dflt?: number): number {
  const a = typed(node, name, AttributeType.INT, dflt);
  return typeof a === 'number' ? a : safe(node, name, a.i ?? 0n);
}

/** An INTS attribute as numbers (see {@link attrInt}). */
export function attrInts(node: NodeProto, name: string, dflt?: readonly number[]): number[] {
  const a = typed(node, name, AttributeType.INTS, dflt);
  return Array.isArray(a) ? [...a] : ((a as AttributeProto).ints ?? []).map((v) => safe(node, name, v));
}

/** A FLOAT attribute (see {@link attrInt}). */
export function attrFloat(node: NodeProto, name: string, dflt?: number): number {
  const a = typed(node, name, AttributeType.FLOAT, dflt);
  return typeof a === 'number' ? a : (a.f ?? 0);
}

/** A FLOATS attribute (see {@link attrInt}). */
export function attrFloats(node: NodeProto, name: string, dflt?: readonly number[]): number[] {
  const a = typed(node, name, AttributeType.FLOATS, dflt);
  return Array.isArray(a) ? [...a] : [...((a as AttributeProto).floats ?? [])];
}

/** A STRING attribute decoded as UTF-8 (see {@link attrInt}). */
export function attrString(node: NodeProto, name: string, dflt?: string): string {
  const a = typed(node, name, AttributeType.STRING, dflt);
  return typeof a === 'string' ? a : TEXT_DECODER.decode(a.s ?? new Uint8Array(0));
}

/** A STRINGS attribute decoded as UTF-8 (see {@link attrInt}). */
export function attrStrings(node: NodeProto, name: string, dflt?: readonly string[]): string[] {
  const a = typed(node, name, AttributeType.STRINGS, dflt);
  return Array.isArray(a) ? [...a] : ((a as AttributeProto).strings ?? []).map((s) => TEXT_DECODER.decode(s));
}

/** A TENSOR attribute (the `value` of a Constant node, for example); throws when absent. */
export function attrTensor(node: NodeProto, name: string): TensorProto {
  const a = typed<never>(node, name, AttributeType.TENSOR, undefined) as AttributeProto;
  if (a.t === undefined) throw new OnnxError('ONNX_BAD_ATTRIBUTE', `${nodeLabel(node)}: TENSOR attribute '${name}' has no tensor`);
  return a.t;
}

/** A GRAPH attribute (the `then_branch` of an If node, for example); throws when absent. */
export function attrGraph(node: NodeProto, name: string): GraphProto {
  const a = typed<never>(node, name, AttributeType.GRAPH, undefined) as AttributeProto;
  if (a.g === undefined) throw new OnnxError('ONNX_BAD_ATTRIBUTE', `${nodeLabel(node)}: GRAPH attribute '${name}' has no graph`);
  return a.g;
}
