import { KdEdgeError } from '@kd-edge/core';

/** Stable codes of {@link TeacherError}. */
export type TeacherErrorCode =
  | 'DISTILL_INCOMPATIBLE'
  | 'DISTILL_TEACHER_NOT_FOUND'
  | 'DISTILL_TEACHER_FORMAT'
  | 'DISTILL_TEACHER_LAYOUT'
  | 'DISTILL_FEATURE_UNKNOWN'
  | 'DISTILL_FEATURES_UNSUPPORTED'
  | 'DISTILL_INPUT_MISMATCH'
  | 'DISTILL_RUNTIME';

/** A teacher that cannot be opened, run or paired with the student; `code` says which. */
export class TeacherError extends KdEdgeError {
  declare readonly code: TeacherErrorCode;
  constructor(code: TeacherErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
