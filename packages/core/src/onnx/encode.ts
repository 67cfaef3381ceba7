import { ProtoWriter } from '../proto/writer.js';
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

/*
 * Encoding rules, chosen so that decode(encode(m)) equals m and encode(decode(b)) === b for our files:
 * fields are written in field-number order, then the message's unknown fields as they were read;
 * a property typed as required (`name: string`) is skipped when it holds the proto3 default
 * ('' / 0 / empty list); a property typed optional (`f?: number`) is written whenever it is
 * defined, so presence survives (an INT attribute with i = 0, a dimension of size 0); repeated
 * numbers are packed.
 */

/** An encoding failure on its way up, collecting the message path. */
class EncodeFailure {
  readonly path: string[] = [];
  constructor(readonly error: Error) {}
}

function sub<T>(
  w: ProtoWriter,
  field: number,
  seg: string,
  write: (w: ProtoWriter, v: T) => void,
  v: T,
  expectedLength = 0,
): void {
  w.fork(field, expectedLength);
  try {
    write(w, v);
  } catch (e) {
    const f = e instanceof EncodeFailure ? e : new EncodeFailure(e instanceof Error ? e : new Error(String(e)));
    f.path.push(seg);
    throw f;
  }
  w.ldelim();
}

function subs<T>(
  w: ProtoWriter,
  field: number,
  name: string,
  write: (w: ProtoWriter, v: T) => void,
  list: readonly T[] | undefined,
): void {
  if (list === undefined) return;
  for (let i = 0; i < list.length; i++) sub(w, field, `${name}[${i}]`, write, list[i], sizeGuess(list[i]));
}

/** Tensor data bytes inside a tensor or graph message, so big messages need not be moved once written. */
function sizeGuess(v: unknown): number {
  if (v === null || typeof v !== 'object') return 0;
  if ('dataType' in v) return tensorBytes(v as TensorProto);
  if ('initializer' in v && 'node' in v) return dataBytes(v as GraphProto);
  return 0;
}

function tensorBytes(t: TensorProto): number {
  return (
    (t.rawData?.length ?? 0) +
    (t.floatData?.byteLength ?? 0) +
    (t.doubleData?.byteLength ?? 0) +
    (t.int32Data?.byteLength ?? 0) +
    (t.int64Data?.byteLength ?? 0) +
    (t.uint64Data?.byteLength ?? 0)
  );
}

function strings(w: ProtoWriter, field: number, list: readonly string[] | undefined): void {
  if (list === undefined) return;
  for (const s of list) w.string(field, s);
}

function unknownFields(w: ProtoWriter, m: { unknownFields?: Uint8Array[] }): void {
  if (m.unknownFields === undefined) return;
  for (const raw of m.unknownFields) w.raw(raw);
}

function writeEntry(w: ProtoWriter, e: StringStringEntry): void {
  if (e.key) w.string(1, e.key);
  if (e.value) w.string(2, e.value);
  unknownFields(w, e);
}

function writeOpset(w: ProtoWriter, o: OperatorSetId): void {
  if (o.domain) w.string(1, o.domain);
  if (o.version) w.int64(2, o.version);
  unknownFields(w, o);
}

function writeSegment(w: ProtoWriter, s: TensorSegment): void {
  if (s.begin) w.int64(1, s.begin);
  if (s.end) w.int64(2, s.end);
  unknownFields(w, s);
}

function writeTensor(w: ProtoWriter, t: TensorProto): void {
  w.packedVarint(1, t.dims);
  if (t.dataType) w.int32(2, t.dataType);
  if (t.segment !== undefined) sub(w, 3, 'segment', writeSegment, t.segment);
  if (t.floatData !== undefined) w.packedFloat(4, t.floatData);
  if (t.int32Data !== undefined) w.packedVarint(5, t.int32Data);
  if (t.stringData !== undefined) for (const s of t.stringData) w.bytes(6, s);
  if (t.int64Data !== undefined) w.packedVarint(7, t.int64Data);
  if (t.name) w.string(8, t.name);
  if (t.rawData !== undefined) w.bytes(9, t.rawData);
  if (t.doubleData !== undefined) w.packedDouble(10, t.doubleData);
  if (t.uint64Data !== undefined) w.packedVarint(11, t.uint64Data);
  if (t.docString !== undefined) w.string(12, t.docString);
  subs(w, 13, 'external_data', writeEntry, t.externalData);
  if (t.dataLocation !== undefined) w.int32(14, t.dataLocation);
  subs(w, 16, 'metadata_props', writeEntry, t.metadataProps);
  unknownFields(w, t);
}

function writeSparse(w: ProtoWriter, s: SparseTensorProto): void {
  if (s.values !== undefined) sub(w, 1, 'values', writeTensor, s.values);
  if (s.indices !== undefined) sub(w, 2, 'indices', writeTensor, s.indices);
  w.packedVarint(3, s.dims);
  unknownFields(w, s);
}

function writeDim(w: ProtoWriter, d: Dimension): void {
  if (d.dimValue !== undefined && d.dimParam !== undefined) {
    throw new TypeError(`a dimension has both dimValue (${d.dimValue}) and dimParam ('${d.dimParam}'); they are a oneof`);
  }
  if (d.dimValue !== undefined) w.int64(1, d.dimValue);
  if (d.dimParam !== undefined) w.string(2, d.dimParam);
  if (d.denotation !== undefined) w.string(3, d.denotation);
  unknownFields(w, d);
}

function writeShape(w: ProtoWriter, s: TensorShapeProto): void {
  subs(w, 1, 'dim', writeDim, s.dim);
  unknownFields(w, s);
}

function writeTensorType(w: ProtoWriter, t: NonNullable<TypeProto['tensorType']>): void {
  if (t.elemType) w.int32(1, t.elemType);
  if (t.shape !== undefined) sub(w, 2, 'shape', writeShape, t.shape);
  unknownFields(w, t);
}

function writeElemType(w: ProtoWriter, t: { elemType?: TypeProto; unknownFields?: Uint8Array[] }): void {
  if (t.elemType !== undefined) sub(w, 1, 'elem_type', writeType, t.elemType);
  unknownFields(w, t);
}

function writeMapType(w: ProtoWriter, t: NonNullable<TypeProto['mapType']>): void {
  if (t.keyType) w.int32(1, t.keyType);
  if (t.valueType !== undefined) sub(w, 2, 'value_type', writeType, t.valueType);
  unknownFields(w, t);
}

function writeOpaqueType(w: ProtoWriter, t: NonNullable<TypeProto['opaqueType']>): void {
  if (t.domain) w.string(1, t.domain);
  if (t.name) w.string(2, t.name);
  unknownFields(w, t);
}

function writeType(w: ProtoWriter, t: TypeProto): void {
  const set = [t.tensorType, t.sequenceType, t.mapType, t.opaqueType, t.sparseTensorType, t.optionalType];
  if (set.filter((v) => v !== undefined).length > 1) {
    throw new TypeError('a TypeProto sets more than one of tensorType, sequenceType, mapType, ...; they are a oneof');
  }
  if (t.tensorType !== undefined) sub(w, 1, 'tensor_type', writeTensorType, t.tensorType);
  if (t.sequenceType !== undefined) sub(w, 4, 'sequence_type', writeElemType, t.sequenceType);
  if (t.mapType !== undefined) sub(w, 5, 'map_type', writeMapType, t.mapType);
  if (t.denotation !== undefined) w.string(6, t.denotation);
  if (t.opaqueType !== undefined) sub(w, 7, 'opaque_type', writeOpaqueType, t.opaqueType);
  if (t.sparseTensorType !== undefined) sub(w, 8, 'sparse_tensor_type', writeTensorType, t.sparseTensorType);
  if (t.optionalType !== undefined) sub(w, 9, 'optional_type', writeElemType, t.optionalType);
  unknownFields(w, t);
}

function writeValueInfo(w: ProtoWriter, v: ValueInfoProto): void {
  if (v.name) w.string(1, v.name);
  if (v.type !== undefined) sub(w, 2, 'type', writeType, v.type);
  if (v.docString !== undefined) w.string(3, v.docString);
  subs(w, 4, 'metadata_props', writeEntry, v.metadataProps);
  unknownFields(w, v);
}

function writeAttribute(w: ProtoWriter, a: AttributeProto): void {
  if (a.name) w.string(1, a.name);
  if (a.f !== undefined) w.float(2, a.f);
  if (a.i !== undefined) w.int64(3, a.i);
  if (a.s !== undefined) w.bytes(4, a.s);
  if (a.t !== undefined) sub(w, 5, 't', writeTensor, a.t, tensorBytes(a.t));
  if (a.g !== undefined) sub(w, 6, 'g', writeGraph, a.g, dataBytes(a.g));
  if (a.floats !== undefined) w.packedFloat(7, a.floats);
  if (a.ints !== undefined) w.packedVarint(8, a.ints);
  if (a.strings !== undefined) for (const s of a.strings) w.bytes(9, s);
  subs(w, 10, 'tensors', writeTensor, a.tensors);
  subs(w, 11, 'graphs', writeGraph, a.graphs);
  if (a.docString !== undefined) w.string(13, a.docString);
  if (a.tp !== undefined) sub(w, 14, 'tp', writeType, a.tp);
  subs(w, 15, 'type_protos', writeType, a.typeProtos);
  if (a.type) w.int32(20, a.type);
  if (a.refAttrName !== undefined) w.string(21, a.refAttrName);
  if (a.sparseTensor !== undefined) sub(w, 22, 'sparse_tensor', writeSparse, a.sparseTensor);
  subs(w, 23, 'sparse_tensors', writeSparse, a.sparseTensors);
  unknownFields(w, a);
}

function writeNode(w: ProtoWriter, n: NodeProto): void {
  strings(w, 1, n.input);
  strings(w, 2, n.output);
  if (n.name) w.string(3, n.name);
  if (n.opType) w.string(4, n.opType);
  subs(w, 5, 'attribute', writeAttribute, n.attribute);
  if (n.docString !== undefined) w.string(6, n.docString);
  if (n.domain) w.string(7, n.domain);
  if (n.overload !== undefined) w.string(8, n.overload);
  subs(w, 9, 'metadata_props', writeEntry, n.metadataProps);
  unknownFields(w, n);
}

function writeAnnotation(w: ProtoWriter, a: TensorAnnotation): void {
  if (a.tensorName) w.string(1, a.tensorName);
  subs(w, 2, 'quant_parameter_tensor_names', writeEntry, a.quantParameterTensorNames);
  unknownFields(w, a);
}

function writeGraph(w: ProtoWriter, g: GraphProto): void {
  subs(w, 1, 'node', writeNode, g.node);
  if (g.name) w.string(2, g.name);
  subs(w, 5, 'initializer', writeTensor, g.initializer);
  if (g.docString !== undefined) w.string(10, g.docString);
  subs(w, 11, 'input', writeValueInfo, g.input);
  subs(w, 12, 'output', writeValueInfo, g.output);
  subs(w, 13, 'value_info', writeValueInfo, g.valueInfo);
  subs(w, 14, 'quantization_annotation', writeAnnotation, g.quantizationAnnotation);
  subs(w, 15, 'sparse_initializer', writeSparse, g.sparseInitializer);
  subs(w, 16, 'metadata_props', writeEntry, g.metadataProps);
  unknownFields(w, g);
}

function writeTrainingInfo(w: ProtoWriter, t: TrainingInfoProto): void {
  if (t.initialization !== undefined) sub(w, 1, 'initialization', writeGraph, t.initialization);
  if (t.algorithm !== undefined) sub(w, 2, 'algorithm', writeGraph, t.algorithm);
  subs(w, 3, 'initialization_binding', writeEntry, t.initializationBinding);
  subs(w, 4, 'update_binding', writeEntry, t.updateBinding);
  unknownFields(w, t);
}

function writeFunction(w: ProtoWriter, f: FunctionProto): void {
  if (f.name) w.string(1, f.name);
  strings(w, 4, f.input);
  strings(w, 5, f.output);
  strings(w, 6, f.attribute);
  subs(w, 7, 'node', writeNode, f.node);
  if (f.docString !== undefined) w.string(8, f.docString);
  subs(w, 9, 'opset_import', writeOpset, f.opsetImport);
  if (f.domain) w.string(10, f.domain);
  subs(w, 11, 'attribute_proto', writeAttribute, f.attributeProto);
  subs(w, 12, 'value_info', writeValueInfo, f.valueInfo);
  if (f.overload !== undefined) w.string(13, f.overload);
  subs(w, 14, 'metadata_props', writeEntry, f.metadataProps);
  unknownFields(w, f);
}

function writeModel(w: ProtoWriter, m: ModelProto): void {
  if (m.irVersion) w.int64(1, m.irVersion);
  if (m.producerName) w.string(2, m.producerName);
  if (m.producerVersion) w.string(3, m.producerVersion);
  if (m.domain) w.string(4, m.domain);
  if (m.modelVersion) w.int64(5, m.modelVersion);
  if (m.docString) w.string(6, m.docString);
  if (m.graph !== undefined) sub(w, 7, 'graph', writeGraph, m.graph, dataBytes(m.graph));
  subs(w, 8, 'opset_import', writeOpset, m.opsetImport);
  subs(w, 14, 'metadata_props', writeEntry, m.metadataProps);
  subs(w, 20, 'training_info', writeTrainingInfo, m.trainingInfo);
  subs(w, 25, 'functions', writeFunction, m.functions);
  unknownFields(w, m);
}

/** Bytes of tensor data in a graph's initializers. */
function dataBytes(g: GraphProto | undefined): number {
  let n = 0;
  if (g === undefined) return n;
  for (const t of g.initializer) n += tensorBytes(t);
  return n;
}

/** A starting size for the output buffer: the weights plus a generous allowance per node. */
function capacityFor(g: GraphProto | undefined): number {
  return dataBytes(g) + 256 * (g?.node.length ?? 0) + 4096;
}

function run<T>(what: string, v: T, write: (w: ProtoWriter, v: T) => void, capacity: number): Uint8Array {
  if (v === null || typeof v !== 'object') throw new TypeError(`${what} must be an object, got ${v === null ? 'null' : typeof v}`);
  const w = new ProtoWriter(capacity);
  try {
    write(w, v);
  } catch (e) {
    let f: EncodeFailure;
    if (e instanceof EncodeFailure) f = e;
    else if (e instanceof TypeError || e instanceof RangeError) f = new EncodeFailure(e);
    else throw e;
    const segments = [what, ...f.path.reverse()];
    // A path through thousands of nested graphs would drown the message.
    if (segments.length > 24) segments.splice(12, segments.length - 22, '…');
    const where = segments.join('.');
    const Ctor = f.error instanceof RangeError ? RangeError : TypeError;
    throw new Ctor(`${where}: ${f.error.message}`, { cause: f.error });
  }
  return w.finish();
}

/**
 * Serializes an ONNX ModelProto. Values that do not fit their field (an unsafe integer, a dimension
 * with both a value and a name) throw TypeError / RangeError naming the path, e.g.
 * `model.graph.initializer[3]: ...`.
 * @example await writeFile('model.onnx', encodeModel(makeModel({ graph, opset: 13 })));
 */
export function encodeModel(model: ModelProto): Uint8Array {
  return run('model', model, writeModel, capacityFor(model?.graph));
}

/** Serializes a GraphProto (see {@link encodeModel}). */
export function encodeGraph(graph: GraphProto): Uint8Array {
  return run('graph', graph, writeGraph, capacityFor(graph));
}

/** Serializes a TensorProto (see {@link encodeModel}). */
export function encodeTensor(tensor: TensorProto): Uint8Array {
  return run('tensor', tensor, writeTensor, (tensor ? tensorBytes(tensor) : 0) + 256);
}
