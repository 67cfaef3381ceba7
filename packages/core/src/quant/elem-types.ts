import { AttributeType, DataType, type GraphProto, type NodeProto } from '../onnx/types.js';

/** Ops whose every output has one fixed element type, whatever the inputs. */
const FIXED_OUTPUT: Readonly<Record<string, readonly number[]>> = {
  Shape: [DataType.INT64],
  Size: [DataType.INT64],
  NonZero: [DataType.INT64],
  ArgMax: [DataType.INT64],
  ArgMin: [DataType.INT64],
  NonMaxSuppression: [DataType.INT64],
  Equal: [DataType.BOOL],
  Less: [DataType.BOOL],
  LessOrEqual: [DataType.BOOL],
  Greater: [DataType.BOOL],
  GreaterOrEqual: [DataType.BOOL],
  Not: [DataType.BOOL],
  And: [DataType.BOOL],
  Or: [DataType.BOOL],
  Xor: [DataType.BOOL],
  IsNaN: [DataType.BOOL],
  IsInf: [DataType.BOOL],
  DynamicQuantizeLinear: [DataType.UINT8, DataType.FLOAT, DataType.UINT8],
};

/** Ops whose outputs after the first have a fixed type (indices, masks). */
const SECONDARY_OUTPUT: Readonly<Record<string, number>> = {
  TopK: DataType.INT64,
  MaxPool: DataType.INT64,
  Unique: DataType.INT64,
  Dropout: DataType.BOOL,
};

function intAttr(node: NodeProto, name: string): number | undefined {
  const a = node.attribute.find((x) => x.name === name);
  return a?.i === undefined ? undefined : Number(a.i);
}

function constantType(node: NodeProto): number | undefined {
  for (const a of node.attribute) {
    switch (a.name) {
      case 'value':
        return a.t?.dataType;
      case 'value_float':
      case 'value_floats':
        return DataType.FLOAT;
      case 'value_int':
      case 'value_ints':
        return DataType.INT64;
      case 'value_string':
      case 'value_strings':
        return DataType.STRING;
      case 'sparse_value':
        return a.sparseTensor?.values?.dataType;
    }
  }
  return undefined;
}

function hasSubgraph(node: NodeProto): boolean {
  return node.attribute.some((a) => a.type === AttributeType.GRAPH || a.type === AttributeType.GRAPHS);
}

/**
 * Element type of every tensor of `graph` we can tell without ONNX shape inference: graph inputs,
 * initializers and value_info first, then a forward pass over the nodes (most ops give their outputs
 * the type of input 0; the exceptions are listed above). Tensors of unknown type are absent.
 */
export function inferElemTypes(graph: GraphProto): Map<string, number> {
  const types = new Map<string, number>();
  const declared = new Map<string, number>();
  for (const vi of [...graph.input, ...graph.output, ...graph.valueInfo]) {
    const t = vi.type?.tensorType?.elemType;
    if (t !== undefined && t !== DataType.UNDEFINED) declared.set(vi.name, t);
  }
  for (const init of graph.initializer) types.set(init.name, init.dataType);
  for (const [name, t] of declared) if (!types.has(name)) types.set(name, t);

  const typeOf = (name: string | undefined): number | undefined =>
    name === undefined || name === '' ? undefined : types.get(name);

  for (const node of graph.node) {
    const outs = nodeOutputTypes(node, typeOf);
    node.output.forEach((name, i) => {
      if (name === '') return;
      // Declared value_info wins: it came from the exporter's own shape inference.
      const t = declared.get(name) ?? outs[i];
      if (t !== undefined) types.set(name, t);
    });
  }
  return types;
}

function nodeOutputTypes(node: NodeProto, typeOf: (name: string | undefined) => number | undefined): (number | undefined)[] {
  const n = node.output.length;
  const all = (t: number | undefined): (number | undefined)[] => new Array<number | undefined>(n).fill(t);
  if (node.domain !== '' && node.domain !== 'ai.onnx') return all(undefined);
  if (hasSubgraph(node)) return all(undefined);
  const fixed = FIXED_OUTPUT[node.opType];
  if (fixed) return node.output.map((_, i) => fixed[Math.min(i, fixed.length - 1)]);
  const first = firstOutputType(node, typeOf);
  const secondary = SECONDARY_OUTPUT[node.opType];
  if (secondary !== undefined) return node.output.map((_, i) => (i === 0 ? first : secondary));
  return all(first);
}

function firstOutputType(node: NodeProto, typeOf: (name: string | undefined) => number | undefined): number | undefined {
  switch (node.opType) {
    case 'Cast':
      return intAttr(node, 'to');
    case 'CastLike':
      return typeOf(node.input[1]);
    case 'Constant':
      return constantType(node);
    case 'ConstantOfShape': {
      const v = node.attribute.find((a) => a.name === 'value');
      return v?.t?.dataType ?? DataType.FLOAT;
    }
    case 'RandomNormal':
    case 'RandomUniform':
      return intAttr(node, 'dtype') ?? DataType.FLOAT;
    case 'RandomNormalLike':
    case 'RandomUniformLike':
    case 'EyeLike':
    case 'Bernoulli':
      return intAttr(node, 'dtype') ?? typeOf(node.input[0]);
    case 'Multinomial':
      return intAttr(node, 'dtype') ?? DataType.INT32;
    case 'Where':
      return typeOf(node.input[1]);
    case 'QuantizeLinear': {
      const out = intAttr(node, 'output_dtype');
      if (out !== undefined && out !== 0) return out;
      return node.input[2] ? typeOf(node.input[2]) : DataType.UINT8;
    }
    case 'DequantizeLinear':
      return typeOf(node.input[1]);
    default:
      return typeOf(node.input[0]);
  }
}
