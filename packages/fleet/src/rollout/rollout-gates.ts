import type { BenchMessage } from '@kd-edge/core/protocol';
import type { RolloutGates } from './rollout-spec.js';

/** Codes of a gate a device's bench report did not pass. */
export type GateCode = 'GATE_P95' | 'GATE_FPS' | 'GATE_MAP50';

/** The first gate `bench` violates, with a message for the operator, or undefined when it passes them all. */
export function gateViolation(bench: Pick<BenchMessage, 'latencyMs' | 'throughputFps' | 'accuracy'>, gates: RolloutGates): { code: GateCode; message: string } | undefined {
  if (gates.maxP95Ms !== undefined && !(bench.latencyMs.p95 <= gates.maxP95Ms)) {
    return { code: 'GATE_P95', message: `p95 latency ${bench.latencyMs.p95} ms is over the rollout's ${gates.maxP95Ms} ms` };
  }
  if (gates.minFps !== undefined && !(bench.throughputFps >= gates.minFps)) {
    return { code: 'GATE_FPS', message: `throughput ${bench.throughputFps} fps is under the rollout's ${gates.minFps} fps` };
  }
  if (gates.minMap50 !== undefined) {
    // The device skips this gate when it cannot measure accuracy; the fleet does not take that on trust.
    if (bench.accuracy === undefined) {
      return { code: 'GATE_MAP50', message: `the bench report has no on-device accuracy (does the package have a val/ set?); the rollout needs mAP50 >= ${gates.minMap50}` };
    }
    if (!(bench.accuracy.map50 >= gates.minMap50)) {
      return { code: 'GATE_MAP50', message: `on-device mAP50 ${bench.accuracy.map50} is under the rollout's ${gates.minMap50}` };
    }
  }
  return undefined;
}

/** Whether any gate is set. */
export function hasGates(gates: RolloutGates): boolean {
  return gates.maxP95Ms !== undefined || gates.minFps !== undefined || gates.minMap50 !== undefined;
}
