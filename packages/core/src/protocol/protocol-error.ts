import { KdEdgeError } from '../errors.js';

/**
 * Every code a {@link ProtocolError} can carry: unreadable JSON (or an oversized payload), a message
 * that breaks its schema, an unknown protocol version, a topic outside the protocol, a corrupt
 * binary chunk frame, and a command signature that is missing, untrusted or wrong.
 */
export type ProtocolErrorCode =
  | 'PROTOCOL_JSON'
  | 'PROTOCOL_SCHEMA'
  | 'PROTOCOL_VERSION'
  | 'PROTOCOL_TOPIC'
  | 'PROTOCOL_FRAME'
  | 'PROTOCOL_SIGNATURE';

/** One schema problem: the JSON path (`package.sha256`, `detections[0].box`) and what was expected. */
export interface ProtocolIssue {
  field: string;
  message: string;
}

/** Details a {@link ProtocolError} may carry. */
export interface ProtocolErrorDetails {
  /** The JSON path at fault, relative to the message (`package.sha256`); `(root)` for the whole message. */
  field?: string;
  /** The offending value, when it is small and useful (the unknown `v`, the untrusted key id). */
  value?: unknown;
  /** Every schema problem found, first one first; the message names only the first. */
  issues?: readonly ProtocolIssue[];
  cause?: unknown;
}

/**
 * A protocol v1 message, topic or chunk frame was refused; `code` says which rule failed and the
 * message names the field, e.g. `deploy.package.sha256: expected 64 lower-case hex characters, got "abc"`.
 */
export class ProtocolError extends KdEdgeError {
  declare readonly code: ProtocolErrorCode;
  /** The JSON path at fault, when there is one. */
  readonly field?: string;
  /** The offending value, when useful (for PROTOCOL_VERSION, the `v` that was received). */
  readonly value?: unknown;
  /** Every schema problem found (PROTOCOL_SCHEMA); empty for the other codes. */
  readonly issues: readonly ProtocolIssue[];

  constructor(code: ProtocolErrorCode, message: string, details: ProtocolErrorDetails = {}) {
    super(code, message, details.cause === undefined ? undefined : { cause: details.cause });
    if (details.field !== undefined) this.field = details.field;
    if (details.value !== undefined) this.value = details.value;
    this.issues = details.issues ?? [];
  }
}
