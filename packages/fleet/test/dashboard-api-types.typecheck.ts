// Compile-time check, not a test file: the dashboard's hand-written API types (src/dashboard/api-types.d.ts,
// for the browser program, which cannot import Node-side modules) must accept what the server really sends.
// `npm run typecheck` fails here when a server record changes in a way the dashboard would misread.
import type * as Dash from '../src/dashboard/api-types.js';
import type { AdaptJobInfo, AdaptJobSnapshot } from '../src/adapt/adapt-job.js';
import type { BenchRecord, BenchSummary, DeviceRecord } from '../src/devices/device-record.js';
import type { DeviceChangeKind } from '../src/devices/device-registry.js';
import type { PackageSummary } from '../src/http/model-routes.js';
import type { RolloutGates, RolloutSpec, RolloutTarget } from '../src/rollout/rollout-spec.js';
import type { ExecutionInfo, RolloutInfo, RolloutState, WaveInfo, WaveState } from '../src/rollout/rollout-types.js';
import type { AdaptState, BenchMessage, StatusMessage } from '@kd-edge/core/protocol';

/** Compiles only when `Server` is assignable to `Dashboard` (the server's JSON reads as the dashboard's type). */
type Reads<Server extends Dashboard, Dashboard> = [Server, Dashboard];
/** Compiles only when the two unions of string literals are the same. */
type Same<A extends B, B extends C, C = A> = [A, B];

export type DashboardApiConformance = [
  Reads<BenchSummary, Dash.BenchSummary>,
  Reads<BenchRecord, Dash.BenchRecord>,
  Reads<BenchMessage, Dash.BenchMessage>,
  Reads<StatusMessage, Dash.StatusMessage>,
  Reads<DeviceRecord, Dash.DeviceRecord>,
  Reads<PackageSummary, Dash.PackageSummary>,
  Reads<RolloutTarget, Dash.RolloutTarget>,
  Reads<RolloutGates, Dash.RolloutGates>,
  Reads<RolloutSpec, Dash.RolloutSpec>,
  Reads<RolloutInfo, Dash.RolloutInfo>,
  Reads<WaveInfo, Dash.WaveInfo>,
  Reads<ExecutionInfo, Dash.ExecutionInfo>,
  Same<RolloutState, Dash.RolloutState>,
  Same<WaveState, Dash.WaveState>,
  Same<ExecutionInfo['state'], Dash.ExecutionState>,
  Same<DeviceChangeKind, Dash.DeviceChangeKind>,
  Reads<AdaptJobSnapshot, Dash.AdaptJobSnapshot>,
  Reads<AdaptJobInfo, Dash.AdaptJobInfo>,
  Same<AdaptState, Dash.AdaptState>,
];
