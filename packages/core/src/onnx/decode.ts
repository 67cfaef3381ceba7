import { ProtoDecodeError } from '../proto/proto-error.js';
import { ProtoReader } from '../proto/reader.js';
import { OnnxError } from './onnx-error.js';
import type {
  AttributeProto,
  Dimension,
  FunctionProto,
  GraphProto,
  ModelProto,
  NodeProto,
  OperatorSetId,
  SparseTensorProto,
  StringStringEntry,
  TensorAnnotation,
  TensorProto,
  TensorSegment,
  TensorShapeProto,
  TrainingInfoProto,
  TypeProto,
  UnknownFields,
  ValueInfoProto,
} from './types.js';

/** Options of {@link decodeModel}, {@link decodeGraph} and {@link decodeTensor}. */
export interface DecodeOptions {
  /**
   * How deeply messages may nest below the top one (default 64). A subgraph in a node attribute
   * costs three levels (attribute, graph, node), so 64 admits subgraphs nested about 20 deep;
   * deeper input fails with 'ONNX_TOO_DEEP' instead of exhausting the stack.
   */
  maxDepth?: number;
}

const DEFAULT_MAX_DEPTH = 64;

// Field keys as readTag returns them: field * 8 + wire type.
const V = 0; // varint
const I64 = 1;
const L = 2; // length-delimited
const I32 = 5;
const k = (field: number, wire: number): number => field * 8 + wire;

/** A decoding failure on its way up: each enclosing message prepends the field it was reading. */
class Failure {
  readonly path: string[] = [];
  constructor(
    readonly code: 'ONNX_MALFORMED' | 'ONNX_TOO_DEEP',
    readonly detail: string,
    readonly offset: number,
  ) {}
}

/** Proto field names by number; a second entry names the property holding a repeated message. */
type FieldNames = Record<number, readonly [string, string?]>;

interface Ctx {
  readonly r: ProtoReader;
  readonly maxDepth: number;
  /** Repeated numbers of the tensor being read; a tensor never contains a tensor, so one slot is enough. */
  tensorData: TensorChunks | undefined;
}

/** How to read one message type: field names for error paths, then its field dispatch. */
interface Message<T extends UnknownFields> {
  readonly names: FieldNames;
  /** Reads the field whose key `tag` was just read into `out`; false for a key the schema does not model. */
  readonly field: (c: Ctx, depth: number, out: T, tag: number) => boolean;
  /** Finishes `out` once its last field is read. */
  readonly done?: (c: Ctx, out: T) => void;
}

function annotate(e: unknown, names: FieldNames, tag: number, out: object): never {
  let f: Failure;
  if (e instanceof Failure) f = e;
  else if (e instanceof ProtoDecodeError) f = new Failure('ONNX_MALFORMED', e.detail, e.offset);
  else throw e;
  const field = tag >>> 3;
  if (field !== 0) {
    const entry = names[field];
    if (entry === undefined) f.path.push(`<field ${field}>`);
    else if (entry[1] === undefined) f.path.push(entry[0]);
    else {
      // The failing element was not pushed yet, so its index is the current length.
      const list = (out as Record<string, unknown>)[entry[1]];
      f.path.push(`${entry[0]}[${Array.isArray(list) ? list.length : 0}]`);
    }
  }
  throw f;
}

/** Reads one embedded message into `out` (merging, as protobuf does for a repeated singular field). */
function msg<T extends UnknownFields>(c: Ctx, depth: number, type: Message<T>, out: T): T {
  if (depth >= c.maxDepth) {
    throw new Failure('ONNX_TOO_DEEP', `messages nest deeper than maxDepth = ${c.maxDepth}`, c.r.tagPos);
  }
  const outer = c.r.enter();
  readFields(c, depth + 1, type, out);
  c.r.leave(outer);
  return out;
}

function unknown(c: Ctx, tag: number, out: UnknownFields): void {
  (out.unknownFields ??= []).push(c.r.skip(tag));
}

/**
 * Reads fields into `out` up to the end of the current message; keys `type` does not model are kept
 * as unknown fields. A failure is annotated with the field it hit.
 */
function readFields<T extends UnknownFields>(c: Ctx, depth: number, type: Message<T>, out: T): void {
  const r = c.r;
  const field = type.field;
  let tag = 0;
  try {
    while (r.pos < r.end) {
      // Cleared first, so a malformed key is reported without a field name.
      tag = 0;
      tag = r.readTag();
      if (!field(c, depth, out, tag)) unknown(c, tag, out);
    }
  } catch (e) {
    annotate(e, type.names, tag, out);
  }
  type.done?.(c, out);
}

type Numeric = Float32Array | Float64Array | Int32Array | BigInt64Array | BigUint64Array;

/** Collects a repeated scalar that may arrive packed, unpacked or both, in wire order. */
class Chunks<T extends Numeric> {
  private readonly chunks: T[] = [];
  private pending: (number | bigint)[] = [];
  constructor(private readonly Ctor: { new (n: number): T; from(a: ArrayLike<number | bigint>): T }) {}

  one(v: number | bigint): void {
    this.pending.push(v);
  }

  block(a: T): void {
    this.flush();
    this.chunks.push(a);
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    this.chunks.push((this.Ctor.from as (a: ArrayLike<number | bigint>) => T)(this.pending));
    this.pending = [];
  }

  /** All values after `existing` (from an earlier merged occurrence); undefined when there are none. */
  result(existing: T | undefined): T | undefined {
    this.flush();
    const parts = existing && existing.length > 0 ? [existing, ...this.chunks] : this.chunks;
    let total = 0;
    for (const p of parts) total += p.length;
    if (total === 0) return undefined;
    if (parts.length === 1) return parts[0];
    const out = new this.Ctor(total);
    let at = 0;
    for (const p of parts) {
      (out as unknown as { set(a: T, o: number): void }).set(p, at);
      at += p.length;
    }
    return out;
  }
}

const ENTRY: Message<StringStringEntry> = {
  names: { 1: ['key'], 2: ['value'] },
  field: (c, _depth, out, tag) => {
    const r = c.r;
    if (tag === k(1, L)) out.key = r.readString();
    else if (tag === k(2, L)) out.value = r.readString();
    else return false;
    return true;
  },
};
const newEntry = (): StringStringEntry => ({ key: '', value: '' });

const OPSET: Message<OperatorSetId> = {
  names: { 1: ['domain'], 2: ['version'] },
  field: (c, _depth, out, tag) => {
    const r = c.r;
    if (tag === k(1, L)) out.domain = r.readString();
    else if (tag === k(2, V)) out.version = r.readInt64Number();
    else return false;
    return true;
  },
};
const newOpset = (): OperatorSetId => ({ domain: '', version: 0 });

const SEGMENT: Message<TensorSegment> = {
  names: { 1: ['begin'], 2: ['end'] },
  field: (c, _depth, out, tag) => {
    const r = c.r;
    if (tag === k(1, V)) out.begin = r.readInt64Number();
    else if (tag === k(2, V)) out.end = r.readInt64Number();
    else return false;
    return true;
  },
};

/** Repeated numeric fields of one tensor, each gathered until the tensor's end. */
interface TensorChunks {
  floats?: Chunks<Float32Array>;
  int32s?: Chunks<Int32Array>;
  int64s?: Chunks<BigInt64Array>;
  doubles?: Chunks<Float64Array>;
  uint64s?: Chunks<BigUint64Array>;
}
const chunks = (c: Ctx): TensorChunks => (c.tensorData ??= {});

const TENSOR: Message<TensorProto> = {
  names: {
    1: ['dims'],
    2: ['data_type'],
    3: ['segment'],
    4: ['float_data'],
    5: ['int32_data'],
    6: ['string_data'],
    7: ['int64_data'],
    8: ['name'],
    9: ['raw_data'],
    10: ['double_data'],
    11: ['uint64_data'],
    12: ['doc_string'],
    13: ['external_data', 'externalData'],
    14: ['data_location'],
    16: ['metadata_props', 'metadataProps'],
  },
  field: (c, depth, out, tag) => {
    const r = c.r;
    switch (tag) {
      case k(1, L):
        r.readPackedInt64Numbers(out.dims);
        break;
      case k(1, V):
        out.dims.push(r.readInt64Number());
        break;
      case k(2, V):
        out.dataType = r.readInt32();
        break;
      case k(3, L):
        out.segment = msg(c, depth, SEGMENT, out.segment ?? { begin: 0, end: 0 });
        break;
      case k(4, L):
        (chunks(c).floats ??= new Chunks(Float32Array)).block(r.readPackedFloat());
        break;
      case k(4, I32):
        (chunks(c).floats ??= new Chunks(Float32Array)).one(r.readFloat());
        break;
      case k(5, L):
        (chunks(c).int32s ??= new Chunks(Int32Array)).block(r.readPackedInt32());
        break;
      case k(5, V):
        (chunks(c).int32s ??= new Chunks(Int32Array)).one(r.readInt32());
        break;
      case k(6, L):
        (out.stringData ??= []).push(r.readBytes());
        break;
      case k(7, L):
        (chunks(c).int64s ??= new Chunks(BigInt64Array)).block(r.readPackedInt64());
        break;
      case k(7, V):
        (chunks(c).int64s ??= new Chunks(BigInt64Array)).one(r.readInt64());
        break;
      case k(8, L):
        out.name = r.readString();
        break;
      case k(9, L):
        out.rawData = r.readBytes();
        break;
      case k(10, L):
        (chunks(c).doubles ??= new Chunks(Float64Array)).block(r.readPackedDouble());
        break;
      case k(10, I64):
        (chunks(c).doubles ??= new Chunks(Float64Array)).one(r.readDouble());
        break;
      case k(11, L):
        (chunks(c).uint64s ??= new Chunks(BigUint64Array)).block(r.readPackedUint64());
        break;
      case k(11, V):
        (chunks(c).uint64s ??= new Chunks(BigUint64Array)).one(r.readUint64());
        break;
      case k(12, L):
        out.docString = r.readString();
        break;
      case k(13, L):
        (out.externalData ??= []).push(msg(c, depth, ENTRY, newEntry()));
        break;
      case k(14, V):
        out.dataLocation = r.readInt32();
        break;
      case k(16, L):
        (out.metadataProps ??= []).push(msg(c, depth, ENTRY, newEntry()));
        break;
      default:
        return false;
    }
    return true;
  },
  done: (c, out) => {
    const t = c.tensorData;
    if (t === undefined) return;
    c.tensorData = undefined;
    if (t.floats) setOrDelete(out, 'floatData', t.floats.result(out.floatData));
    if (t.int32s) setOrDelete(out, 'int32Data', t.int32s.result(out.int32Data));
    if (t.int64s) setOrDelete(out, 'int64Data', t.int64s.result(out.int64Data));
    if (t.doubles) setOrDelete(out, 'doubleData', t.doubles.result(out.doubleData));
    if (t.uint64s) setOrDelete(out, 'uint64Data', t.uint64s.result(out.uint64Data));
  },
};
const newTensor = (): TensorProto => ({ dims: [], dataType: 0, name: '' });

function setOrDelete<T, K extends keyof T>(out: T, key: K, value: T[K] | undefined): void {
  if (value === undefined) delete out[key];
  else out[key] = value;
}

const SPARSE: Message<SparseTensorProto> = {
  names: { 1: ['values'], 2: ['indices'], 3: ['dims'] },
  field: (c, depth, out, tag) => {
    const r = c.r;
    if (tag === k(1, L)) out.values = msg(c, depth, TENSOR, out.values ?? newTensor());
    else if (tag === k(2, L)) out.indices = msg(c, depth, TENSOR, out.indices ?? newTensor());
    else if (tag === k(3, L)) r.readPackedInt64Numbers(out.dims);
    else if (tag === k(3, V)) out.dims.push(r.readInt64Number());
    else return false;
    return true;
  },
};
const newSparse = (): SparseTensorProto => ({ dims: [] });

const DIM: Message<Dimension> = {
  names: { 1: ['dim_value'], 2: ['dim_param'], 3: ['denotation'] },
  field: (c, _depth, out, tag) => {
    const r = c.r;
    // dim_value and dim_param are a oneof: the last one read wins.
    if (tag === k(1, V)) {
      out.dimValue = r.readInt64Number();
      delete out.dimParam;
    } else if (tag === k(2, L)) {
      out.dimParam = r.readString();
      delete out.dimValue;
    } else if (tag === k(3, L)) out.denotation = r.readString();
    else return false;
    return true;
  },
};

const SHAPE: Message<TensorShapeProto> = {
  names: { 1: ['dim', 'dim'] },
  field: (c, depth, out, tag) => {
    if (tag === k(1, L)) out.dim.push(msg(c, depth, DIM, {}));
    else return false;
    return true;
  },
};

type TensorTypeValue = NonNullable<TypeProto['tensorType']>;
const TENSOR_TYPE: Message<TensorTypeValue> = {
  names: { 1: ['elem_type'], 2: ['shape'] },
  field: (c, depth, out, tag) => {
    const r = c.r;
    if (tag === k(1, V)) out.elemType = r.readInt32();
    else if (tag === k(2, L)) out.shape = msg(c, depth, SHAPE, out.shape ?? { dim: [] });
    else return false;
    return true;
  },
};

type ElemTypeValue = { elemType?: TypeProto; unknownFields?: Uint8Array[] };
const ELEM_TYPE: Message<ElemTypeValue> = {
  names: { 1: ['elem_type'] },
  field: (c, depth, out, tag) => {
    if (tag === k(1, L)) out.elemType = msg(c, depth, TYPE, out.elemType ?? {});
    else return false;
    return true;
  },
};

type MapTypeValue = NonNullable<TypeProto['mapType']>;
const MAP_TYPE: Message<MapTypeValue> = {
  names: { 1: ['key_type'], 2: ['value_type'] },
  field: (c, depth, out, tag) => {
    const r = c.r;
    if (tag === k(1, V)) out.keyType = r.readInt32();
    else if (tag === k(2, L)) out.valueType = msg(c, depth, TYPE, out.valueType ?? {});
    else return false;
    return true;
  },
};

type OpaqueTypeValue = NonNullable<TypeProto['opaqueType']>;
const OPAQUE_TYPE: Message<OpaqueTypeValue> = {
  names: { 1: ['domain'], 2: ['name'] },
  field: (c, _depth, out, tag) => {
    const r = c.r;
    if (tag === k(1, L)) out.domain = r.readString();
    else if (tag === k(2, L)) out.name = r.readString();
    else return false;
    return true;
  },
};

const TYPE_VALUE_KEYS = ['tensorType', 'sequenceType', 'mapType', 'optionalType', 'sparseTensorType', 'opaqueType'] as const;

/** TypeProto.value is a oneof: setting one member clears the others. */
function keepOnly(out: TypeProto, key: (typeof TYPE_VALUE_KEYS)[number]): void {
  for (const other of TYPE_VALUE_KEYS) if (other !== key && out[other] !== undefined) delete out[other];
}

const TYPE: Message<TypeProto> = {
  names: {
    1: ['tensor_type'],
    4: ['sequence_type'],
    5: ['map_type'],
    6: ['denotation'],
    7: ['opaque_type'],
    8: ['sparse_tensor_type'],
    9: ['optional_type'],
  },
  field: (c, depth, out, tag) => {
    const r = c.r;
    switch (tag) {
      case k(1, L):
        keepOnly(out, 'tensorType');
        out.tensorType = msg(c, depth, TENSOR_TYPE, out.tensorType ?? { elemType: 0 });
        break;
      case k(4, L):
        keepOnly(out, 'sequenceType');
        out.sequenceType = msg(c, depth, ELEM_TYPE, out.sequenceType ?? {});
        break;
      case k(5, L):
        keepOnly(out, 'mapType');
        out.mapType = msg(c, depth, MAP_TYPE, out.mapType ?? { keyType: 0 });
        break;
      case k(6, L):
        out.denotation = r.readString();
        break;
      case k(7, L):
        keepOnly(out, 'opaqueType');
        out.opaqueType = msg(c, depth, OPAQUE_TYPE, out.opaqueType ?? { domain: '', name: '' });
        break;
      case k(8, L):
        keepOnly(out, 'sparseTensorType');
        out.sparseTensorType = msg(c, depth, TENSOR_TYPE, out.sparseTensorType ?? { elemType: 0 });
        break;
      case k(9, L):
        keepOnly(out, 'optionalType');
        out.optionalType = msg(c, depth, ELEM_TYPE, out.optionalType ?? {});
        break;
      default:
        return false;
    }
    return true;
  },
};

const VALUE_INFO: Message<ValueInfoProto> = {
  names: {
    1: ['name'],
    2: ['type'],
    3: ['doc_string'],
    4: ['metadata_props', 'metadataProps'],
  },
  field: (c, depth, out, tag) => {
    const r = c.r;
    if (tag === k(1, L)) out.name = r.readString();
    else if (tag === k(2, L)) out.type = msg(c, depth, TYPE, out.type ?? {});
    else if (tag === k(3, L)) out.docString = r.readString();
    else if (tag === k(4, L)) (out.metadataProps ??= []).push(msg(c, depth, ENTRY, newEntry()));
    else return false;
    return true;
  },
};
const newValueInfo = (): ValueInfoProto => ({ name: '' });

const ATTRIBUTE: Message<AttributeProto> = {
  names: {
    1: ['name'],
    2: ['f'],
    3: ['i'],
    4: ['s'],
    5: ['t'],
    6: ['g'],
    7: ['floats'],
    8: ['ints'],
    9: ['strings'],
    10: ['tensors', 'tensors'],
    11: ['graphs', 'graphs'],
    13: ['doc_string'],
    14: ['tp'],
    15: ['type_protos', 'typeProtos'],
    20: ['type'],
    21: ['ref_attr_name'],
    22: ['sparse_tensor'],
    23: ['sparse_tensors', 'sparseTensors'],
  },
  field: (c, depth, out, tag) => {
    const r = c.r;
    switch (tag) {
      case k(1, L):
        out.name = r.readString();
        break;
      case k(2, I32):
        out.f = r.readFloat();
        break;
      case k(3, V):
        out.i = r.readInt64();
        break;
      case k(4, L):
        out.s = r.readBytes();
        break;
      case k(5, L):
        out.t = msg(c, depth, TENSOR, out.t ?? newTensor());
        break;
      case k(6, L):
        out.g = msg(c, depth, GRAPH, out.g ?? newGraph());
        break;
      case k(7, L):
        r.readPackedFloatNumbers((out.floats ??= []));
        break;
      case k(7, I32):
        (out.floats ??= []).push(r.readFloat());
        break;
      case k(8, L):
        r.readPackedInt64Bigints((out.ints ??= []));
        break;
      case k(8, V):
        (out.ints ??= []).push(r.readInt64());
        break;
      case k(9, L):
        (out.strings ??= []).push(r.readBytes());
        break;
      case k(10, L):
        (out.tensors ??= []).push(msg(c, depth, TENSOR, newTensor()));
        break;
      case k(11, L):
        (out.graphs ??= []).push(msg(c, depth, GRAPH, newGraph()));
        break;
      case k(13, L):
        out.docString = r.readString();
        break;
      case k(14, L):
        out.tp = msg(c, depth, TYPE, out.tp ?? {});
        break;
      case k(15, L):
        (out.typeProtos ??= []).push(msg(c, depth, TYPE, {}));
        break;
      case k(20, V):
        out.type = r.readInt32();
        break;
      case k(21, L):
        out.refAttrName = r.readString();
        break;
      case k(22, L):
        out.sparseTensor = msg(c, depth, SPARSE, out.sparseTensor ?? newSparse());
        break;
      case k(23, L):
        (out.sparseTensors ??= []).push(msg(c, depth, SPARSE, newSparse()));
        break;
      default:
        return false;
    }
    return true;
  },
  done: (c, out) => {
    // An empty packed block leaves an empty list; absent and empty are the same on the wire.
    if (out.floats?.length === 0) delete out.floats;
    if (out.ints?.length === 0) delete out.ints;
  },
};

const NODE: Message<NodeProto> = {
  names: {
    1: ['input'],
    2: ['output'],
    3: ['name'],
    4: ['op_type'],
    5: ['attribute', 'attribute'],
    6: ['doc_string'],
    7: ['domain'],
    8: ['overload'],
    9: ['metadata_props', 'metadataProps'],
  },
  field: (c, depth, out, tag) => {
    const r = c.r;
    switch (tag) {
      case k(1, L):
        out.input.push(r.readString());
        break;
      case k(2, L):
        out.output.push(r.readString());
        break;
      case k(3, L):
        out.name = r.readString();
        break;
      case k(4, L):
        out.opType = r.readString();
        break;
      case k(5, L):
        out.attribute.push(msg(c, depth, ATTRIBUTE, { name: '', type: 0 }));
        break;
      case k(6, L):
        out.docString = r.readString();
        break;
      case k(7, L):
        out.domain = r.readString();
        break;
      case k(8, L):
        out.overload = r.readString();
        break;
      case k(9, L):
        (out.metadataProps ??= []).push(msg(c, depth, ENTRY, newEntry()));
        break;
      default:
        return false;
    }
    return true;
  },
};
const newNode = (): NodeProto => ({ input: [], output: [], name: '', opType: '', domain: '', attribute: [] });

const ANNOTATION: Message<TensorAnnotation> = {
  names: {
    1: ['tensor_name'],
    2: ['quant_parameter_tensor_names', 'quantParameterTensorNames'],
  },
  field: (c, depth, out, tag) => {
    const r = c.r;
    if (tag === k(1, L)) out.tensorName = r.readString();
    else if (tag === k(2, L)) out.quantParameterTensorNames.push(msg(c, depth, ENTRY, newEntry()));
    else return false;
    return true;
  },
};

const GRAPH: Message<GraphProto> = {
  names: {
    1: ['node', 'node'],
    2: ['name'],
    5: ['initializer', 'initializer'],
    10: ['doc_string'],
    11: ['input', 'input'],
    12: ['output', 'output'],
    13: ['value_info', 'valueInfo'],
    14: ['quantization_annotation', 'quantizationAnnotation'],
    15: ['sparse_initializer', 'sparseInitializer'],
    16: ['metadata_props', 'metadataProps'],
  },
  field: (c, depth, out, tag) => {
    const r = c.r;
    switch (tag) {
      case k(1, L):
        out.node.push(msg(c, depth, NODE, newNode()));
        break;
      case k(2, L):
        out.name = r.readString();
        break;
      case k(5, L):
        out.initializer.push(msg(c, depth, TENSOR, newTensor()));
        break;
      case k(10, L):
        out.docString = r.readString();
        break;
      case k(11, L):
        out.input.push(msg(c, depth, VALUE_INFO, newValueInfo()));
        break;
      case k(12, L):
        out.output.push(msg(c, depth, VALUE_INFO, newValueInfo()));
        break;
      case k(13, L):
        out.valueInfo.push(msg(c, depth, VALUE_INFO, newValueInfo()));
        break;
      case k(14, L):
        (out.quantizationAnnotation ??= []).push(
          msg(c, depth, ANNOTATION, { tensorName: '', quantParameterTensorNames: [] }),
        );
        break;
      case k(15, L):
        (out.sparseInitializer ??= []).push(msg(c, depth, SPARSE, newSparse()));
        break;
      case k(16, L):
        (out.metadataProps ??= []).push(msg(c, depth, ENTRY, newEntry()));
        break;
      default:
        return false;
    }
    return true;
  },
};
const newGraph = (): GraphProto => ({ node: [], name: '', initializer: [], input: [], output: [], valueInfo: [] });

const TRAINING: Message<TrainingInfoProto> = {
  names: {
    1: ['initialization'],
    2: ['algorithm'],
    3: ['initialization_binding', 'initializationBinding'],
    4: ['update_binding', 'updateBinding'],
  },
  field: (c, depth, out, tag) => {
    if (tag === k(1, L)) out.initialization = msg(c, depth, GRAPH, out.initialization ?? newGraph());
    else if (tag === k(2, L)) out.algorithm = msg(c, depth, GRAPH, out.algorithm ?? newGraph());
    else if (tag === k(3, L)) out.initializationBinding.push(msg(c, depth, ENTRY, newEntry()));
    else if (tag === k(4, L)) out.updateBinding.push(msg(c, depth, ENTRY, newEntry()));
    else return false;
    return true;
  },
};

const FUNCTION: Message<FunctionProto> = {
  names: {
    1: ['name'],
    4: ['input'],
    5: ['output'],
    6: ['attribute'],
    7: ['node', 'node'],
    8: ['doc_string'],
    9: ['opset_import', 'opsetImport'],
    10: ['domain'],
    11: ['attribute_proto', 'attributeProto'],
    12: ['value_info', 'valueInfo'],
    13: ['overload'],
    14: ['metadata_props', 'metadataProps'],
  },
  field: (c, depth, out, tag) => {
    const r = c.r;
    switch (tag) {
      case k(1, L):
        out.name = r.readString();
        break;
      case k(4, L):
        out.input.push(r.readString());
        break;
      case k(5, L):
        out.output.push(r.readString());
        break;
      case k(6, L):
        out.attribute.push(r.readString());
        break;
      case k(7, L):
        out.node.push(msg(c, depth, NODE, newNode()));
        break;
      case k(8, L):
        out.docString = r.readString();
        break;
      case k(9, L):
        out.opsetImport.push(msg(c, depth, OPSET, newOpset()));
        break;
      case k(10, L):
        out.domain = r.readString();
        break;
      case k(11, L):
        out.attributeProto.push(msg(c, depth, ATTRIBUTE, { name: '', type: 0 }));
        break;
      case k(12, L):
        out.valueInfo.push(msg(c, depth, VALUE_INFO, newValueInfo()));
        break;
      case k(13, L):
        out.overload = r.readString();
        break;
      case k(14, L):
        (out.metadataProps ??= []).push(msg(c, depth, ENTRY, newEntry()));
        break;
      default:
        return false;
    }
    return true;
  },
};

const MODEL: Message<ModelProto> = {
  names: {
    1: ['ir_version'],
    2: ['producer_name'],
    3: ['producer_version'],
    4: ['domain'],
    5: ['model_version'],
    6: ['doc_string'],
    7: ['graph'],
    8: ['opset_import', 'opsetImport'],
    14: ['metadata_props', 'metadataProps'],
    20: ['training_info', 'trainingInfo'],
    25: ['functions', 'functions'],
  },
  field: (c, depth, out, tag) => {
    const r = c.r;
    switch (tag) {
      case k(1, V):
        out.irVersion = r.readInt64Number();
        break;
      case k(2, L):
        out.producerName = r.readString();
        break;
      case k(3, L):
        out.producerVersion = r.readString();
        break;
      case k(4, L):
        out.domain = r.readString();
        break;
      case k(5, V):
        out.modelVersion = r.readInt64Number();
        break;
      case k(6, L):
        out.docString = r.readString();
        break;
      case k(7, L):
        out.graph = msg(c, depth, GRAPH, out.graph ?? newGraph());
        break;
      case k(8, L):
        out.opsetImport.push(msg(c, depth, OPSET, newOpset()));
        break;
      case k(14, L):
        out.metadataProps.push(msg(c, depth, ENTRY, newEntry()));
        break;
      case k(20, L):
        (out.trainingInfo ??= []).push(
          msg(c, depth, TRAINING, { initializationBinding: [], updateBinding: [] }),
        );
        break;
      case k(25, L):
        (out.functions ??= []).push(
          msg(c, depth, FUNCTION, {
            name: '',
            input: [],
            output: [],
            attribute: [],
            attributeProto: [],
            node: [],
            opsetImport: [],
            domain: '',
            valueInfo: [],
          }),
        );
        break;
      default:
        return false;
    }
    return true;
  },
};

function run<T extends UnknownFields>(what: string, bytes: Uint8Array, options: DecodeOptions | undefined, type: Message<T>, out: T): T {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`bytes must be a Uint8Array, got ${typeof bytes}`);
  const maxDepth = options?.maxDepth ?? DEFAULT_MAX_DEPTH;
  if (!Number.isInteger(maxDepth) || maxDepth < 1) {
    throw new RangeError(`maxDepth must be a positive integer, got ${maxDepth}`);
  }
  // A plain view, so decoded byte fields are plain Uint8Arrays even when given a Buffer.
  const view = bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const c: Ctx = { r: new ProtoReader(view), maxDepth, tensorData: undefined };
  try {
    readFields(c, 0, type, out);
  } catch (e) {
    if (e instanceof RangeError && /call stack/i.test(e.message)) {
      // Only reachable with a maxDepth far above the default: the JS stack ran out first.
      throw new OnnxError('ONNX_TOO_DEEP', `ONNX ${what} nests too deeply for the JavaScript stack (maxDepth = ${maxDepth})`, {
        cause: e,
      });
    }
    if (!(e instanceof Failure)) throw e;
    const path = e.path.reverse().join('.');
    const where = path === '' ? `in ${what}` : `at ${path}`;
    const message =
      e.code === 'ONNX_TOO_DEEP'
        ? `ONNX ${what} nests too deeply ${where} (byte ${e.offset}): ${e.detail}`
        : `malformed ONNX ${what} ${where} (byte ${e.offset}): ${e.detail}`;
    throw new OnnxError(e.code, message, { path, offset: e.offset });
  }
  return out;
}

/**
 * Decodes a serialized ONNX ModelProto. Byte fields (`rawData`, `s`, unknown fields) are views into
 * `bytes`, so keep `bytes` unchanged while the model is in use. Malformed input throws
 * {@link OnnxError} ('ONNX_MALFORMED' or 'ONNX_TOO_DEEP') naming the field path and byte offset.
 * @example const model = decodeModel(await readFile('yolov5n.onnx'));
 */
export function decodeModel(bytes: Uint8Array, options?: DecodeOptions): ModelProto {
  return run('model', bytes, options, MODEL, {
    irVersion: 0,
    opsetImport: [],
    producerName: '',
    producerVersion: '',
    domain: '',
    modelVersion: 0,
    docString: '',
    metadataProps: [],
  });
}

/** Decodes a serialized GraphProto (see {@link decodeModel}). */
export function decodeGraph(bytes: Uint8Array, options?: DecodeOptions): GraphProto {
  return run('graph', bytes, options, GRAPH, newGraph());
}

/** Decodes a serialized TensorProto (see {@link decodeModel}). */
export function decodeTensor(bytes: Uint8Array, options?: DecodeOptions): TensorProto {
  return run('tensor', bytes, options, TENSOR, newTensor());
}
