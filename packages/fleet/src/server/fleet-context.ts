import type { Logger } from '@kd-edge/core/util';
import type { AdaptJobStore } from '../adapt/adapt-job-store.js';
import type { AdaptPulls } from '../adapt/adapt-pulls.js';
import type { DeviceCommands } from '../adapt/device-commands.js';
import type { DeviceRegistry } from '../devices/device-registry.js';
import type { PackageRecord } from '../registry/package-record.js';
import type { PackageRegistry } from '../registry/package-registry.js';
import type { RolloutEngine } from '../rollout/rollout-engine.js';
import type { RolloutWarningStore } from '../rollout/rollout-warnings.js';

/**
 * Everything the HTTP API and the dashboard need from a running kd-fleet: its state (registry, devices,
 * rollouts, adaptation jobs), the per-device commands, the control token, and the few actions that need the
 * server's own wiring (trusted keys, package lookup). FleetServer builds one; tests build their own over temporary state.
 */
export interface FleetContext {
  fleet: string;
  registry: PackageRegistry;
  devices: DeviceRegistry;
  rollouts: RolloutEngine;
  /** The warnings found when each rollout started (issue 17: devices that will build fp16); absent, none are kept. */
  rolloutWarnings?: RolloutWarningStore;
  /** On-device adaptation jobs as the devices report them (issue 16). */
  adaptJobs: AdaptJobStore;
  /** Commands sent to one device: teacher pushes, adapt and adapt-cancel. */
  commands: DeviceCommands;
  /** Pulling adapted packages from devices and promoting them (issue 16); absent, those routes answer 404. */
  pulls?: AdaptPulls;
  /** Bearer token for state-changing requests; undefined = every control request refused (read-only server). */
  token: string | undefined;
  /** Verifies and stores an uploaded package tar (bytes in a temp file), returns its record. */
  pushPackage(tarPath: string): Promise<PackageRecord>;
  /** Starts a rollout from a spec input: { package: {name, version}, target, waves, gates, ... } → id. */
  startRollout(input: unknown): string;
  /** Server facts for the dashboard header: version, broker URLs (tcp, ws), uptime, counts. */
  info(): Record<string, unknown>;
  logger: Logger;
}
