/**
 * ONNX messages as plain objects (onnx/onnx `onnx/onnx.proto3`, IR 10; field numbers in comments).
 * Names are the proto names in camelCase. Absent proto3 scalars read as their defaults ('' / 0);
 * optional sub-messages read as undefined. int64 values that are sizes or versions are numbers (the
 * decoder refuses values past 2^53); int64 attribute values and int64 tensor data stay bigint so
 * values such as INT64_MAX survive a round trip. Fields this file does not model are kept as raw
 * bytes in `unknownFields` and written back unchanged.
 */

/** Raw wire bytes of fields the schema does not model (each entry is one whole field: key + payload). */
export interface UnknownFields {
  unknownFields?: Uint8Array[];
}

/** TensorProto.DataType. */
export const DataType = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
} as const;

/** A TensorProto.DataType value. */
export type DataTypeValue = (typeof DataType)[keyof typeof DataType] | number;

/** AttributeProto.AttributeType. */
export const AttributeType = {
  UNDEFINED: 0,
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  SPARSE_TENSOR: 11,
  TYPE_PROTO: 13,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
  SPARSE_TENSORS: 12,
  TYPE_PROTOS: 14,
} as const;

/** StringStringEntryProto: key = 1, value = 2. */
export interface StringStringEntry extends UnknownFields {
  key: string;
  value: string;
}

/** OperatorSetIdProto: domain = 1 ('' is ai.onnx), version = 2. */
export interface OperatorSetId extends UnknownFields {
  domain: string;
  version: number;
}

/** TensorProto.Segment: begin = 1, end = 2. */
export interface TensorSegment extends UnknownFields {
  begin: number;
  end: number;
}

/**
 * TensorProto: dims = 1, data_type = 2, segment = 3, float_data = 4, int32_data = 5, string_data = 6,
 * int64_data = 7, name = 8, raw_data = 9, double_data = 10, uint64_data = 11, doc_string = 12,
 * external_data = 13, data_location = 14, metadata_props = 16.
 * Exactly one storage field holds the values; `rawData` is fixed-width little-endian.
 */
export interface TensorProto extends UnknownFields {
  dims: number[];
  dataType: DataTypeValue;
  name: string;
  docString?: string;
  segment?: TensorSegment;
  rawData?: Uint8Array;
  floatData?: Float32Array;
  /** int32, and int8/uint8/int16/uint16/bool/float16/bfloat16 widened (float16 as its bits). */
  int32Data?: Int32Array;
  stringData?: Uint8Array[];
  int64Data?: BigInt64Array;
  doubleData?: Float64Array;
  /** uint32 and uint64 values. */
  uint64Data?: BigUint64Array;
  externalData?: StringStringEntry[];
  /** 0 DEFAULT (inline), 1 EXTERNAL. */
  dataLocation?: number;
  metadataProps?: StringStringEntry[];
}

/** SparseTensorProto: values = 1, indices = 2, dims = 3. */
export interface SparseTensorProto extends UnknownFields {
  values?: TensorProto;
  indices?: TensorProto;
  dims: number[];
}

/** TensorShapeProto.Dimension: dim_value = 1 or dim_param = 2, denotation = 3. */
export interface Dimension extends UnknownFields {
  dimValue?: number;
  dimParam?: string;
  denotation?: string;
}

/** TensorShapeProto: dim = 1. */
export interface TensorShapeProto extends UnknownFields {
  dim: Dimension[];
}

/**
 * TypeProto: tensor_type = 1, sequence_type = 4, map_type = 5, denotation = 6, opaque_type = 7,
 * sparse_tensor_type = 8, optional_type = 9. One of the *Type fields is set.
 */
export interface TypeProto extends UnknownFields {
  /** TypeProto.Tensor: elem_type = 1, shape = 2 (absent shape means unknown rank). */
  tensorType?: { elemType: DataTypeValue; shape?: TensorShapeProto } & UnknownFields;
  /** TypeProto.Sequence: elem_type = 1. */
  sequenceType?: { elemType?: TypeProto } & UnknownFields;
  /** TypeProto.Map: key_type = 1, value_type = 2. */
  mapType?: { keyType: DataTypeValue; valueType?: TypeProto } & UnknownFields;
  /** TypeProto.Optional: elem_type = 1. */
  optionalType?: { elemType?: TypeProto } & UnknownFields;
  /** TypeProto.SparseTensor: elem_type = 1, shape = 2. */
  sparseTensorType?: { elemType: DataTypeValue; shape?: TensorShapeProto } & UnknownFields;
  /** TypeProto.Opaque: domain = 1, name = 2. */
  opaqueType?: { domain: string; name: string } & UnknownFields;
  denotation?: string;
}

/** ValueInfoProto: name = 1, type = 2, doc_string = 3, metadata_props = 4. */
export interface ValueInfoProto extends UnknownFields {
  name: string;
  type?: TypeProto;
  docString?: string;
  metadataProps?: StringStringEntry[];
}

/**
 * AttributeProto: name = 1, f = 2, i = 3, s = 4, t = 5, g = 6, floats = 7, ints = 8, strings = 9,
 * tensors = 10, graphs = 11, doc_string = 13, tp = 14, type_protos = 15, type = 20,
 * ref_attr_name = 21, sparse_tensor = 22, sparse_tensors = 23.
 */
export interface AttributeProto extends UnknownFields {
  name: string;
  /** AttributeType value (required by ONNX). */
  type: number;
  refAttrName?: string;
  docString?: string;
  f?: number;
  i?: bigint;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  sparseTensor?: SparseTensorProto;
  tp?: TypeProto;
  floats?: number[];
  ints?: bigint[];
  strings?: Uint8Array[];
  tensors?: TensorProto[];
  graphs?: GraphProto[];
  sparseTensors?: SparseTensorProto[];
  typeProtos?: TypeProto[];
}

/**
 * NodeProto: input = 1, output = 2, name = 3, op_type = 4, attribute = 5, doc_string = 6, domain = 7,
 * overload = 8, metadata_props = 9.
 */
export interface NodeProto extends UnknownFields {
  input: string[];
  output: string[];
  name: string;
  opType: string;
  domain: string;
  overload?: string;
  attribute: AttributeProto[];
  docString?: string;
  metadataProps?: StringStringEntry[];
}

/** TensorAnnotation: tensor_name = 1, quant_parameter_tensor_names = 2. */
export interface TensorAnnotation extends UnknownFields {
  tensorName: string;
  quantParameterTensorNames: StringStringEntry[];
}

/**
 * GraphProto: node = 1, name = 2, initializer = 5, doc_string = 10, input = 11, output = 12,
 * value_info = 13, quantization_annotation = 14, sparse_initializer = 15, metadata_props = 16.
 */
export interface GraphProto extends UnknownFields {
  node: NodeProto[];
  name: string;
  initializer: TensorProto[];
  sparseInitializer?: SparseTensorProto[];
  docString?: string;
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  valueInfo: ValueInfoProto[];
  quantizationAnnotation?: TensorAnnotation[];
  metadataProps?: StringStringEntry[];
}

/**
 * TrainingInfoProto: initialization = 1, algorithm = 2, initialization_binding = 3,
 * update_binding = 4.
 */
export interface TrainingInfoProto extends UnknownFields {
  initialization?: GraphProto;
  algorithm?: GraphProto;
  initializationBinding: StringStringEntry[];
  updateBinding: StringStringEntry[];
}

/**
 * FunctionProto: name = 1, input = 4, output = 5, attribute = 6, node = 7, doc_string = 8,
 * opset_import = 9, domain = 10, attribute_proto = 11, value_info = 12, overload = 13,
 * metadata_props = 14.
 */
export interface FunctionProto extends UnknownFields {
  name: string;
  input: string[];
  output: string[];
  attribute: string[];
  attributeProto: AttributeProto[];
  node: NodeProto[];
  docString?: string;
  opsetImport: OperatorSetId[];
  domain: string;
  overload?: string;
  valueInfo: ValueInfoProto[];
  metadataProps?: StringStringEntry[];
}

/**
 * ModelProto: ir_version = 1, producer_name = 2, producer_version = 3, domain = 4, model_version = 5,
 * doc_string = 6, graph = 7, opset_import = 8, metadata_props = 14, training_info = 20,
 * functions = 25.
 */
export interface ModelProto extends UnknownFields {
  irVersion: number;
  opsetImport: OperatorSetId[];
  producerName: string;
  producerVersion: string;
  domain: string;
  modelVersion: number;
  docString: string;
  graph?: GraphProto;
  metadataProps: StringStringEntry[];
  trainingInfo?: TrainingInfoProto[];
  functions?: FunctionProto[];
}
