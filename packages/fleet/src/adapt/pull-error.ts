import { KdEdgeError } from '@kd-edge/core/util';

/** Stable codes of {@link PullError}, with the HTTP status the API answers each with. */
export const PULL_ERROR_STATUS = {
  /** The `x-kd-sha256` header is missing, malformed, or not the hash of the bytes received. */
  FLEET_UPLOAD_SHA_MISMATCH: 400,
  /** No upload waits at this URL: the token was never issued. */
  FLEET_UPLOAD_NOT_FOUND: 404,
  /** The upload URL was used already (one upload per pull), or is being used right now. */
  FLEET_UPLOAD_USED: 409,
  /** The upload URL expired (`adaptUploadTtlMs`, default 1 h): pull again. */
  FLEET_UPLOAD_EXPIRED: 410,
  /** Pulling a job that has not succeeded (its state is named), or one without an adapted version. */
  FLEET_ADAPT_JOB_STATE: 409,
  /** Pulling from a device that is offline: the upload command would wait in the broker while its one-time URL expires. */
  FLEET_DEVICE_OFFLINE: 409,
  /** The device never reported a key, or reported another one that no operator accepted: nothing it signs is trusted. */
  FLEET_DEVICE_KEY_UNTRUSTED: 409,
  /** A rollout of an adapted package that was pulled but not promoted. */
  FLEET_PACKAGE_NOT_PROMOTED: 409,
  /** Promoting something that is not an unpromoted adapted package. */
  FLEET_PROMOTE_STATE: 409,
  /** Promoting without a fleet signing key (`--sign-key`), or with one whose public half is not trusted (`--trust`). */
  FLEET_PROMOTE_NO_KEY: 409,
} as const;

/** A code of {@link PullError}. */
export type PullErrorCode = keyof typeof PULL_ERROR_STATUS;

/** A refusal of pulling an adapted package from a device, of its upload, or of promoting it (issue 16). */
export class PullError extends KdEdgeError {
  declare readonly code: PullErrorCode;
  constructor(code: PullErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
