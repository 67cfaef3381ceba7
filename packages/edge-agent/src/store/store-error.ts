import { KdEdgeError } from '@kd-edge/core';

/** Stable codes of {@link StoreError}. */
export type StoreErrorCode =
  | 'STORE_INVALID_INFO'
  | 'STORE_STAGING_INVALID'
  | 'STORE_INFO_MISMATCH'
  | 'STORE_CROSS_DEVICE'
  | 'STORE_CONFLICT'
  | 'STORE_NOT_INSTALLED'
  | 'STORE_NO_PREVIOUS';

/** A refusal or failure of the model store; `key` names the version concerned when there is one. */
export class StoreError extends KdEdgeError {
  override readonly code: StoreErrorCode;
  readonly key: string | undefined;
  constructor(code: StoreErrorCode, message: string, options: { key?: string; cause?: unknown } = {}) {
    super(code, message, { cause: options.cause });
    this.code = code;
    this.key = options.key;
  }
}
