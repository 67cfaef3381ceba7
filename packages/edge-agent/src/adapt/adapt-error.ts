import { KdEdgeError } from '@kd-edge/core';

/**
 * Stable codes of {@link AdaptJobError}: `AGENT_ADAPT_*` refuse an `adapt` or `adapt-cancel` command at admission;
 * `ADAPT_*` end a job that started as `failed` (kd-trainer's own `ADAPT_*` and other codes pass through unchanged).
 */
export type AdaptJobErrorCode =
  /** The command names a `base` that is not the serving model. */
  | 'AGENT_ADAPT_BASE_MISMATCH'
  /** The serving package carries no trainable weights (manifest `weights`, a `.kdw`). */
  | 'AGENT_ADAPT_NO_WEIGHTS'
  /** No teacher: none named by the command, none configured, none deployed (or the one named is not installed). */
  | 'AGENT_ADAPT_NO_TEACHER'
  /** The teacher's classes are not the student's. */
  | 'AGENT_ADAPT_TEACHER_MISMATCH'
  /** Frame capture is off, or it holds fewer frames than `adapt.minFrames`. */
  | 'AGENT_ADAPT_TOO_FEW_FRAMES'
  /** Another job is running (one at a time). */
  | 'AGENT_ADAPT_BUSY'
  /** kd-trainer cannot be found. */
  | 'AGENT_ADAPT_UNAVAILABLE'
  /** The memory budget is below what the smallest batch needs. */
  | 'AGENT_ADAPT_MEMORY_TOO_SMALL'
  /** The data folder's free space less the job's estimate is under `limits.reserveDiskBytes`. */
  | 'AGENT_ADAPT_DISK'
  /** `adapt-cancel` or `adapt-upload` names a job this device does not know. */
  | 'AGENT_ADAPT_UNKNOWN_JOB'
  /** `adapt-upload` names a job that did not succeed, or whose adapted package the store no longer holds. */
  | 'AGENT_ADAPT_NO_PACKAGE'
  /** kd-trainer ended in a way that is not one of its exit codes (killed, crashed): the message has its stderr's tail. */
  | 'ADAPT_CHILD_FAILED'
  /** The job's processes took more resident memory than its budget and were stopped. */
  | 'ADAPT_MEMORY_BUDGET'
  /** The accepted model could not be packaged, verified or installed. */
  | 'ADAPT_PACKAGE_FAILED'
  /** The job's own record (agent-job.json) does not parse. */
  | 'ADAPT_JOB_CORRUPT';

/** A refused adaptation command, or a failed adaptation job; `code` says which (see {@link AdaptJobErrorCode}). */
export class AdaptJobError extends KdEdgeError {
  declare readonly code: AdaptJobErrorCode;
  constructor(code: AdaptJobErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
