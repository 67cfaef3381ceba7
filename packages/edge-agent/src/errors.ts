import { KdEdgeError } from '@kd-edge/core';

/**
 * Stable codes of the agent's own refusals and failures, reported in `failed` events. Store,
 * transfer, runtime and serving errors keep their own codes (STORE_*, TRANSFER_*, RUNTIME_*, SERVE_*).
 */
export type AgentErrorCode =
  | 'AGENT_CONFIG_INVALID'
  | 'AGENT_DEVICE_KEY_INVALID'
  | 'AGENT_WRONG_DEVICE'
  | 'AGENT_PACKAGE_TOO_LARGE'
  | 'AGENT_MANIFEST_MISMATCH'
  | 'AGENT_DOWNGRADE_REFUSED'
  | 'AGENT_NO_ACTIVE_MODEL'
  | 'AGENT_NO_PREVIOUS_MODEL'
  | 'AGENT_ROLLBACK_STALE'
  | 'AGENT_GATE_LATENCY'
  | 'AGENT_GATE_FPS'
  | 'AGENT_GATE_ACCURACY'
  | 'AGENT_LOAD_FAILED'
  | 'AGENT_TEACHER_INVALID'
  | 'AGENT_INJECTED_FAULT'
  | 'AGENT_INTERNAL';

/** An error of kd-agent with a stable {@link AgentErrorCode}. */
export class AgentError extends KdEdgeError {
  declare readonly code: AgentErrorCode;
  constructor(code: AgentErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** The code of any kd-edge error, or AGENT_INTERNAL for anything else (a bug, reported not thrown). */
export function errorCode(err: unknown): string {
  return err instanceof KdEdgeError ? err.code : 'AGENT_INTERNAL';
}
