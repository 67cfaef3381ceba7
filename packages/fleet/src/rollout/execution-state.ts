/**
 * The states of one device in a rollout, in order: the fleet queues it, sends the deploy, follows the
 * device's events, and ends in one of the last four. `rolled_back` is reached only through a rollback the
 * fleet sent (after an abort or a fleet-side gate failure).
 */
export const EXECUTION_STATES = [
  'queued', 'sent', 'accepted', 'downloading', 'verifying', 'activating', 'benchmarking',
  'succeeded', 'failed', 'timed_out', 'rolled_back',
] as const;
/** A device's state in a rollout. */
export type ExecutionState = (typeof EXECUTION_STATES)[number];

/** The states a device stays in once reached (except that a fleet rollback moves any of them to `rolled_back`). */
export const FINAL_EXECUTION_STATES: readonly ExecutionState[] = ['succeeded', 'failed', 'timed_out', 'rolled_back'];

/** The states that count against a wave: the device did not end up running the package as the fleet wants. */
export const FAILED_EXECUTION_STATES: readonly ExecutionState[] = ['failed', 'timed_out', 'rolled_back'];

/** The states of a deploy the device has been told about and has not finished. */
export const IN_FLIGHT_EXECUTION_STATES: readonly ExecutionState[] = ['sent', 'accepted', 'downloading', 'verifying', 'activating', 'benchmarking'];

/** Whether `state` is final. */
export function isFinalExecutionState(state: ExecutionState): boolean {
  return FINAL_EXECUTION_STATES.includes(state);
}

/** Order of progress: events that do not raise it are duplicates or arrived out of order. All final states rank equal. */
export function executionRank(state: ExecutionState | string): number {
  const i = (EXECUTION_STATES as readonly string[]).indexOf(state);
  if (i < 0) return -1;
  return Math.min(i, EXECUTION_STATES.indexOf('succeeded'));
}
