import type { BenchMessage } from '@kd-edge/core/protocol';
import type { ExecutionState } from './execution-state.js';
import type { RolloutSpec } from './rollout-spec.js';

/** The states of a rollout; the last three are final. */
export const ROLLOUT_STATES = ['running', 'paused', 'awaiting_approval', 'succeeded', 'aborted', 'failed'] as const;
/** A rollout's state. */
export type RolloutState = (typeof ROLLOUT_STATES)[number];
/** The rollout states in which the engine still acts (sends, times out, waits for the operator). */
export const ACTIVE_ROLLOUT_STATES: readonly RolloutState[] = ['running', 'paused', 'awaiting_approval'];

/** The states of a wave: planned, under way, and how it ended. */
export const WAVE_STATES = ['pending', 'running', 'passed', 'below_threshold', 'aborted'] as const;
/** A wave's state. */
export type WaveState = (typeof WAVE_STATES)[number];

/** A rollout as stored. */
export interface RolloutInfo {
  id: string;
  package: { name: string; version: string; sha256: string };
  spec: RolloutSpec;
  state: RolloutState;
  createdAt: number;
  updatedAt: number;
  /** Index of the wave under way (or the last one, once the rollout has ended). */
  currentWave: number;
  waveCount: number;
  /** Why the rollout is paused, waiting, aborted or failed. */
  reason: string | null;
}

/** A wave's tally, computed when the wave ends (and on abort). */
export interface WaveResults {
  total: number;
  succeeded: number;
  failed: number;
  timedOut: number;
  rolledBack: number;
  inFlight: number;
  queued: number;
  /** succeeded / total. */
  successShare: number;
  /** (failed + timedOut + rolledBack) / total. */
  failureShare: number;
  /** How many devices failed with each code (`GATE_P95`, `AGENT_INJECTED_FAULT`, `FLEET_DEVICE_TIMEOUT`…). */
  codes: Record<string, number>;
}

/** A planned wave of a rollout. */
export interface WaveInfo {
  rolloutId: string;
  index: number;
  deviceIds: string[];
  state: WaveState;
  startedAt: number | null;
  endedAt: number | null;
  results: WaveResults | null;
}

/** One device in one rollout: the fleet's verdict, what the device last said, and the rollback if one was sent. */
export interface ExecutionInfo {
  rolloutId: string;
  deviceId: string;
  wave: number;
  state: ExecutionState;
  /** The deploy command's id, `ro-{rolloutId}-{deviceId}`. */
  commandId: string;
  sentAt: number | null;
  updatedAt: number;
  code: string | null;
  message: string | null;
  /** The device's bench report for the deploy (the first one; it is the one the gates judge). */
  bench: BenchMessage | null;
  /** The last state the device reported for the deploy, which may differ from the verdict (a late answer after a time-out). */
  deviceState: string | null;
  rollback: { commandId: string; state: 'queued' | 'sent' | 'rolled_back' | 'failed'; sentAt: number | null; code: string | null } | null;
}
