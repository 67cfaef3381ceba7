// kd-agent: pulls signed models over MQTT, verifies, benchmarks, activates and serves them on the device.

// Errors and configuration
export { AgentError, errorCode } from './errors.js';
export type { AgentErrorCode } from './errors.js';
export { AGENT_CONFIG_SCHEMA, loadAgentConfig, validateAgentConfig, envOverrides, defaultDeviceId } from './config/agent-config.js';
export type { AgentConfig, AgentConfigSources } from './config/agent-config.js';

// Commands
export { CommandLedger, isFinalState } from './commands/command-ledger.js';
export type { LedgerEntry } from './commands/command-ledger.js';

// Runtimes: ONNX Runtime with execution-provider fallback; TensorRT through trtexec (locate, version, build + engine cache, benchmark)
export { RuntimeError } from './runtime/runtime-error.js';
export type { RuntimeErrorCode } from './runtime/runtime-error.js';
export { SILENT_LOGGER } from './runtime/logger.js';
export type { RuntimeLogger } from './runtime/logger.js';
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

// Benchmarks: runner, tegrastats parser and monitor, bench message
export { BenchError } from './bench/bench-error.js';
export type { BenchErrorCode } from './bench/bench-error.js';
export { runBenchmark } from './bench/benchmark-runner.js';
export type { BenchStep, BenchStepContext, BenchPhase, PhaseTimings, BenchmarkOptions, BenchmarkResult, BenchLatency } from './bench/benchmark-runner.js';
export { parseTegrastatsLine, INPUT_POWER_RAILS } from './bench/tegrastats-parser.js';
export type { TegrastatsSample, TegraLoad, TegraRail } from './bench/tegrastats-parser.js';
export { TegrastatsMonitor, summarizeTegrastats, locateTegrastats, DEFAULT_TEGRASTATS_PATHS } from './bench/tegrastats-monitor.js';
export type { TegrastatsMonitorOptions, TegrastatsSummary, TegrastatsMonitorEvents } from './bench/tegrastats-monitor.js';
export { buildBenchReport, benchResultFromTrtexec } from './bench/bench-report.js';
export type { BenchMessage, BenchReportInput, TrtexecResultOptions } from './bench/bench-report.js';
