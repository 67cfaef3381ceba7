import { KdEdgeError } from '@kd-edge/core';

/** Stable codes of {@link AdaptError}. */
export type AdaptErrorCode =
  /** A `--frames` folder or list that does not exist. */
  | 'ADAPT_FRAMES_NOT_FOUND'
  /** A `--replay` folder or list that does not exist, or that holds no usable image. */
  | 'ADAPT_REPLAY_NOT_FOUND'
  /** Fewer usable frames than `--min-frames`, or a hold-out or adaptation split left empty. */
  | 'ADAPT_TOO_FEW_FRAMES'
  /** The job folder was started with another teacher, student, seed, hold-out share, pseudo-label threshold, image size or replay images. */
  | 'ADAPT_JOB_MISMATCH'
  /** `--weights` is not a kd-trainer detector (.kdw). */
  | 'ADAPT_WEIGHTS_FORMAT'
  /** Another live process holds the job folder's lock (`<JOBDIR>/lock`): one process per job. */
  | 'ADAPT_JOB_LOCKED';

/** An adaptation job that cannot start or go on; `code` says why. */
export class AdaptError extends KdEdgeError {
  declare readonly code: AdaptErrorCode;
  constructor(code: AdaptErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
