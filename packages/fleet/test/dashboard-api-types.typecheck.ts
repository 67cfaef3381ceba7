// Compile-time check, not a test file: the dashboard's hand-written API types (src/dashboard/api-types.d.ts,
// for the browser program, which cannot import Node-side modules) must accept what the server really sends.
// `npm run typecheck` fails here when a server record changes in a way the dashboard would misread. Every type of
// api-types.d.ts that mirrors a server type is listed below; the others have no server type to compare with
// (AnyBench is the dashboard's own union, FleetInfo's server side is an untyped record, RolloutInput is a request
// body the server validates itself).
import type * as Dash from '../src/dashboard/api-types.js';
import type { AdaptEvaluation, AdaptFigures, AdaptJobInfo, AdaptJobSnapshot, AdaptPullInfo, AdaptPullState } from '../src/adapt/adapt-job.js';
import type { PullStarted } from '../src/adapt/adapt-pulls.js';
import type { ActiveModelRecord, BenchRecord, BenchSummary, DeviceRecord } from '../src/devices/device-record.js';
import type { DeviceChangeKind } from '../src/devices/device-registry.js';
import type { DeviceDetail, DeviceListEntry, LatencyPoint } from '../src/http/device-routes.js';
import type { LiveBenchEvent, LiveDeviceEvent } from '../src/http/live-events.js';
import type { PackageSummary } from '../src/http/model-routes.js';
import type { RolloutAction, RolloutDetail } from '../src/http/rollout-routes.js';
import type { CanarySpec, RolloutGates, RolloutSpec, RolloutTarget } from '../src/rollout/rollout-spec.js';
import type { ExecutionInfo, RolloutState, WaveInfo, WaveState } from '../src/rollout/rollout-types.js';
import type { RolloutWarning, RolloutWithWarnings } from '../src/rollout/rollout-warnings.js';
import type { PackageRole } from '@kd-edge/core/package';
import type { AdaptState, BenchMessage, StatusMessage } from '@kd-edge/core/protocol';

/** The field names of any member of a union. */
type AnyKey<T> = T extends unknown ? keyof T : never;
/** `Dashboard` with each field the server's type lacks turned to `never`: a dashboard type names no such field. */
type Named<Server, Dashboard> = { [K in keyof Dashboard]: K extends AnyKey<Server> ? Dashboard[K] : never };
/**
 * Compiles only when `Server` is assignable to `Dashboard` (the server's JSON reads as the dashboard's type) and the
 * dashboard's type names no top-level field the server's lacks (a field the server renamed or dropped fails even
 * where the dashboard marks it optional).
 */
type Reads<Server extends Dashboard, Dashboard extends Named<Server, Dashboard>> = [Server, Dashboard];
/** Compiles only when the two unions of string literals are the same. */
type Same<A extends B, B extends C, C = A> = [A, B];

export type DashboardApiConformance = [
  Reads<ActiveModelRecord, Dash.ModelRef>,
  Reads<BenchSummary, Dash.BenchSummary>,
  Reads<LiveBenchEvent, Dash.BenchEvent>,
  Reads<BenchRecord, Dash.BenchRecord>,
  Reads<BenchMessage, Dash.BenchMessage>,
  Reads<StatusMessage, Dash.StatusMessage>,
  Reads<DeviceRecord, Dash.DeviceRecord>,
  Reads<DeviceListEntry, Dash.DeviceListEntry>,
  Reads<DeviceDetail, Dash.DeviceDetail>,
  Reads<LatencyPoint, Dash.LatencyPoint>,
  Reads<LiveDeviceEvent, Dash.DeviceEvent>,
  Same<DeviceChangeKind, Dash.DeviceChangeKind>,
  Same<PackageRole, Dash.PackageRole>,
  Reads<PackageSummary, Dash.PackageSummary>,
  Reads<RolloutTarget, Dash.RolloutTarget>,
  Reads<RolloutGates, Dash.RolloutGates>,
  Reads<CanarySpec, Dash.CanarySpec>,
  Reads<RolloutSpec, Dash.RolloutSpec>,
  Reads<RolloutWarning, Dash.RolloutWarning>,
  Reads<RolloutWithWarnings, Dash.RolloutInfo>,
  Reads<WaveInfo, Dash.WaveInfo>,
  Reads<ExecutionInfo, Dash.ExecutionInfo>,
  Reads<RolloutDetail, Dash.RolloutDetail>,
  Same<RolloutState, Dash.RolloutState>,
  Same<WaveState, Dash.WaveState>,
  Same<ExecutionInfo['state'], Dash.ExecutionState>,
  Same<RolloutAction, Dash.RolloutAction>,
  Same<AdaptState, Dash.AdaptState>,
  Reads<AdaptFigures, Dash.AdaptFigures>,
  Reads<AdaptEvaluation, Dash.AdaptEvaluation>,
  Reads<AdaptJobSnapshot, Dash.AdaptJobSnapshot>,
  Same<AdaptPullState, Dash.AdaptPullState>,
  Reads<AdaptPullInfo, Dash.AdaptPullInfo>,
  Reads<AdaptJobInfo, Dash.AdaptJobInfo>,
  Reads<PullStarted, Dash.PullStarted>,
];
