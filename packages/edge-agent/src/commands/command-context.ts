import type { EventState } from '@kd-edge/core';

/** Fields an event adds to the state: progress, an error code and message, a result. */
export interface EventExtra {
  progress?: { bytes: number; total: number };
  code?: string;
  message?: string;
  result?: Record<string, unknown>;
}

/** What a command handler is given: where its events go, and a signal that stops it when the agent stops. */
export interface CommandContext {
  /** Publishes (or queues) an event of this command and records it in the ledger. */
  event(state: EventState, extra?: EventExtra): Promise<void>;
  signal: AbortSignal;
  /** The last event recorded for this command before a restart cut it short; undefined on a first run. */
  resumedFrom?: Record<string, unknown>;
}
