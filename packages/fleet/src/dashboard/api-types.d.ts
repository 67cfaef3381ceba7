// The JSON the dashboard (public/*.js) reads from kd-fleet's REST API and live event stream, for the type
// checker only: the browser never loads this file. Written by hand from the server's own types, which the
// browser program cannot import (they pull in Node and @kd-edge/core): devices/device-record.ts,
// rollout/rollout-types.ts, rollout/rollout-spec.ts, rollout/rollout-warnings.ts, http/live-events.ts,
// http/device-routes.ts, http/model-routes.ts, http/rollout-routes.ts, adapt/adapt-job.ts, adapt/adapt-pulls.ts.
// Only the fields the dashboard reads are required to match: test/dashboard-api-types.typecheck.ts makes
// `npm run typecheck` fail when a server type no longer reads as the one here (each type here with a server
// counterpart is listed there).

/** A model's identity on a device or in a rollout. */
export interface ModelRef {
  name: string;
  version: string;
  sha256?: string;
  /** A device's active model only, when its status says (issue 17): the package file that serves (`model.int8.u8s8.onnx`). */
  file?: string;
  /** `fp32`, `fp16` or `int8`. */
  precision?: string;
  /** `onnxruntime` or `tensorrt`: what computes. */
  runtime?: string;
  /** ONNX Runtime's execution provider, or the TensorRT runner's description. */
  executionProvider?: string;
  /** The path that serves: `tensorrt-runner` or `onnxruntime` (in-process). */
  serving?: string;
}

/** The latest bench report's figures (`bench` of GET /api/devices entries): ms, fps, mW, °C. */
export interface BenchSummary {
  /** The report's own time stamp, ms. */
  ts: number;
  p50: number;
  p95: number;
  fps: number;
  powerMw: number | null;
  tempC: number | null;
}

/** The live `bench` event. */
export interface BenchEvent extends BenchSummary {
  deviceId: string;
}

/** A stored bench report (`bench` of GET /api/devices/:id). */
export interface BenchRecord extends BenchSummary {
  id: number;
  deviceId: string;
  receivedAt: number;
  commandId: string | null;
  name: string;
  version: string;
  sha256: string;
  runtime: string;
  map50: number | null;
}

/** A bench report as the device sent it (core's BenchMessage): the parts the dashboard reads. */
export interface BenchMessage {
  /** ISO 8601. */
  ts: string;
  latencyMs: { min: number; mean: number; p50: number; p90: number; p95: number; p99: number; max: number };
  throughputFps: number;
  tegrastats?: { samples: number; totalPowerMw?: number; powerMw: Record<string, number>; tempC: Record<string, number> };
  accuracy?: { map50: number; map: number; images: number };
}

/** Any of the bench shapes above: what the device table folds into a row. */
export type AnyBench = BenchSummary | BenchRecord | BenchMessage;

/** A device's retained status (core's StatusMessage): the parts the dashboard reads. */
export interface StatusMessage {
  deviceId: string;
  online: boolean;
  ts: string;
  agentVersion?: string;
  hardware?: { arch: string; platform: string; jetson?: { model: string } | null };
  activeModel?: ModelRef | null;
}

/** A device record (GET /api/devices/:id's `device`, PUT /api/devices/:id/tags, the `device` event). */
export interface DeviceRecord {
  id: string;
  fleet: string;
  online: boolean;
  firstSeen: number;
  lastSeen: number;
  agentVersion: string | null;
  activeModel: ModelRef | null;
  status: StatusMessage | null;
  tags: string[];
  lastEvent: unknown;
  lastEventAt: number | null;
  removedAt: number | null;
  /** The pinned device key (issue 16); `mismatch` while the device reports another one not yet accepted. */
  deviceKey?: { keyId: string; pinnedAt: number; mismatch: { keyId: string; seenAt: number } | null } | null;
}

/** An entry of GET /api/devices: the record with its latest bench figures, null before the first report. */
export interface DeviceListEntry extends DeviceRecord {
  bench: BenchSummary | null;
}

/** GET /api/devices/:id. */
export interface DeviceDetail {
  device: DeviceRecord;
  bench: BenchRecord | null;
}

/** One point of GET /api/devices/:id/latency, oldest first. */
export interface LatencyPoint {
  ts: number | string;
  p50: number;
  p95: number;
  fps: number;
}

export type DeviceChangeKind = 'status' | 'online' | 'offline' | 'removed' | 'tags' | 'event' | 'bench' | 'key';

/** The live `device` event: the device as it is now (absent once it is gone). */
export interface DeviceEvent {
  kind: DeviceChangeKind;
  kinds?: DeviceChangeKind[];
  deviceId: string;
  device?: DeviceRecord;
}

/** What a package is for: `model` serves (rolled out), `teacher` labels frames for on-device adaptation (pushed, never served). */
export type PackageRole = 'model' | 'teacher';

/** An entry of GET /api/models. */
export interface PackageSummary {
  name: string;
  version: string;
  role: PackageRole;
  sha256: string;
  size: number;
  pushedAt: number;
  keyId: string;
  /** An adapted package pulled from a device: the device and the job that made it; null for a pushed package. */
  origin: { deviceId: string; jobId: string } | null;
  /** When a pulled package was promoted (re-signed with the fleet key); null when not. Pulled and unpromoted: not rolled out. */
  promotedAt: number | null;
  url: string;
}

/** GET /api/info. */
export interface FleetInfo {
  fleet?: string;
  version?: string;
  mqtt?: { tcp?: string; ws?: string };
  uptimeSec?: number;
  counts?: { devices?: number; online?: number; packages?: number; rollouts?: number };
  auth?: { controls?: boolean };
}

export type RolloutTarget = { deviceIds: string[] } | { tags: string[] } | { all: true };

export interface RolloutGates {
  maxP95Ms?: number;
  minFps?: number;
  minMap50?: number;
}

export type CanarySpec = { count: number } | { percent: number };

/** A rollout's spec with its defaults filled in (the server's RolloutSpec). */
export interface RolloutSpec {
  package: { name: string; version: string; sha256: string };
  target: RolloutTarget;
  waves: { canary: CanarySpec; percents: number[] };
  successThreshold: number;
  errorThreshold: number;
  onBelowThreshold: 'pause' | 'abort';
  gates: RolloutGates;
  approval: 'auto' | 'manual';
  deviceTimeoutSec: number;
  rate: { perMinute: number; ramp?: { factor: number; every: number; on: 'succeeded' | 'notified'; maxPerMinute: number } };
}

export type RolloutState = 'running' | 'paused' | 'awaiting_approval' | 'succeeded' | 'aborted' | 'failed';
export type WaveState = 'pending' | 'running' | 'passed' | 'below_threshold' | 'aborted';
export type ExecutionState =
  | 'queued' | 'sent' | 'accepted' | 'downloading' | 'verifying' | 'activating' | 'benchmarking'
  | 'succeeded' | 'failed' | 'timed_out' | 'rolled_back';

/**
 * Something an operator should know about a rollout that started all the same (rollout/rollout-warnings.ts), e.g.
 * `FLEET_TRT_NO_CACHE`: target devices whose TensorRT version has no int8 calibration cache build fp16.
 */
export interface RolloutWarning {
  code: string;
  message: string;
  /** The target devices concerned. */
  devices: string[];
  /** The TensorRT version concerned, for `FLEET_TRT_NO_CACHE`. */
  tensorrt?: string;
}

/** A rollout (GET /api/rollouts entries, GET /api/rollouts/:id's `rollout`, an action's answer, the `rollout` event). */
export interface RolloutInfo {
  id: string;
  package: { name: string; version: string; sha256: string };
  spec: RolloutSpec;
  state: RolloutState;
  createdAt: number;
  updatedAt: number;
  currentWave: number;
  waveCount: number;
  reason: string | null;
  /** The warnings recorded when it started; [] when none (or until they are: a later `rollout` event brings them). */
  warnings: RolloutWarning[];
}

/** A wave (the `wave` event); `results` is set when the wave ends. */
export interface WaveInfo {
  rolloutId: string;
  index: number;
  deviceIds: string[];
  state: WaveState;
  startedAt: number | null;
  endedAt: number | null;
  results: { total: number; succeeded: number; failed: number; codes: Record<string, number> } | null;
}

/** One device in one rollout (the `execution` event). */
export interface ExecutionInfo {
  rolloutId: string;
  deviceId: string;
  wave: number;
  state: ExecutionState;
  commandId: string;
  sentAt: number | null;
  updatedAt: number;
  code: string | null;
  message: string | null;
  bench: BenchMessage | null;
  deviceState: string | null;
  rollback: { commandId: string; state: 'queued' | 'sent' | 'rolled_back' | 'failed'; sentAt: number | null; code: string | null } | null;
}

/** GET /api/rollouts/:id. */
export interface RolloutDetail {
  rollout: RolloutInfo;
  waves: WaveInfo[];
  executions: ExecutionInfo[];
}

/** The body of POST /api/rollouts that the new-rollout form builds. */
export interface RolloutInput {
  package: { name: string; version: string };
  target: { tags: string[] } | { all: true };
  waves: { canary: { count: number }; percents: number[] };
  gates: RolloutGates;
  approval: string;
  rate?: { perMinute: number };
}

/** An operator action on a rollout: POST /api/rollouts/:id/<action>. */
export type RolloutAction = 'pause' | 'resume' | 'approve' | 'abort';

export type AdaptState =
  | 'queued' | 'labelling' | 'training' | 'evaluating' | 'exporting' | 'packaging' | 'activating'
  | 'succeeded' | 'rejected' | 'failed' | 'cancelled';

/** mAP50 and mAP50-95 (`map`) of one model on one set. */
export interface AdaptFigures {
  map50: number;
  map: number;
}

/** One evaluation set of a job: the serving (`before`) and adapted (`after`) model's figures as far as known. */
export interface AdaptEvaluation {
  images: number | null;
  before: AdaptFigures | null;
  after: AdaptFigures | null;
}

/** An adaptation job's state (GET /api/adapt-jobs entries, history entries, the live `adapt` event). */
export interface AdaptJobSnapshot {
  deviceId: string;
  jobId: string;
  commandId: string | null;
  state: AdaptState;
  final: boolean;
  base: { name: string; version: string };
  teacher: { name: string; version: string } | null;
  /** The adapted version once named (`1.0.0+adapt.cam-01.1`). */
  version: string | null;
  progress: { done: number; total: number } | null;
  frames: { used: number; holdout: number } | null;
  epoch: number | null;
  epochs: number | null;
  losses: Record<string, number> | null;
  holdout: AdaptEvaluation | null;
  val: AdaptEvaluation | null;
  accepted: boolean | null;
  reasons: string[];
  activated: boolean | null;
  code: string | null;
  message: string | null;
  serving: { fpsBefore: number | null; fpsDuring: number | null } | null;
  peakRssMb: number | null;
  /** The message's own time stamp, ms. */
  ts: number;
  receivedAt: number;
}

/** Where pulling a job's adapted package stands (the fleet's records): asked, accepted by the device, refused, expired, stored. */
export type AdaptPullState = 'requested' | 'uploading' | 'failed' | 'expired' | 'pulled';

/** A job's pull (adapt/adapt-job.ts AdaptPullInfo). */
export interface AdaptPullInfo {
  state: AdaptPullState;
  commandId: string | null;
  requestedAt: number | null;
  expiresAt: number | null;
  /** Why it failed: the fleet's refusal of the upload, else the device's error. */
  code: string | null;
  message: string | null;
  /** The pulled package: signed by the device until promoted, by the fleet after. */
  package: { name: string; version: string; sha256: string; keyId: string; promotedAt: number | null } | null;
}

/** An adaptation job: its latest state, and its pull (null when never pulled). */
export interface AdaptJobInfo extends AdaptJobSnapshot {
  firstSeenAt: number;
  pull: AdaptPullInfo | null;
}

/** POST /api/devices/:id/adapt-jobs/:jobId/pull (202): the adapt-upload command sent. */
export interface PullStarted {
  deviceId: string;
  jobId: string;
  version: string;
  commandId: string;
  url: string;
  expiresAt: number;
}
