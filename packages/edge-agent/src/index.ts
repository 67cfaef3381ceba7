// kd-agent: pulls signed models over MQTT, verifies, benchmarks, activates and serves them on the device.

// Errors and configuration
export { AgentError, errorCode } from './errors.js';
export type { AgentErrorCode } from './errors.js';
export { AGENT_CONFIG_SCHEMA, ADAPT_OWN_FLAGS, loadAgentConfig, validateAgentConfig, envOverrides, defaultDeviceId } from './config/agent-config.js';
export type { AgentConfig, AgentConfigSources, CaptureConfig, AgentAdaptConfig } from './config/agent-config.js';

// The agent
export { Agent } from './agent.js';
export type { AgentOptions, AgentEvents, AgentSeam, AgentTargetFacts } from './agent.js';
export { main as kdAgentMain } from './cli.js';
export { loadModel } from './model/loaded-model.js';
export type { LoadedModel, LoadModelOptions } from './model/loaded-model.js';
export { pickTarget, pickTensorrt, targetArch } from './model/pick-target.js';
export type { PickedTarget, TargetFacts, TensorrtChoice } from './model/pick-target.js';
export { benchmarkModel } from './model/model-benchmark.js';
export type { ModelBenchmarkOptions } from './model/model-benchmark.js';
export { onDeviceAccuracy, yoloLabels } from './model/on-device-accuracy.js';
export type { OnDeviceAccuracy } from './model/on-device-accuracy.js';
export { deviceFacts, parseL4tRelease } from './status/device-facts.js';
export type { DeviceFactsOptions } from './status/device-facts.js';

// Commands
export { CommandLedger, isFinalState } from './commands/command-ledger.js';
export type { LedgerEntry } from './commands/command-ledger.js';

// MQTT session, reconnect backoff, disk outbox
export { MqttSession } from './mqtt/session.js';
export type { MqttSessionOptions, MqttSessionEvents, MqttConnectInfo, MqttReconnectInfo, MqttMessageInfo, MqttPublishOptions, MqttPublishResult } from './mqtt/session.js';
export type { MqttConnectionOptions, MqttTlsOptions, MqttWill } from './mqtt/client-options.js';
export { DEFAULT_SESSION_EXPIRY_SEC } from './mqtt/client-options.js';
export { Outbox } from './mqtt/outbox.js';
export type { OutboxOptions, OutboxMessage, OutboxDrop, OutboxDropReason, OutboxEvents, OutboxSendResult } from './mqtt/outbox.js';
export type { OutboxRecord } from './mqtt/outbox-record.js';
export { Backoff, backoffDelay, DEFAULT_BACKOFF } from './mqtt/backoff.js';
export type { BackoffOptions } from './mqtt/backoff.js';
export { MqttError } from './mqtt/mqtt-error.js';
export type { MqttErrorCode } from './mqtt/mqtt-error.js';

// Model store
export { ModelStore, COMPLETE_SUFFIX } from './store/model-store.js';
export type { StoredVersion, StoreState, StoreHistoryEntry, HighWaterMark, RecoverReport, ModelStoreOptions, GcOptions } from './store/model-store.js';
export { StoreError } from './store/store-error.js';
export type { StoreErrorCode } from './store/store-error.js';
export { versionKey, parseVersionKey, checkVersionInfo } from './store/version-key.js';
export type { VersionInfo } from './store/version-key.js';

// Artifact transfer
export { freeBytes, checkSpace } from './transfer/disk-space.js';
export type { CheckSpaceOptions } from './transfer/disk-space.js';
export { httpDownload, sha256File } from './transfer/http-download.js';
export type { HttpDownloadOptions, HttpDownloadResult, TransferProgress } from './transfer/http-download.js';
export { ChunkDownloader } from './transfer/chunk-download.js';
export type { ChunkDownloaderOptions, ChunkDownloaderEvents, ChunkDownloadResult, ChunkInput, ChunkProgress, AcceptResult } from './transfer/chunk-download.js';
export { TransferError } from './transfer/transfer-error.js';
export type { TransferErrorCode } from './transfer/transfer-error.js';

// Inference service: detector, hot-swap model slot, frame sources, detections rate limiter, serial sink
export { Detector } from './serve/detector.js';
export type {
  DetectorModel, DetectorOptions, DetectOptions, DetectResult, DetectTimings, DetectorImage, ServeDetection, SessionLike, RuntimeLike,
  TensorLike,
} from './serve/detector.js';
export { decodeToRgb, decodeBmp } from './serve/decode-image.js';
export type { RawImage, RgbImage } from './serve/decode-image.js';
export { letterboxToTensor } from './serve/preprocess.js';
export type { PreparedInput, PreprocessSpec } from './serve/preprocess.js';
export { ModelSlot } from './serve/model-slot.js';
export type { SlotDetector, SlotResult, ModelSlotEvents, ModelSlotOptions } from './serve/model-slot.js';
export { FRAME_EXTENSIONS, isFrameFile } from './serve/frame-source.js';
export type { Frame, FrameSource } from './serve/frame-source.js';
export { DirectoryWatchSource } from './serve/directory-watch-source.js';
export type { DirectoryWatchSourceOptions, DirectoryWatchSourceEvents } from './serve/directory-watch-source.js';
export { ReplaySource } from './serve/replay-source.js';
export type { ReplaySourceOptions, ReplaySourceEvents } from './serve/replay-source.js';
export { DetectionsLimiter } from './serve/detections-limiter.js';
export type { DetectionsLimiterOptions, LimiterDecision } from './serve/detections-limiter.js';
export { SerialSink } from './serve/serial-sink.js';
export type { SerialSinkOptions, SerialSinkState, SerialSinkStats, SerialSinkEvents } from './serve/serial-sink.js';
export { InferenceService } from './serve/inference-service.js';
export type {
  InferenceServiceOptions, InferenceServiceEvents, InferenceStats, DetectionsPayload, NamedDetector, LineSink,
} from './serve/inference-service.js';
export { ServeError } from './serve/serve-error.js';
export type { ServeErrorCode } from './serve/serve-error.js';

// On-device adaptation (issue 16): frame capture, the device's own key, verification of its own packages
export { CapturePolicy, CAPTURE_POLICY_DEFAULTS } from './adapt/capture-policy.js';
export type { CapturePolicyOptions, CaptureReason, CaptureChoice } from './adapt/capture-policy.js';
export { FrameCapture, FRAME_CAPTURE_DEFAULTS } from './adapt/frame-capture.js';
export type {
  FrameCaptureOptions, FrameCaptureEvents, FrameCaptureStats, CaptureInput, CapturedFrame, CaptureSidecar, CaptureDropReason,
} from './adapt/frame-capture.js';
export { imageFormat, IMAGE_FORMAT_EXTENSIONS } from './adapt/image-format.js';
export type { ImageFormat } from './adapt/image-format.js';
export { loadOrCreateDeviceKey, DEVICE_KEY_DIR, DEVICE_PRIVATE_KEY_FILE, DEVICE_PUBLIC_KEY_FILE } from './adapt/device-key.js';
export type { DeviceKey, DeviceKeyOptions } from './adapt/device-key.js';
export { verifyOwnPackage } from './adapt/own-package.js';

// On-device adaptation jobs (issue 16): the job manager, the kd-trainer child, packaging with the device key, budgets
export { AdaptJobs, messageOf as adaptMessageOf, gateFailure as adaptGateFailure } from './adapt/adapt-jobs.js';
export type { AdaptJobRecord, AdaptHost, AdaptJobsOptions, AdaptJobsEvents, AdaptAnswer } from './adapt/adapt-jobs.js';
export { AdaptJobError } from './adapt/adapt-error.js';
export type { AdaptJobErrorCode } from './adapt/adapt-error.js';
export { startAdaptChild, adaptChildArgs, adaptChildEnv, trainerErrorLine, ADAPT_EXIT } from './adapt/adapt-child.js';
export type { AdaptChild, AdaptChildExit, AdaptChildOptions, AdaptChildArgsOptions, AdaptChildRecipe } from './adapt/adapt-child.js';
export { buildAdaptedPackage } from './adapt/adapt-package.js';
export type { AdaptedPackageOptions, AdaptedPackage } from './adapt/adapt-package.js';
export { locateTrainer, trainerPackageDir, TRAINER_PACKAGE } from './adapt/trainer-command.js';
export type { TrainerCommand, LocateTrainerOptions } from './adapt/trainer-command.js';
export { RssMonitor, vmRssKib, parentPid } from './adapt/rss-monitor.js';
export type { RssMonitorOptions } from './adapt/rss-monitor.js';
export { batchForBudget, MAX_ADAPT_BATCH, MIB_PER_IMAGE_AT_640 } from './adapt/adapt-batch.js';
export type { BatchChoice } from './adapt/adapt-batch.js';
export { resolveAdaptRecipe, ADAPT_RECIPE_VALUE_KEYS } from './adapt/adapt-recipe.js';
export type { AdaptRecipeValues, AdaptRecipeKey, AdaptRecipeSource, ResolveAdaptRecipeOptions, ResolvedAdaptRecipe } from './adapt/adapt-recipe.js';
export { checkAdaptDisk, estimateJobBytes } from './adapt/adapt-disk.js';
export type { AdaptDiskEstimate, StatfsFn } from './adapt/adapt-disk.js';
export { readJobLock, processAlive, stopProcess, JOB_LOCK_FILE } from './adapt/job-lock.js';
export type { JobLockOwner, StopProcessOptions } from './adapt/job-lock.js';

// Runtimes: ONNX Runtime with execution-provider fallback; TensorRT through trtexec (locate, version, build + engine cache, benchmark)
export { RuntimeError } from './runtime/runtime-error.js';
export type { RuntimeErrorCode } from './runtime/runtime-error.js';
export { OrtRuntime, DEFAULT_EXECUTION_PROVIDERS } from './runtime/ort-runtime.js';
export type { OrtRuntimeOptions, ExecutionProviderPreference, ProviderFailure, OrtValueInfo, OrtOutput } from './runtime/ort-runtime.js';
export { ortRuntimeInfo } from './runtime/ort-info.js';
export type { OrtRuntimeInfo } from './runtime/ort-info.js';
export { locateTrtexec, findOnPath, isExecutableFile, DEFAULT_TRTEXEC_PATHS } from './runtime/trtexec-locate.js';
export type { LocateTrtexecOptions } from './runtime/trtexec-locate.js';
export { runTrtexec, outputTail } from './runtime/trtexec-process.js';
export type { RunTrtexecOptions, TrtexecRun } from './runtime/trtexec-process.js';
export { detectTrtexecVersion, parseTrtexecVersion, trtVersionFromNumber } from './runtime/trtexec-version.js';
export { parseTrtexecPerformance, trtexecLatencyMs } from './runtime/trtexec-report.js';
export type { TrtexecPerformance, TrtexecTiming, TrtexecLatencyMs } from './runtime/trtexec-report.js';
export { EngineCache } from './runtime/engine-cache.js';
export type { EngineCacheKey, CachedEngine, EngineReservation } from './runtime/engine-cache.js';
export { detectGpuName } from './runtime/gpu-name.js';
export type { DetectGpuNameOptions } from './runtime/gpu-name.js';
export { buildEngine, TRT_PLAN_FILE } from './runtime/trtexec-build.js';
export type { BuildEngineOptions, BuiltEngine } from './runtime/trtexec-build.js';
export { benchmarkEngine, trtexecBenchArgs } from './runtime/trtexec-bench.js';
export type { TrtexecBenchOptions, TrtexecBenchResult } from './runtime/trtexec-bench.js';

// TensorRT runner (issue 17): protocol, client, supervisor, runner-backed detector; the ONNX Runtime stand-in is a
// program (src/runtime/trt-runner/standin-runner.ts), not part of the API
export { TrtRunnerError } from './runtime/trt-runner/trt-runner-error.js';
export type { TrtRunnerErrorCode } from './runtime/trt-runner/trt-runner-error.js';
export {
  PROTOCOL_VERSION as TRT_RUNNER_PROTOCOL_VERSION, MAX_FRAME_BYTES as TRT_RUNNER_MAX_FRAME_BYTES, RUNNER_ERROR_CODES, TENSOR_DTYPES,
  encodeFrame, FrameDecoder, parseRequest, parseReply, checkRegions, shmPathAllowed, tensorBytes,
} from './runtime/trt-runner/protocol.js';
export type {
  RunnerErrorCode, TensorDtype, TensorSpec, TensorRegion, InputRegion, RunnerRequest, RunnerReply, HelloReply, LoadedReply, ResultReply,
  ErrorReply, DecodedFrame,
} from './runtime/trt-runner/protocol.js';
export { ShmRegion, layoutRegions, DEFAULT_SHM_DIR } from './runtime/trt-runner/shm-region.js';
export type { ShmRegionOptions, RegionLayout } from './runtime/trt-runner/shm-region.js';
export { RunnerClient, describeExit } from './runtime/trt-runner/runner-client.js';
export type { RunnerClientOptions, RunnerClientEvents, RunnerExit, InferRequest, RequestOptions } from './runtime/trt-runner/runner-client.js';
export { RunnerSupervisor } from './runtime/trt-runner/runner-supervisor.js';
export type {
  RunnerSupervisorOptions, RunnerSupervisorState, RunnerSupervisorEvents, RunnerCrash, RunnerFallback,
} from './runtime/trt-runner/runner-supervisor.js';
export { TrtRunnerRuntime, openRunnerDetector } from './runtime/trt-runner/runner-runtime.js';
export type { TrtRunnerRuntimeOptions, TrtRunnerOutput } from './runtime/trt-runner/runner-runtime.js';

// Building the native runner on the device (`kd-agent runtime build-tensorrt`): shipped source, TensorRT headers, compile, self-check
export { buildTensorrtRunner } from './runtime/build-tensorrt.js';
export type { BuildTensorrtRunnerOptions, BuiltTensorrtRunner, TrtRunnerConfigSnippet } from './runtime/build-tensorrt.js';
export { TrtBuildError } from './runtime/trt-build-error.js';
export type { TrtBuildErrorCode } from './runtime/trt-build-error.js';
export { locateRunnerSource, checkRunnerSource, runnerSourceFiles, RUNNER_SOURCE_SUBDIR } from './runtime/runner-source.js';
export {
  parseTensorrtVersionHeader, readTensorrtVersion, tensorrtApi, describeTensorrtApi, findDirWith, DEFAULT_TENSORRT_INCLUDE_DIRS,
  DEFAULT_TENSORRT_LIB_DIRS, DEFAULT_CUDA_INCLUDE_DIRS, DEFAULT_CUDA_LIB_DIRS,
} from './runtime/tensorrt-headers.js';
export type { TensorrtApi, TensorrtHeaderVersion } from './runtime/tensorrt-headers.js';

// Benchmarks: runner, tegrastats parser and monitor, bench message
export { BenchError } from './benchmark/bench-error.js';
export type { BenchErrorCode } from './benchmark/bench-error.js';
export { runBenchmark } from './benchmark/benchmark-runner.js';
export type { BenchStep, BenchStepContext, BenchPhase, PhaseTimings, BenchmarkOptions, BenchmarkResult } from './benchmark/benchmark-runner.js';
export { parseTegrastatsLine, INPUT_POWER_RAILS } from './benchmark/tegrastats-parser.js';
export type { TegrastatsSample, TegraLoad, TegraRail } from './benchmark/tegrastats-parser.js';
export { TegrastatsMonitor, summarizeTegrastats, locateTegrastats, DEFAULT_TEGRASTATS_PATHS } from './benchmark/tegrastats-monitor.js';
export type { TegrastatsMonitorOptions, TegrastatsSummary, TegrastatsMonitorEvents } from './benchmark/tegrastats-monitor.js';
export { buildBenchReport, benchResultFromTrtexec } from './benchmark/bench-report.js';
export type { BenchReportInput, TrtexecResultOptions } from './benchmark/bench-report.js';
