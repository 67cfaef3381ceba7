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

/** A decoding failure on its way up: each message reader prepends the field it was reading. */
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
function msg<T>(c: Ctx, depth: number, read: (c: Ctx, depth: number, out: T) => void, out: T): T {
  if (depth >= c.maxDepth) {
    throw new Failure('ONNX_TOO_DEEP', `messages nest deeper than maxDepth = ${c.maxDepth}`, c.r.tagPos);
  }
  const outer = c.r.enter();
  read(c, depth + 1, out);
  c.r.leave(outer);
  return out;
}

function unknown(c: Ctx, tag: number, out: { unknownFields?: Uint8Array[] }): void {
  (out.unknownFields ??= []).push(c.r.skip(tag));
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

const ENTRY_NAMES: FieldNames = { 1: ['key'], 2: ['value'] };
function readEntry(c: Ctx, _depth: number, out: StringStringEntry): void {
  const r = c.r;
  let tag = 0;
  try {
    while (r.pos < r.end) {
      tag = 0;
      tag = r.readTag();
      if (tag === k(1, L)) out.key = r.readString();
      else if (tag === k(2, L)) out.value = r.readString();
      else unknown(c, tag, out);
    }
  } catch (e) {
    annotate(e, ENTRY_NAMES, tag, out);
  }
}
const newEntry = (): StringStringEntry => ({ key: '', value: '' });

const OPSET_NAMES: FieldNames = { 1: ['domain'], 2: ['version'] };
function readOpset(c: Ctx, _depth: number, out: OperatorSetId): void {
  const r = c.r;
  let tag = 0;
  try {
    while (r.pos < r.end) {
      tag = 0;
      tag = r.readTag();
      if (tag === k(1, L)) out.domain = r.readString();
      else if (tag === k(2, V)) out.version = r.readInt64Number();
      else unknown(c, tag, out);
    }
  } catch (e) {
    annotate(e, OPSET_NAMES, tag, out);
  }
}
const newOpset = (): OperatorSetId => ({ domain: '', version: 0 });

const SEGMENT_NAMES: FieldNames = { 1: ['begin'], 2: ['end'] };
function readSegment(c: Ctx, _depth: number, out: TensorSegment): void {
  const r = c.r;
  let tag = 0;
  try {
    while (r.pos < r.end) {
      tag = 0;
      tag = r.readTag();
      if (tag === k(1, V)) out.begin = r.readInt64Number();
      else if (tag === k(2, V)) out.end = r.readInt64Number();
      else unknown(c, tag, out);
    }
  } catch (e) {
    annotate(e, SEGMENT_NAMES, tag, out);
  }
}

const TENSOR_NAMES: FieldNames = {
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
};
function readTensor(c: Ctx, depth: number, out: TensorProto): void {
  const r = c.r;
  let tag = 0;
  let floats: Chunks<Float32Array> | undefined;
  let int32s: Chunks<Int32Array> | undefined;
  let int64s: Chunks<BigInt64Array> | undefined;
  let doubles: Chunks<Float64Array> | undefined;
  let uint64s: Chunks<BigUint64Array> | undefined;
  try {
    while (r.pos < r.end) {
      tag = 0;
      tag = r.readTag();
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
          out.segment = msg(c, depth, readSegment, out.segment ?? { begin: 0, end: 0 });
          break;
        case k(4, L):
          (floats ??= new Chunks(Float32Array)).block(r.readPackedFloat());
          break;
        case k(4, I32):
          (floats ??= new Chunks(Float32Array)).one(r.readFloat());
          break;
        case k(5, L):
          (int32s ??= new Chunks(Int32Array)).block(r.readPackedInt32());
          break;
        case k(5, V):
          (int32s ??= new Chunks(Int32Array)).one(r.readInt32());
          break;
        case k(6, L):
          (out.stringData ??= []).push(r.readBytes());
          break;
        case k(7, L):
          (int64s ??= new Chunks(BigInt64Array)).block(r.readPackedInt64());
          break;
        case k(7, V):
          (int64s ??= new Chunks(BigInt64Array)).one(r.readInt64());
          break;
        case k(8, L):
          out.name = r.readString();
          break;
        case k(9, L):
          out.rawData = r.readBytes();
          break;
        case k(10, L):
          (doubles ??= new Chunks(Float64Array)).block(r.readPackedDouble());
          break;
        case k(10, I64):
          (doubles ??= new Chunks(Float64Array)).one(r.readDouble());
          break;
        case k(11, L):
          (uint64s ??= new Chunks(BigUint64Array)).block(r.readPackedUint64());
          break;
        case k(11, V):
          (uint64s ??= new Chunks(BigUint64Array)).one(r.readUint64());
          break;
        case k(12, L):
          out.docString = r.readString();
          break;
        case k(13, L):
          (out.externalData ??= []).push(msg(c, depth, readEntry, newEntry()));
          break;
        case k(14, V):
          out.dataLocation = r.readInt32();
          break;
        case k(16, L):
          (out.metadataProps ??= []).push(msg(c, depth, readEntry, newEntry()));
          break;
        default:
          unknown(c, tag, out);
      }
    }
  } catch (e) {
    annotate(e, TENSOR_NAMES, tag, out);
  }
  if (floats) setOrDelete(out, 'floatData', floats.result(out.floatData));
  if (int32s) setOrDelete(out, 'int32Data', int32s.result(out.int32Data));
  if (int64s) setOrDelete(out, 'int64Data', int64s.result(out.int64Data));
  if (doubles) setOrDelete(out, 'doubleData', doubles.result(out.doubleData));
  if (uint64s) setOrDelete(out, 'uint64Data', uint64s.result(out.uint64Data));
}
const newTensor = (): TensorProto => ({ dims: [], dataType: 0, name: '' });

function setOrDelete<T, K extends keyof T>(out: T, key: K, value: T[K] | undefined): void {
  if (value === undefined) delete out[key];
  else out[key] = value;
}

const SPARSE_NAMES: FieldNames = { 1: ['values'], 2: ['indices'], 3: ['dims'] };
function readSparse(c: Ctx, depth: number, out: SparseTensorProto): void {
  const r = c.r;
  let tag = 0;
  try {
    while (r.pos < r.end) {
      tag = 0;
      tag = r.readTag();
      if (tag === k(1, L)) out.values = msg(c, depth, readTensor, out.values ?? newTensor());
      else if (tag === k(2, L)) out.indices = msg(c, depth, readTensor, out.indices ?? newTensor());
      else if (tag === k(3, L)) r.readPackedInt64Numbers(out.dims);
      else if (tag === k(3, V)) out.dims.push(r.readInt64Number());
      else unknown(c, tag, out);
    }
  } catch (e) {
    annotate(e, SPARSE_NAMES, tag, out);
  }
}
const newSparse = (): SparseTensorProto => ({ dims: [] });

const DIM_NAMES: FieldNames = { 1: ['dim_value'], 2: ['dim_param'], 3: ['denotation'] };
function readDim(c: Ctx, _depth: number, out: Dimension): void {
  const r = c.r;
  let tag = 0;
  try {
    while (r.pos < r.end) {
      tag = 0;
      tag = r.readTag();
      // dim_value and dim_param are a oneof: the last one read wins.
      if (tag === k(1, V)) {
        out.dimValue = r.readInt64Number();
        delete out.dimParam;
      } else if (tag === k(2, L)) {
        out.dimParam = r.readString();
        delete out.dimValue;
      } else if (tag === k(3, L)) out.denotation = r.readString();
      else unknown(c, tag, out);
    }
  } catch (e) {
    annotate(e, DIM_NAMES, tag, out);
  }
}

const SHAPE_NAMES: FieldNames = { 1: ['dim', 'dim'] };
function readShape(c: Ctx, depth: number, out: TensorShapeProto): void {
  const r = c.r;
  let tag = 0;
  try {
    while (r.pos < r.end) {
      tag = 0;
      tag = r.readTag();
      if (tag === k(1, L)) out.dim.push(msg(c, depth, readDim, {}));
      else unknown(c, tag, out);
    }
  } catch (e) {
    annotate(e, SHAPE_NAMES, tag, out);
  }
}

type TensorTypeValue = NonNullable<TypeProto['tensorType']>;
const TENSOR_TYPE_NAMES: FieldNames = { 1: ['elem_type'], 2: ['shape'] };
function readTensorType(c: Ctx, depth: number, out: TensorTypeValue): void {
  const r = c.r;
  let tag = 0;
  try {
    while (r.pos < r.end) {
      tag = 0;
      tag = r.readTag();
      if (tag === k(1, V)) out.elemType = r.readInt32();
      else if (tag === k(2, L)) out.shape = msg(c, depth, readShape, out.shape ?? { dim: [] });
      else unknown(c, tag, out);
    }
  } catch (e) {
    annotate(e, TENSOR_TYPE_NAMES, tag, out);
  }
}

type ElemTypeValue = { elemType?: TypeProto; unknownFields?: Uint8Array[] };
const ELEM_TYPE_NAMES: FieldNames = { 1: ['elem_type'] };
function readElemType(c: Ctx, depth: number, out: ElemTypeValue): void {
  const r = c.r;
  let tag = 0;
  try {
    while (r.pos < r.end) {
      tag = 0;
      tag = r.readTag();
      if (tag === k(1, L)) out.elemType = msg(c, depth, readType, out.elemType ?? {});
      else unknown(c, tag, out);
    }
  } catch (e) {
    annotate(e, ELEM_TYPE_NAMES, tag, out);
  }
}

type MapTypeValue = NonNullable<TypeProto['mapType']>;
const MAP_TYPE_NAMES: FieldNames = { 1: ['key_type'], 2: ['value_type'] };
function readMapType(c: Ctx, depth: number, out: MapTypeValue): void {
  const r = c.r;
  let tag = 0;
  try {
    while (r.pos < r.end) {
      tag = 0;
      tag = r.readTag();
      if (tag === k(1, V)) out.keyType = r.readInt32();
      else if (tag === k(2, L)) out.valueType = msg(c, depth, readType, out.valueType ?? {});
      else unknown(c, tag, out);
    }
  } catch (e) {
    annotate(e, MAP_TYPE_NAMES, tag, out);
  }
}

type OpaqueTypeValue = NonNullable<TypeProto['opaqueType']>;
const OPAQUE_TYPE_NAMES: FieldNames = { 1: ['domain'], 2: ['name'] };
function readOpaqueType(c: Ctx, _depth: number, out: OpaqueTypeValue): void {
  const r = c.r;
  let tag = 0;
  try {
    while (r.pos < r.end) {
      tag = 0;
      tag = r.readTag();
      if (tag === k(1, L)) out.domain = r.readString();
      else if (tag === k(2, L)) out.name = r.readString();
      else unknown(c, tag, out);
    }
  } catch (e) {
    annotate(e, OPAQUE_TYPE_NAMES, tag, out);
  }
}

const TYPE_VALUE_KEYS = ['tensorType', 'sequenceType', 'mapType', 'optionalType', 'sparseTensorType', 'opaqueType'] as const;

/** TypeProto.value is a oneof: setting one member clears the others. */
function keepOnly(out: TypeProto, key: (typeof TYPE_VALUE_KEYS)[number]): void {
  for (const other of TYPE_VALUE_KEYS) if (other !== key && out[other] !== undefined) delete out[other];
}

const TYPE_NAMES: FieldNames = {
  1: ['tensor_type'],
  4: ['sequence_type'],
  5: ['map_type'],
  6: ['denotation'],
  7: ['opaque_type'],
  8: ['sparse_tensor_type'],
  9: ['optional_type'],
};
function readType(c: Ctx, depth: number, out: TypeProto): void {
  const r = c.r;
  let tag = 0;
  try {
    while (r.pos < r.end) {
      tag = 0;
      tag = r.readTag();
      switch (tag) {
        case k(1, L):
          keepOnly(out, 'tensorType');
          out.tensorType = msg(c, depth, readTensorType, out.tensorType ?? { elemType: 0 });
          break;
        case k(4, L):
          keepOnly(out, 'sequenceType');
          out.sequenceType = msg(c, depth, readElemType, out.sequenceType ?? {});
          break;
        case k(5, L):
          keepOnly(out, 'mapType');
          out.mapType = msg(c, depth, readMapType, out.mapType ?? { keyType: 0 });
          break;
        case k(6, L):
          out.denotation = r.readString();
          break;
        case k(7, L):
          keepOnly(out, 'opaqueType');
          out.opaqueType = msg(c, depth, readOpaqueType, out.opaqueType ?? { domain: '', name: '' });
          break;
        case k(8, L):
          keepOnly(out, 'sparseTensorType');
          out.sparseTensorType = msg(c, depth, readTensorType, out.sparseTensorType ?? { elemType: 0 });
          break;
        case k(9, L):
          keepOnly(out, 'optionalType');
          out.optionalType = msg(c, depth, readElemType, out.optionalType ?? {});
          break;
        default:
          unknown(c, tag, out);
      }
    }
  } catch (e) {
    annotate(e, TYPE_NAMES, tag, out);
  }
}

const VALUE_INFO_NAMES: FieldNames = {
  1: ['name'],
  2: ['type'],
  3: ['doc_string'],
  4: ['metadata_props', 'metadataProps'],
};
function readValueInfo(c: Ctx, depth: number, out: ValueInfoProto): void {
  const r = c.r;
  let tag = 0;
  try {
    while (r.pos < r.end) {
      tag = 0;
      tag = r.readTag();
      if (tag === k(1, L)) out.name = r.readString();
      else if (tag === k(2, L)) out.type = msg(c, depth, readType, out.type ?? {});
      else if (tag === k(3, L)) out.docString = r.readString();
      else if (tag === k(4, L)) (out.metadataProps ??= []).push(msg(c, depth, readEntry, newEntry()));
      else unknown(c, tag, out);
    }
  } catch (e) {
    annotate(e, VALUE_INFO_NAMES, tag, out);
  }
}
const newValueInfo = (): ValueInfoProto => ({ name: '' });

const ATTRIBUTE_NAMES: FieldNames = {
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
};
function readAttribute(c: Ctx, depth: number, out: AttributeProto): void {
  const r = c.r;
  let tag = 0;
  try {
    while (r.pos < r.end) {
      tag = 0;
      tag = r.readTag();
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
          out.t = msg(c, depth, readTensor, out.t ?? newTensor());
          break;
        case k(6, L):
          out.g = msg(c, depth, readGraph, out.g ?? newGraph());
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
          (out.tensors ??= []).push(msg(c, depth, readTensor, newTensor()));
          break;
        case k(11, L):
          (out.graphs ??= []).push(msg(c, depth, readGraph, newGraph()));
          break;
        case k(13, L):
          out.docString = r.readString();
          break;
        case k(14, L):
          out.tp = msg(c, depth, readType, out.tp ?? {});
          break;
        case k(15, L):
          (out.typeProtos ??= []).push(msg(c, depth, readType, {}));
          break;
        case k(20, V):
          out.type = r.readInt32();
          break;
        case k(21, L):
          out.refAttrName = r.readString();
          break;
        case k(22, L):
          out.sparseTensor = msg(c, depth, readSparse, out.sparseTensor ?? newSparse());
          break;
        case k(23, L):
          (out.sparseTensors ??= []).push(msg(c, depth, readSparse, newSparse()));
          break;
        default:
          unknown(c, tag, out);
      }
    }
  } catch (e) {
    annotate(e, ATTRIBUTE_NAMES, tag, out);
  }
  // An empty packed block leaves an empty list; absent and empty are the same on the wire.
  if (out.floats?.length === 0) delete out.floats;
  if (out.ints?.length === 0) delete out.ints;
}

const NODE_NAMES: FieldNames = {
  1: ['input'],
  2: ['output'],
  3: ['name'],
  4: ['op_type'],
  5: ['attribute', 'attribute'],
  6: ['doc_string'],
  7: ['domain'],
  8: ['overload'],
  9: ['metadata_props', 'metadataProps'],
};
function readNode(c: Ctx, depth: number, out: NodeProto): void {
  const r = c.r;
  let tag = 0;
  try {
    while (r.pos < r.end) {
      tag = 0;
      tag = r.readTag();
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
          out.attribute.push(msg(c, depth, readAttribute, { name: '', type: 0 }));
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
          (out.metadataProps ??= []).push(msg(c, depth, readEntry, newEntry()));
          break;
        default:
          unknown(c, tag, out);
      }
    }
  } catch (e) {
    annotate(e, NODE_NAMES, tag, out);
  }
}
const newNode = (): NodeProto => ({ input: [], output: [], name: '', opType: '', domain: '', attribute: [] });

const ANNOTATION_NAMES: FieldNames = {
  1: ['tensor_name'],
  2: ['quant_parameter_tensor_names', 'quantParameterTensorNames'],
};
function readAnnotation(c: Ctx, depth: number, out: TensorAnnotation): void {
  const r = c.r;
  let tag = 0;
  try {
    while (r.pos < r.end) {
      tag = 0;
      tag = r.readTag();
      if (tag === k(1, L)) out.tensorName = r.readString();
      else if (tag === k(2, L)) out.quantParameterTensorNames.push(msg(c, depth, readEntry, newEntry()));
      else unknown(c, tag, out);
    }
  } catch (e) {
    annotate(e, ANNOTATION_NAMES, tag, out);
  }
}

const GRAPH_NAMES: FieldNames = {
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
};
function readGraph(c: Ctx, depth: number, out: GraphProto): void {
  const r = c.r;
  let tag = 0;
  try {
    while (r.pos < r.end) {
      tag = 0;
      tag = r.readTag();
      switch (tag) {
        case k(1, L):
          out.node.push(msg(c, depth, readNode, newNode()));
          break;
        case k(2, L):
          out.name = r.readString();
          break;
        case k(5, L):
          out.initializer.push(msg(c, depth, readTensor, newTensor()));
          break;
        case k(10, L):
          out.docString = r.readString();
          break;
        case k(11, L):
          out.input.push(msg(c, depth, readValueInfo, newValueInfo()));
          break;
        case k(12, L):
          out.output.push(msg(c, depth, readValueInfo, newValueInfo()));
          break;
        case k(13, L):
          out.valueInfo.push(msg(c, depth, readValueInfo, newValueInfo()));
          break;
        case k(14, L):
          (out.quantizationAnnotation ??= []).push(
            msg(c, depth, readAnnotation, { tensorName: '', quantParameterTensorNames: [] }),
          );
          break;
        case k(15, L):
          (out.sparseInitializer ??= []).push(msg(c, depth, readSparse, newSparse()));
          break;
        case k(16, L):
          (out.metadataProps ??= []).push(msg(c, depth, readEntry, newEntry()));
          break;
        default:
          unknown(c, tag, out);
      }
    }
  } catch (e) {
    annotate(e, GRAPH_NAMES, tag, out);
  }
}
const newGraph = (): GraphProto => ({ node: [], name: '', initializer: [], input: [], output: [], valueInfo: [] });

const TRAINING_NAMES: FieldNames = {
  1: ['initialization'],
  2: ['algorithm'],
  3: ['initialization_binding', 'initializationBinding'],
  4: ['update_binding', 'updateBinding'],
};
function readTrainingInfo(c: Ctx, depth: number, out: TrainingInfoProto): void {
  const r = c.r;
  let tag = 0;
  try {
    while (r.pos < r.end) {
      tag = 0;
      tag = r.readTag();
      if (tag === k(1, L)) out.initialization = msg(c, depth, readGraph, out.initialization ?? newGraph());
      else if (tag === k(2, L)) out.algorithm = msg(c, depth, readGraph, out.algorithm ?? newGraph());
      else if (tag === k(3, L)) out.initializationBinding.push(msg(c, depth, readEntry, newEntry()));
      else if (tag === k(4, L)) out.updateBinding.push(msg(c, depth, readEntry, newEntry()));
      else unknown(c, tag, out);
    }
  } catch (e) {
    annotate(e, TRAINING_NAMES, tag, out);
  }
}

const FUNCTION_NAMES: FieldNames = {
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
};
function readFunction(c: Ctx, depth: number, out: FunctionProto): void {
  const r = c.r;
  let tag = 0;
  try {
    while (r.pos < r.end) {
      tag = 0;
      tag = r.readTag();
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
          out.node.push(msg(c, depth, readNode, newNode()));
          break;
        case k(8, L):
          out.docString = r.readString();
          break;
        case k(9, L):
          out.opsetImport.push(msg(c, depth, readOpset, newOpset()));
          break;
        case k(10, L):
          out.domain = r.readString();
          break;
        case k(11, L):
          out.attributeProto.push(msg(c, depth, readAttribute, { name: '', type: 0 }));
          break;
        case k(12, L):
          out.valueInfo.push(msg(c, depth, readValueInfo, newValueInfo()));
          break;
        case k(13, L):
          out.overload = r.readString();
          break;
        case k(14, L):
          (out.metadataProps ??= []).push(msg(c, depth, readEntry, newEntry()));
          break;
        default:
          unknown(c, tag, out);
      }
    }
  } catch (e) {
    annotate(e, FUNCTION_NAMES, tag, out);
  }
}

const MODEL_NAMES: FieldNames = {
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
};
function readModel(c: Ctx, depth: number, out: ModelProto): void {
  const r = c.r;
  let tag = 0;
  try {
    while (r.pos < r.end) {
      tag = 0;
      tag = r.readTag();
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
          out.graph = msg(c, depth, readGraph, out.graph ?? newGraph());
          break;
        case k(8, L):
          out.opsetImport.push(msg(c, depth, readOpset, newOpset()));
          break;
        case k(14, L):
          out.metadataProps.push(msg(c, depth, readEntry, newEntry()));
          break;
        case k(20, L):
          (out.trainingInfo ??= []).push(
            msg(c, depth, readTrainingInfo, { initializationBinding: [], updateBinding: [] }),
          );
          break;
        case k(25, L):
          (out.functions ??= []).push(
            msg(c, depth, readFunction, {
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
          unknown(c, tag, out);
      }
    }
  } catch (e) {
    annotate(e, MODEL_NAMES, tag, out);
  }
}

function run<T>(what: string, bytes: Uint8Array, options: DecodeOptions | undefined, read: (c: Ctx, d: number, o: T) => void, out: T): T {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`bytes must be a Uint8Array, got ${typeof bytes}`);
  const maxDepth = options?.maxDepth ?? DEFAULT_MAX_DEPTH;
  if (!Number.isInteger(maxDepth) || maxDepth < 1) {
    throw new RangeError(`maxDepth must be a positive integer, got ${maxDepth}`);
  }
  // A plain view, so decoded byte fields are plain Uint8Arrays even when given a Buffer.
  const view = bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const c: Ctx = { r: new ProtoReader(view), maxDepth };
  try {
    read(c, 0, out);
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
  return run('model', bytes, options, readModel, {
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
  return run('graph', bytes, options, readGraph, newGraph());
}

/** Decodes a serialized TensorProto (see {@link decodeModel}). */
export function decodeTensor(bytes: Uint8Array, options?: DecodeOptions): TensorProto {
  return run('tensor', bytes, options, readTensor, newTensor());
}
