import { KdEdgeError } from '@kd-edge/core/util';

/** Stable codes of {@link AdaptError}. */
export type AdaptErrorCode =
  /** A request the adaptation API refuses; `field` names the part at fault (`recipe.epochs`). */
  | 'FLEET_BAD_REQUEST'
  /** A package used in a role it does not have: a serving model pushed as a teacher, or a model named as a job's teacher. */
  | 'FLEET_PACKAGE_ROLE'
  /** A rollout of a teacher package: teachers are never served, so they are pushed to devices, not rolled out. */
  | 'FLEET_ROLLOUT_TEACHER'
  /** No adaptation job of that id on that device. */
  | 'FLEET_ADAPT_JOB_NOT_FOUND';

/** A refusal of kd-fleet's on-device adaptation side: teacher packages, adapt commands and the job records. */
export class AdaptError extends KdEdgeError {
  declare readonly code: AdaptErrorCode;
  /** The request field at fault, when there is one (`recipe.epochs`, `teacher.version`). */
  readonly field: string | undefined;
  constructor(code: AdaptErrorCode, message: string, options: { field?: string; cause?: unknown } = {}) {
    super(code, message, { cause: options.cause });
    this.field = options.field;
  }
}
