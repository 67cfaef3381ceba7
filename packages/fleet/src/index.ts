// kd-fleet: model registry, staged rollouts gated on on-device benchmarks, the live dashboard, and a fleet simulator.

// State: SQLite and migrations
export { openDatabase } from './db/open-database.js';
export type { OpenDatabaseOptions } from './db/open-database.js';
export { migrate } from './db/migrate.js';
export type { Migration, MigrateResult } from './db/migrate.js';
export { coreMigrations } from './db/core-migrations.js';
export { FleetError } from './db/fleet-error.js';
export type { FleetErrorCode } from './db/fleet-error.js';

// The package registry (signed packages, verified on push)
export { PackageRegistry } from './registry/package-registry.js';
export type { PackageRegistryOptions, PushOptions, PublishFunction } from './registry/package-registry.js';
export type { PackageRecord } from './registry/package-record.js';

// Artifacts: HTTP with Range, MQTT chunks
export { serveArtifact } from './artifacts/serve-artifact.js';
export { artifactPath, parseArtifactPath, ARTIFACTS_PREFIX } from './artifacts/artifact-path.js';
export { parseByteRange } from './artifacts/byte-range.js';
export type { ByteRange } from './artifacts/byte-range.js';
export { ChunkService } from './artifacts/chunk-service.js';
export type { ChunkServiceOptions, ChunkServiceStats, ChunkServiceEvents, ChunkSource, ChunkClient } from './artifacts/chunk-service.js';
export { ByteBudget } from './artifacts/byte-budget.js';

// Devices
export { DeviceRegistry } from './devices/device-registry.js';
export type {
  DeviceRegistryOptions, DeviceRegistryEvents, DeviceRegistryStats, DeviceChange, DeviceChangeKind, MalformedMessage, DeviceClient,
} from './devices/device-registry.js';
export type { DeviceRecord, ActiveModelRecord, BenchRecord, DeviceFilter } from './devices/device-record.js';
export { normaliseTags, TAG_RE, MAX_TAGS } from './devices/device-tags.js';
export { tensorrtVersions, deviceTensorrt, exactTrtVersion, compareTrtVersions } from './devices/tensorrt-versions.js';
export type { FleetTensorrtVersions, TensorrtVersionGroup, TensorrtPlatform, DeviceTensorrt } from './devices/tensorrt-versions.js';

// Rollouts
export { RolloutEngine, deployCommandId, rollbackCommandId } from './rollout/rollout-engine.js';
export type { RolloutEngineOptions, RolloutEngineEvents, RolloutCommand } from './rollout/rollout-engine.js';
export { parseRolloutSpec, ROLLOUT_SPEC_DEFAULTS } from './rollout/rollout-spec.js';
export type { RolloutSpec, RolloutSpecInput, RolloutTarget, RolloutGates, CanarySpec, RampSpec } from './rollout/rollout-spec.js';
export { ROLLOUT_MIGRATIONS } from './rollout/rollout-migrations.js';
export { RolloutError } from './rollout/rollout-error.js';
export type { RolloutErrorCode } from './rollout/rollout-error.js';
export { ROLLOUT_STATES, WAVE_STATES, ACTIVE_ROLLOUT_STATES } from './rollout/rollout-types.js';
export type { RolloutInfo, RolloutState, WaveInfo, WaveState, WaveResults, ExecutionInfo } from './rollout/rollout-types.js';
export { EXECUTION_STATES, FINAL_EXECUTION_STATES, FAILED_EXECUTION_STATES, IN_FLIGHT_EXECUTION_STATES } from './rollout/execution-state.js';
export type { ExecutionState } from './rollout/execution-state.js';
export { planWaves } from './rollout/rollout-plan.js';
export { gateViolation } from './rollout/rollout-gates.js';
export type { GateCode } from './rollout/rollout-gates.js';
export { currentRate } from './rollout/rollout-rate.js';
export { checkRolloutTrtCoverage, packageTrtCoverage, trtCoverageWarnings } from './rollout/trt-coverage.js';
export type { PackageTrtCoverage, TrtCoverageDeps } from './rollout/trt-coverage.js';
export { RolloutWarningStore, ROLLOUT_WARNING_MIGRATIONS, rolloutWithWarnings } from './rollout/rollout-warnings.js';
export type { RolloutWarning, RolloutWarningCode, RolloutWarningStoreEvents, RolloutWithWarnings } from './rollout/rollout-warnings.js';

// On-device adaptation (issue 16): teacher pushes, adapt commands, the jobs devices report
export { AdaptJobStore } from './adapt/adapt-job-store.js';
export type { AdaptJobStoreOptions, AdaptJobStoreEvents, AdaptJobStoreStats, AdaptJobFilter } from './adapt/adapt-job-store.js';
export { adaptSnapshot, isFinalAdaptState } from './adapt/adapt-job.js';
export type { AdaptJobInfo, AdaptJobSnapshot, AdaptJobDetail, AdaptEvaluation, AdaptFigures, AdaptPullInfo, AdaptPullState } from './adapt/adapt-job.js';
export { DeviceCommands, deployCommandFor, DEPLOY_CHUNK_SIZE } from './adapt/device-commands.js';
export type { DeviceCommandsOptions, DeployCommandInput, DeployTransport, SentCommand, TeacherPush, AdaptCommandSent } from './adapt/device-commands.js';
export { ADAPT_MIGRATIONS } from './adapt/adapt-migrations.js';
export { AdaptError } from './adapt/adapt-error.js';
export type { AdaptErrorCode } from './adapt/adapt-error.js';

// HTTP API and live events
export { createApiHandler } from './http/api-handler.js';
export type { ApiHandler, ApiHandlerOptions } from './http/api-handler.js';
export { LiveEvents } from './http/live-events.js';
export type { LiveEventsOptions, LiveEventSources, LiveEventsStats, LiveDeviceEvent, LiveBenchEvent } from './http/live-events.js';
export { ApiError } from './http/api-error.js';
export type { ApiErrorCode } from './http/api-error.js';
export { ERROR_STATUS, errorResponse } from './http/error-response.js';
export type { ApiErrorBody, ErrorResponse } from './http/error-response.js';
export type { PackageSummary, PackageDetail } from './http/model-routes.js';
export type { DeviceListEntry, DeviceDetail, LatencyPoint } from './http/device-routes.js';
export type { RolloutDetail, RolloutAction } from './http/rollout-routes.js';

// Dashboard
export { serveDashboard } from './dashboard/serve-dashboard.js';
export type { ServeDashboardOptions } from './dashboard/serve-dashboard.js';

// The server, its web handlers and the CLI
export { FleetServer } from './server/fleet-server.js';
export type { FleetServerOptions, FleetServerEvents, FleetHandler } from './server/fleet-server.js';
export type { FleetContext } from './server/fleet-context.js';
export { webHandlers } from './server/web-handlers.js';
export { main as kdFleetMain } from './cli.js';

// Simulator: N real kd-agents with hardware profiles and fault injection
export { FleetSimulator } from './simulator/fleet-simulator.js';
export type { SimulatorOptions, FleetSimulatorEvents } from './simulator/fleet-simulator.js';
export { runSimulate } from './simulator/run-simulate.js';
export type { SimulateCliOptions, SimulateIo } from './simulator/run-simulate.js';
export { HARDWARE_PROFILES, HARDWARE_PROFILE_NAMES, profileBenchTransform, deviceLatencyFactor } from './simulator/hardware-profiles.js';
export type { HardwareProfile, HardwareProfileName, TegrastatsTemplate } from './simulator/hardware-profiles.js';
export { planDevices } from './simulator/device-plan.js';
export type { SimDeviceSpec, ProfileChoice } from './simulator/device-plan.js';
export type { SimBench, AgentPoolEvents } from './simulator/agent-pool.js';
export { SimulatorError } from './simulator/simulator-error.js';
export type { SimulatorErrorCode } from './simulator/simulator-error.js';
