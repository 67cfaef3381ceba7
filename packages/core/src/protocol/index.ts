// @kd-edge/core/protocol: Protocol v1: ids, topics, message schemas, chunk frames, command signatures.
// Also re-exported by the package root; import this path to load only what it needs.

// Protocol v1
export { ProtocolError } from './protocol-error.js';
export type { ProtocolErrorCode, ProtocolErrorDetails, ProtocolIssue } from './protocol-error.js';
export {
  FLEET_ID_RE, DEVICE_ID_RE, MODEL_NAME_RE, COMMAND_ID_RE, SHA256_RE, KEY_ID_RE, MAX_VERSION_LENGTH,
  isFleetId, isDeviceId, isModelName, isModelVersion,
  fleetIdSchema, deviceIdSchema, modelNameSchema, modelVersionSchema, commandIdSchema, sha256Schema, keyIdSchema, isoDateTimeSchema,
} from './ids.js';
export { RESERVED_DEVICE_IDS, isReservedDeviceId } from './reserved-ids.js';
export type { ReservedDeviceId } from './reserved-ids.js';
export { PROTOCOL_VERSION, MAX_JSON_MESSAGE_BYTES, MAX_JSON_MESSAGE_DEPTH, RUNTIMES } from './common.js';
export type { Runtime } from './common.js';
export {
  TOPIC_PREFIX, MESSAGE_KINDS, fleetTopics, parseTopic, escapeTopicSegment, unescapeTopicSegment,
} from './topics.js';
export type { MessageKind, TopicKind, FleetTopics, ParsedTopic, DeviceTopic, ModelTopic } from './topics.js';
export { statusSchema, hardwareSchema, activeModelSchema, deviceKeySchema, makeStatus, makeOfflineStatus } from './status.js';
export type { StatusMessage, StatusFields, Hardware, ActiveModel, DeviceKeyInfo } from './status.js';
export {
  COMMANDS, MAX_BENCH_ITERATIONS, MAX_ADAPT_EPOCHS, MAX_ADAPT_TIME_BUDGET_SEC,
  commandSchema, pingCommandSchema, deployCommandSchema, rollbackCommandSchema, benchmarkCommandSchema, adaptCommandSchema, adaptCancelCommandSchema,
  adaptUploadCommandSchema,
  deployPackageSchema, deployManifestSchema, adaptRecipeSchema, modelRefSchema, commandSignatureSchema, makeCommand, commandRoot,
} from './command.js';
export type {
  CommandMessage, CommandName, CommandFields, PingCommand, DeployCommand, RollbackCommand, BenchmarkCommand, AdaptCommand, AdaptCancelCommand,
  AdaptUploadCommand,
  AdaptRecipe, CommandSignature,
} from './command.js';
export { EVENT_STATES, eventSchema, makeEvent } from './event.js';
export type { EventMessage, EventState, EventFields } from './event.js';
export { benchSchema, latencyStatsSchema, tegrastatsSummarySchema, makeBench } from './bench.js';
export type { BenchMessage, BenchLatency, TegrastatsSummary, BenchFields } from './bench.js';
export { ADAPT_STATES, FINAL_ADAPT_STATES, adaptSchema, makeAdapt } from './adapt.js';
export type { AdaptMessage, AdaptState, AdaptFields } from './adapt.js';
export { ADAPT_BUILD_TAG, adaptedVersion, parseAdaptedVersion } from './adapt-version.js';
export type { AdaptedVersion } from './adapt-version.js';
export { MAX_DETECTIONS_PER_MESSAGE, detectionSchema, detectionsSchema, makeDetections } from './detections.js';
export type { DetectionsMessage, DetectionItem, DetectionsFields } from './detections.js';
export { MAX_CHUNK_REQUEST_INDEXES, chunkRequestSchema, makeChunkRequest } from './chunk-request.js';
export type { ChunkRequestMessage, ChunkRequestFields } from './chunk-request.js';
export {
  CHUNK_FRAME_MAGIC, MAX_CHUNK_HEADER_BYTES, DEFAULT_MAX_CHUNK_BYTES, chunkHeaderSchema, encodeChunkFrame, decodeChunkFrame,
} from './chunk-frame.js';
export type { ChunkHeader, ChunkFrame, DecodeChunkFrameOptions } from './chunk-frame.js';
export { signCommand, verifyCommandSignature, commandSigningPayload } from './command-signature.js';
export { parseMessage } from './parse.js';
export type { ParseMessageOptions } from './parse.js';
export { MESSAGE_SCHEMAS, protocolJsonSchemas } from './schemas.js';
export type { MessageTypes } from './schemas.js';
