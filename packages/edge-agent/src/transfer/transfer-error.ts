import { KdEdgeError } from '@kd-edge/core';

/** Stable codes of {@link TransferError}. */
export type TransferErrorCode =
  | 'TRANSFER_DISK_FULL'
  | 'TRANSFER_TOO_LARGE'
  | 'TRANSFER_HASH_MISMATCH'
  | 'TRANSFER_SIZE_MISMATCH'
  | 'TRANSFER_HTTP_STATUS'
  | 'TRANSFER_NETWORK'
  | 'TRANSFER_TIMEOUT'
  | 'TRANSFER_TLS'
  | 'TRANSFER_CHUNK_CORRUPT'
  | 'TRANSFER_ABORTED';

/**
 * A failed or refused artifact transfer; `status` is the HTTP status when one caused it, and
 * `retryAfterMs` the server's `Retry-After` when it gave one with a 429 or 503.
 */
export class TransferError extends KdEdgeError {
  override readonly code: TransferErrorCode;
  readonly status: number | undefined;
  readonly retryAfterMs: number | undefined;
  constructor(code: TransferErrorCode, message: string, options: { status?: number; retryAfterMs?: number; cause?: unknown } = {}) {
    super(code, message, { cause: options.cause });
    this.code = code;
    this.status = options.status;
    this.retryAfterMs = options.retryAfterMs;
  }
}
