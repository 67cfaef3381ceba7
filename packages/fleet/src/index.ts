// kd-fleet: model registry, staged rollouts gated on on-device benchmarks, the live dashboard, and a fleet simulator.

// State: SQLite and migrations
export { openDatabase } from './db/open-database.js';
export type { OpenDatabaseOptions } from './db/open-database.js';
export { migrate } from './db/migrate.js';
export type { Migration, MigrateResult } from './db/migrate.js';
export { coreMigrations } from './db/core-migrations.js';
export { FleetError } from './db/fleet-error.js';
export type { FleetErrorCode } from './db/fleet-error.js';
export { silentFleetLogger } from './db/logger.js';
export type { FleetLogger } from './db/logger.js';

// Registry
export { Registry } from './registry/registry.js';
export type { RegistryOptions, PushOptions, PublishFunction } from './registry/registry.js';
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
export type { DeviceRecord, BenchRecord, DeviceFilter } from './devices/device-record.js';
export { normaliseTags, TAG_RE, MAX_TAGS } from './devices/device-tags.js';

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
