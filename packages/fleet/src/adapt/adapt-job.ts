import { FINAL_ADAPT_STATES, type AdaptMessage, type AdaptState } from '@kd-edge/core/protocol';

/** mAP50 and mAP50-95 (`map`) of one model on one evaluation set. */
export interface AdaptFigures {
  map50: number;
  map: number;
}

/** One evaluation set of a job: its size and the serving (`before`) and adapted (`after`) model's figures, as far as known. */
export interface AdaptEvaluation {
  images: number | null;
  before: AdaptFigures | null;
  after: AdaptFigures | null;
}

/** One state of an adaptation job as the fleet shows it: the device's `adapt` message with every optional part null when absent. */
export interface AdaptJobSnapshot {
  deviceId: string;
  jobId: string;
  /** The `adapt` command that started the job; null for a job the device scheduled itself. */
  commandId: string | null;
  state: AdaptState;
  /** Whether `state` is final (`succeeded`, `rejected`, `failed`, `cancelled`). */
  final: boolean;
  base: { name: string; version: string };
  teacher: { name: string; version: string } | null;
  /** The adapted version once named (`1.0.0+adapt.cam-01.1`). */
  version: string | null;
  /** Frames labelled of all, while labelling. */
  progress: { done: number; total: number } | null;
  frames: { used: number; holdout: number } | null;
  epoch: number | null;
  epochs: number | null;
  /** The last epoch's mean losses by name. */
  losses: Record<string, number> | null;
  /** Hold-out figures (scored against the teacher's labels). */
  holdout: AdaptEvaluation | null;
  /** The package's labelled `val/` figures. */
  val: AdaptEvaluation | null;
  accepted: boolean | null;
  /** One line per acceptance check or gate. */
  reasons: string[];
  activated: boolean | null;
  code: string | null;
  message: string | null;
  /** Serving throughput just before the job and while it ran (an agent's extra `serving` field), when reported. */
  serving: { fpsBefore: number | null; fpsDuring: number | null } | null;
  /** Peak memory of the job's process, MB (an agent's extra `peakRssMb` field), when reported. */
  peakRssMb: number | null;
  /** The message's own time stamp, ms. */
  ts: number;
  /** When the fleet received this state, ms. */
  receivedAt: number;
}

/**
 * Where pulling a job's adapted package stands, from the fleet's own records (not the device's message): `requested`
 * (the `adapt-upload` command is sent), `uploading` (the device accepted it), `failed` (the fleet refused the upload, or
 * the device could not send it: `code` and `message` say why), `expired` (the one-time URL expired unused) and `pulled`
 * (the package is in the registry: `package`, promoted or not). A job can be pulled again after `failed` or `expired`.
 */
export type AdaptPullState = 'requested' | 'uploading' | 'failed' | 'expired' | 'pulled';

/** A job's pull (`pull` of {@link AdaptJobInfo}): the latest upload asked for and the package it brought, if any. */
export interface AdaptPullInfo {
  state: AdaptPullState;
  /** The latest `adapt-upload` command sent for the job; null for a package whose upload record is gone. */
  commandId: string | null;
  /** When that pull was asked for, and when its upload URL expires (ms). */
  requestedAt: number | null;
  expiresAt: number | null;
  /** Why it failed: the fleet's refusal of the upload (`FLEET_PACKAGE_REFUSED`, …), else the device's error code. */
  code: string | null;
  message: string | null;
  /** The pulled package in the registry: signed by the device's key until promoted, by the fleet's after. */
  package: { name: string; version: string; sha256: string; keyId: string; promotedAt: number | null } | null;
}

/** An adaptation job as the fleet keeps it: its latest state, when the fleet first heard of it, and its pull. */
export interface AdaptJobInfo extends AdaptJobSnapshot {
  /** When the fleet first received a state of this job, ms. */
  firstSeenAt: number;
  /** Pulling its adapted package (issue 16); null when it was never pulled. */
  pull: AdaptPullInfo | null;
}

/** GET /api/devices/:id/adapt-jobs/:jobId: the job and every state received, oldest first. */
export interface AdaptJobDetail {
  job: AdaptJobInfo;
  history: AdaptJobSnapshot[];
}

const FINAL: ReadonlySet<string> = new Set(FINAL_ADAPT_STATES);

/** Whether an adaptation job state is final. */
export function isFinalAdaptState(state: string): boolean {
  return FINAL.has(state);
}

function finite(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function evaluation(e: AdaptMessage['holdout']): AdaptEvaluation | null {
  if (e === undefined) return null;
  const figures = (f: { map50: number; map: number } | undefined): AdaptFigures | null => (f === undefined ? null : { map50: f.map50, map: f.map });
  return { images: e.images ?? null, before: figures(e.before), after: figures(e.after) };
}

/** The extra `serving` figures an agent adds to its adapt message, read defensively (they are not in the schema). */
function serving(m: AdaptMessage): AdaptJobSnapshot['serving'] {
  const s = (m as { serving?: unknown }).serving;
  if (typeof s !== 'object' || s === null) return null;
  const o = s as { fpsBefore?: unknown; fpsDuring?: unknown };
  const out = { fpsBefore: finite(o.fpsBefore), fpsDuring: finite(o.fpsDuring) };
  return out.fpsBefore === null && out.fpsDuring === null ? null : out;
}

/** A validated adapt message, received at `receivedAt`, as the fleet shows it. */
export function adaptSnapshot(m: AdaptMessage, receivedAt: number): AdaptJobSnapshot {
  return {
    deviceId: m.deviceId,
    jobId: m.jobId,
    commandId: m.commandId,
    state: m.state,
    final: isFinalAdaptState(m.state),
    base: { name: m.base.name, version: m.base.version },
    teacher: m.teacher === undefined ? null : { name: m.teacher.name, version: m.teacher.version },
    version: m.version ?? null,
    progress: m.progress === undefined ? null : { done: m.progress.done, total: m.progress.total },
    frames: m.frames === undefined ? null : { used: m.frames.used, holdout: m.frames.holdout },
    epoch: m.epoch ?? null,
    epochs: m.epochs ?? null,
    losses: m.losses === undefined ? null : { ...m.losses },
    holdout: evaluation(m.holdout),
    val: evaluation(m.val),
    accepted: m.accepted ?? null,
    reasons: m.reasons === undefined ? [] : [...m.reasons],
    activated: m.activated ?? null,
    code: m.code ?? null,
    message: m.message ?? null,
    serving: serving(m),
    peakRssMb: finite((m as { peakRssMb?: unknown }).peakRssMb),
    ts: Date.parse(m.ts),
    receivedAt,
  };
}
