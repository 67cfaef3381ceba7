// @kd-edge/core/onnx: ONNX model I/O: a hand-written protobuf codec from onnx.proto3 field numbers, graph helpers, inspection.
// Also re-exported by the package root; import this path to load only what it needs.

// ONNX model I/O (hand-written protobuf codec from onnx.proto3 field numbers)
export type * from './types.js';
export { DataType, AttributeType } from './types.js';
export { decodeModel, decodeGraph, decodeTensor } from './decode.js';
export type { DecodeOptions } from './decode.js';
export { encodeModel, encodeGraph, encodeTensor } from './encode.js';
export { readOnnxFile, writeOnnxFile, findExternalData } from './model-file.js';
export type { ReadOnnxOptions, ExternalDataRef } from './model-file.js';
export { inspectModel, formatInspection } from './inspect.js';
export type { OnnxInspection, OnnxIoInfo } from './inspect.js';
export {
  tensorValues, tensorToFloat32, tensorElementCount, tensorByteSize, makeTensor, hasExternalData, externalDataLocation,
} from './tensor.js';
export type { TensorValues, TensorInput } from './tensor.js';
export { float32ToFloat16Bits, float16BitsToFloat32, float32ToBfloat16Bits, bfloat16BitsToFloat32 } from './float16.js';
export { dataTypeName, dataTypeByteSize, isFloatDataType } from './data-type.js';
export {
  makeAttribute, makeNode, makeValueInfo, makeModel, irVersionForOpset, initializerMap, getAttr, attrInt, attrInts, attrFloat,
  attrFloats, attrString, attrStrings, attrTensor, attrGraph,
} from './graph-utils.js';
export type { AttrValue, MakeModelOptions } from './graph-utils.js';
export { OnnxError } from './onnx-error.js';
export type { OnnxErrorCode } from './onnx-error.js';
export { walkModel } from './walk.js';
export type { WalkVisitor, TensorRole } from './walk.js';
export { ProtoReader } from '../proto/reader.js';
export { ProtoWriter } from '../proto/writer.js';
export { WireType, fieldTag } from '../proto/wire-type.js';
export type { WireTypeValue } from '../proto/wire-type.js';
export { ProtoDecodeError } from '../proto/proto-error.js';
