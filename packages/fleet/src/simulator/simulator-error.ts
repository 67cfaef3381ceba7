import { KdEdgeError } from '@kd-edge/core/util';

/** Stable codes of {@link SimulatorError}. */
export type SimulatorErrorCode =
  | 'FLEET_SIM_AGENT_START'
  | 'FLEET_SIM_ONLINE_TIMEOUT'
  | 'FLEET_SIM_UNKNOWN_DEVICE'
  | 'FLEET_SIM_NOT_KILLABLE'
  | 'FLEET_SIM_CHILD'
  | 'FLEET_SIM_STOPPED';

/** A fleet simulator failure: an agent that would not start, a child process that died, a device it does not run. */
export class SimulatorError extends KdEdgeError {
  declare readonly code: SimulatorErrorCode;

  constructor(code: SimulatorErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
