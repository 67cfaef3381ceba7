// Errors
export { KdEdgeError, ConfigError } from './errors.js';

// The levelled logger library parts take
export { silentLogger } from './util/logger.js';
export type { Logger } from './util/logger.js';

// Seeded randomness (model initialisation, test data)
export { seededRandom } from './util/seeded-random.js';

// Durable file replacement (temporary sibling, fsync, rename, fsync of the folder)
export { writeFileDurable, fsyncDir, fsyncTree, tempSibling, TMP_TAG } from './util/durable-write.js';

// Detection maths: boxes, letterbox geometry, YOLOv5 decode, NMS, COCO mAP
export type { BoxXYXY, Detection, Annotation } from './detect/types.js';
export { xywhToXyxy, xyxyToXywh, boxArea, boxIou } from './detect/box.js';
export { letterbox, scaleBoxes } from './detect/letterbox.js';
export type { LetterboxOptions, LetterboxGeometry } from './detect/letterbox.js';
export { decodeYoloOutputs, decodedRowCount } from './detect/decode.js';
export type { YoloHeadLevel } from './detect/decode.js';
export { nonMaxSuppression, nmsBoxes } from './detect/nms.js';
export type { NmsOptions } from './detect/nms.js';
export { evaluateCoco } from './detect/map.js';
export type { EvalImage, CocoEvalOptions, CocoEval, CocoClassResult } from './detect/map.js';
export { precisionRecall } from './detect/precision-recall.js';
export type { PrecisionRecall, ClassPrecisionRecall } from './detect/precision-recall.js';
export { COCO_IOU_THRESHOLDS, COCO_RECALL_THRESHOLDS } from './detect/coco-match.js';

// Model descriptions and planning (shared by the trainer and the ONNX exporter)
export type { LayerSpec, YoloDescription, ClassifierDescription, ModelDescription, ModelWeights } from './model/description.js';
export {
  yoloDescription, parseModelYaml, validateYoloDescription, planYolo, YOLO_SCALES, DEFAULT_ANCHORS, YOLOV5_BACKBONE, YOLOV5_HEAD,
  SUPPORTED_MODULES,
} from './model/yolo-description.js';
export type { YoloScale, ScaleMultipliers, YoloPlan } from './model/yolo-description.js';
export { classifierDescription, planClassifier, CLASSIFY_HIDDEN } from './model/classifier-description.js';
export type { ClassifierDescriptionOptions, ClassifierPlan } from './model/classifier-description.js';
export { planLayers, convParamSpecs, layerParamSpecs, countTrainable, makeDivisible, pyRound } from './model/plan.js';
export type { LayerPlan, ConvPlan, BottleneckPlan, ParamSpec, ParamInit, PlanOptions } from './model/plan.js';
export { countParams } from './model/param-count.js';
export type { CountParamsOptions } from './model/param-count.js';

// ONNX export of kd-trainer models
export { exportOnnx, EXPORT_OPSETS } from './export/export-onnx.js';
export type { OnnxExportOptions, ExportOpset } from './export/export-onnx.js';
export { pyNamesDict, parsePyNames } from './export/python-repr.js';

// ONNX model I/O (hand-written protobuf codec from onnx.proto3 field numbers)
export type * from './onnx/types.js';
export { DataType, AttributeType } from './onnx/types.js';
export { decodeModel, decodeGraph, decodeTensor } from './onnx/decode.js';
export type { DecodeOptions } from './onnx/decode.js';
export { encodeModel, encodeGraph, encodeTensor } from './onnx/encode.js';
export { readOnnxFile, writeOnnxFile, findExternalData } from './onnx/model-file.js';
export type { ReadOnnxOptions, ExternalDataRef } from './onnx/model-file.js';
export { inspectModel, formatInspection } from './onnx/inspect.js';
export type { OnnxInspection, OnnxIoInfo } from './onnx/inspect.js';
export {
  tensorValues, tensorToFloat32, tensorElementCount, tensorByteSize, makeTensor, hasExternalData, externalDataLocation,
} from './onnx/tensor.js';
export type { TensorValues, TensorInput } from './onnx/tensor.js';
export { float32ToFloat16Bits, float16BitsToFloat32, float32ToBfloat16Bits, bfloat16BitsToFloat32 } from './onnx/float16.js';
export { dataTypeName, dataTypeByteSize, isFloatDataType } from './onnx/data-type.js';
export {
  makeAttribute, makeNode, makeValueInfo, makeModel, irVersionForOpset, initializerMap, getAttr, attrInt, attrInts, attrFloat,
  attrFloats, attrString, attrStrings, attrTensor, attrGraph,
} from './onnx/graph-utils.js';
export type { AttrValue, MakeModelOptions } from './onnx/graph-utils.js';
export { OnnxError } from './onnx/onnx-error.js';
export type { OnnxErrorCode } from './onnx/onnx-error.js';
export { walkModel } from './onnx/walk.js';
export type { WalkVisitor, TensorRole } from './onnx/walk.js';
export { ProtoReader } from './proto/reader.js';
export { ProtoWriter } from './proto/writer.js';
export { WireType, fieldTag } from './proto/wire-type.js';
export type { WireTypeValue } from './proto/wire-type.js';
export { ProtoDecodeError } from './proto/proto-error.js';

// Quantization: FP16, INT8 weight-only, INT8 static QDQ, calibration, sensitivity
export { quantizeModel, QUANT_MODES } from './quant/quantize.js';
export type { QuantMode, QuantizeModelOptions, QuantizeReport, CalibrationSource } from './quant/quantize.js';
export { convertToFloat16, DEFAULT_FP16_BLOCK_OPS } from './quant/fp16.js';
export type { Float16Options, Float16Result } from './quant/fp16.js';
export { quantizeWeightsInt8, INT8_WEIGHT_OPS } from './quant/int8-weights.js';
export type { Int8WeightsOptions, Int8WeightsResult, SkippedNode } from './quant/int8-weights.js';
export { quantizeQdq, DEFAULT_QDQ_OP_TYPES, QDQ_OP_HANDLERS } from './quant/qdq.js';
export type { QdqOptions, QdqResult, QdqOpType } from './quant/qdq.js';
export { calibrate, selectCalibrationTensors } from './quant/calibration-run.js';
export type { CalibrateOptions, CalibrationResult, CalibrationTensorOptions } from './quant/calibration-run.js';
export { sensitivityReport, formatSensitivityTable } from './quant/sensitivity.js';
export type { SensitivityOptions, SensitivityRow, SensitivityTableOptions } from './quant/sensitivity.js';
export { createCollector, CALIBRATION_METHODS } from './quant/calibrate/create-collector.js';
export { MinMaxCollector } from './quant/calibrate/minmax-collector.js';
export type { MinMaxOptions } from './quant/calibrate/minmax-collector.js';
export { PercentileCollector } from './quant/calibrate/percentile-collector.js';
export type { PercentileOptions } from './quant/calibrate/percentile-collector.js';
export { EntropyCollector } from './quant/calibrate/entropy-collector.js';
export type { EntropyOptions } from './quant/calibrate/entropy-collector.js';
export type { CollectorOptionsMap } from './quant/calibrate/create-collector.js';
export type { TensorRange, CalibrationMethod, RangeCollector } from './quant/calibrate/types.js';
export {
  computeScaleZeroPoint, qRange, quantizePerTensor, quantizeWeightsPerChannel, quantizeBiasInt32, roundHalfEven,
} from './quant/qparams.js';
export type { QuantType, ScaleZeroPoint, ScaleZeroPointOptions, QRange, QRangeOptions, PerTensorQuantized, PerChannelQuantized, BiasQuantized } from './quant/qparams.js';
export { QuantError } from './quant/quant-error.js';
export type { NamePattern } from './quant/graph-index.js';

// Signed model packages
export {
  parseManifest, checkManifestVersion, defaultModel, MANIFEST_VERSION, MANIFEST_FILE, TASKS, PRECISIONS, OUTPUT_LAYOUTS,
} from './package/manifest.js';
export type {
  Manifest, UnsignedManifest, ManifestInput, ManifestOutput, ManifestModel, ManifestFile, ManifestTensorrt, ManifestVal,
  ManifestSignature, ManifestNormalisation, ManifestLetterbox, Task, Precision, OutputLayout, Dim,
} from './package/manifest.js';
export { canonicalJson, canonicalJsonBytes } from './package/canonical-json.js';
export { generateKeyPair, loadPrivateKey, loadPublicKey, writeKeyPair, keyIdOf, toPublicKey, toPrivateKey } from './package/keys.js';
export type { KeyPair, KeyInput, KeyPairPaths } from './package/keys.js';
export { signManifest, verifyManifestSignature, signingPayload } from './package/sign.js';
export { buildPackage, writeManifest, precisionFromFileName, PACKAGE_LAYOUT } from './package/build.js';
export type { BuildPackageOptions, BuildModel } from './package/build.js';
export { verifyPackage } from './package/verify.js';
export type { VerifyOptions, VerifiedPackage, VerifiedFile } from './package/verify.js';
export { packDirectory } from './package/tar-write.js';
export type { PackOptions, PackResult, PackedEntry } from './package/tar-write.js';
export { readTar, TarReader } from './package/tar-read.js';
export type { TarEntry, TarFile, TarReadOptions } from './package/tar-read.js';
export { extractTar } from './package/tar-extract.js';
export { compareSemver, parseSemver, isSemver } from './package/semver.js';
export { PackageError } from './package/errors.js';
export { DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_TOTAL_BYTES, DEFAULT_MAX_MANIFEST_BYTES } from './package/limits.js';
export type { ExtractOptions } from './package/tar-extract.js';
export type { PackageErrorCode } from './package/errors.js';

// Runtime measurements
export { measureOrtLatency, latencyStats, percentile } from './runtime/ort-latency.js';
export type { LatencyStats, OrtLatencyOptions } from './runtime/ort-latency.js';

// TensorRT: INT8 calibration cache and engine build plan (engines are built on the device)
export { writeCalibCache, parseCalibCache, calibScaleHex, amaxFromCalibScale, TRT_CALIBRATION_ALGORITHMS } from './tensorrt/calib-cache.js';
export type { CalibCacheOptions, ParsedCalibCache, TrtCalibrationAlgorithm } from './tensorrt/calib-cache.js';
export { buildTrtPlan, validateTrtPlan, trtexecArgs, TRT_PRECISIONS, TRT_LAYER_PRECISIONS } from './tensorrt/trt-plan.js';
export type {
  TrtPlan, TrtPlanOptions, TrtPrecision, TrtLayerPrecision, TrtLayerPrecisionOverride, TrtStaticInput, TrtDynamicInput, TrtexecPaths,
} from './tensorrt/trt-plan.js';
export { parseTrtVersion, trtVersionNumber } from './tensorrt/trt-version.js';
export type { TrtVersion } from './tensorrt/trt-version.js';
export { TrtPlanError, CalibCacheError } from './tensorrt/errors.js';

// Graph surgery used by calibration and by distillation teachers
export { withExtraOutputs } from './quant/ort-run.js';
export type { BatchSource } from './quant/ort-run.js';

// Protocol v1
export { ProtocolError } from './protocol/protocol-error.js';
export type { ProtocolErrorCode, ProtocolErrorDetails, ProtocolIssue } from './protocol/protocol-error.js';
export {
  FLEET_ID_RE, DEVICE_ID_RE, MODEL_NAME_RE, COMMAND_ID_RE, SHA256_RE, KEY_ID_RE, MAX_VERSION_LENGTH,
  isFleetId, isDeviceId, isModelName, isModelVersion,
  fleetIdSchema, deviceIdSchema, modelNameSchema, modelVersionSchema, commandIdSchema, sha256Schema, keyIdSchema, isoDateTimeSchema,
} from './protocol/ids.js';
export { RESERVED_DEVICE_IDS, isReservedDeviceId } from './protocol/reserved-ids.js';
export type { ReservedDeviceId } from './protocol/reserved-ids.js';
export { PROTOCOL_VERSION, MAX_JSON_MESSAGE_BYTES, MAX_JSON_MESSAGE_DEPTH, RUNTIMES } from './protocol/common.js';
export type { Runtime } from './protocol/common.js';
export {
  TOPIC_PREFIX, MESSAGE_KINDS, fleetTopics, parseTopic, escapeTopicSegment, unescapeTopicSegment,
} from './protocol/topics.js';
export type { MessageKind, TopicKind, FleetTopics, ParsedTopic, DeviceTopic, ModelTopic } from './protocol/topics.js';
export { statusSchema, hardwareSchema, activeModelSchema, makeStatus, makeOfflineStatus } from './protocol/status.js';
export type { StatusMessage, StatusFields, Hardware, ActiveModel } from './protocol/status.js';
export {
  COMMANDS, MAX_BENCH_ITERATIONS, commandSchema, pingCommandSchema, deployCommandSchema, rollbackCommandSchema, benchmarkCommandSchema,
  deployPackageSchema, deployManifestSchema, commandSignatureSchema, makeCommand, commandRoot,
} from './protocol/command.js';
export type {
  CommandMessage, CommandName, CommandFields, PingCommand, DeployCommand, RollbackCommand, BenchmarkCommand, CommandSignature,
} from './protocol/command.js';
export { EVENT_STATES, eventSchema, makeEvent } from './protocol/event.js';
export type { EventMessage, EventState, EventFields } from './protocol/event.js';
export { benchSchema, latencyStatsSchema, tegrastatsSummarySchema, makeBench } from './protocol/bench.js';
export type { BenchMessage, BenchLatency, TegrastatsSummary, BenchFields } from './protocol/bench.js';
export { MAX_DETECTIONS_PER_MESSAGE, detectionSchema, detectionsSchema, makeDetections } from './protocol/detections.js';
export type { DetectionsMessage, DetectionItem, DetectionsFields } from './protocol/detections.js';
export { MAX_CHUNK_REQUEST_INDEXES, chunkRequestSchema, makeChunkRequest } from './protocol/chunk-request.js';
export type { ChunkRequestMessage, ChunkRequestFields } from './protocol/chunk-request.js';
export {
  CHUNK_FRAME_MAGIC, MAX_CHUNK_HEADER_BYTES, DEFAULT_MAX_CHUNK_BYTES, chunkHeaderSchema, encodeChunkFrame, decodeChunkFrame,
} from './protocol/chunk-frame.js';
export type { ChunkHeader, ChunkFrame, DecodeChunkFrameOptions } from './protocol/chunk-frame.js';
export { signCommand, verifyCommandSignature, commandSigningPayload } from './protocol/command-signature.js';
export { parseMessage } from './protocol/parse.js';
export type { ParseMessageOptions } from './protocol/parse.js';
export { MESSAGE_SCHEMAS, protocolJsonSchemas } from './protocol/schemas.js';
export type { MessageTypes } from './protocol/schemas.js';
