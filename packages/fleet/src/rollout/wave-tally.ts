import { IN_FLIGHT_EXECUTION_STATES, type ExecutionState } from './execution-state.js';
import type { WaveResults } from './rollout-types.js';

/** Count a wave's devices by outcome, and the failure codes among them. */
export function tallyWave(executions: readonly { state: ExecutionState; code: string | null }[]): WaveResults {
  const r: WaveResults = {
    total: executions.length, succeeded: 0, failed: 0, timedOut: 0, rolledBack: 0, inFlight: 0, queued: 0,
    successShare: 0, failureShare: 0, codes: {},
  };
  for (const e of executions) {
    if (e.state === 'succeeded') r.succeeded++;
    else if (e.state === 'failed') r.failed++;
    else if (e.state === 'timed_out') r.timedOut++;
    else if (e.state === 'rolled_back') r.rolledBack++;
    else if (e.state === 'queued') r.queued++;
    else if (IN_FLIGHT_EXECUTION_STATES.includes(e.state)) r.inFlight++;
    if (e.state !== 'succeeded' && e.code !== null) r.codes[e.code] = (r.codes[e.code] ?? 0) + 1;
  }
  if (r.total > 0) {
    r.successShare = r.succeeded / r.total;
    r.failureShare = (r.failed + r.timedOut + r.rolledBack) / r.total;
  }
  return r;
}

/** Whether every device of the wave has a final state. */
export function waveDone(results: WaveResults): boolean {
  return results.queued === 0 && results.inFlight === 0;
}
