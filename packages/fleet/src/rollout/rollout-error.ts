import { KdEdgeError } from '@kd-edge/core/util';

/** Stable codes of {@link RolloutError}. */
export type RolloutErrorCode =
  | 'FLEET_ROLLOUT_SPEC'
  | 'FLEET_ROLLOUT_NO_TARGETS'
  | 'FLEET_ROLLOUT_CONFLICT'
  | 'FLEET_ROLLOUT_NOT_FOUND'
  | 'FLEET_ROLLOUT_STATE';

/**
 * A refusal of the rollout engine: a spec that does not validate (`field` names the offending path), an
 * unknown rollout, or an operator action that the rollout's state does not allow.
 */
export class RolloutError extends KdEdgeError {
  override readonly code: RolloutErrorCode;
  /** The spec path at fault (`waves.percents[1]`) for `FLEET_ROLLOUT_SPEC`. */
  readonly field: string | undefined;
  /** The rollout concerned, when there is one. */
  readonly rolloutId: string | undefined;
  constructor(code: RolloutErrorCode, message: string, options: { field?: string; rolloutId?: string; cause?: unknown } = {}) {
    super(code, message, { cause: options.cause });
    this.code = code;
    this.field = options.field;
    this.rolloutId = options.rolloutId;
  }
}
