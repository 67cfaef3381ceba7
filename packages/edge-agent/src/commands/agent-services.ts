import type { KeyObject } from 'node:crypto';
import type { DeployCommand, BenchMessage } from '@kd-edge/core';
import type { AgentConfig } from '../config/agent-config.js';
import type { LoadedModel } from '../model/loaded-model.js';
import type { ModelStore, StoredVersion } from '../store/model-store.js';
import type { CommandContext } from './command-context.js';

/** What the command handlers use of the agent; the Agent implements it (tests may too). */
export interface AgentServices {
  readonly config: AgentConfig;
  readonly deviceId: string;
  readonly store: ModelStore;
  /**
   * The teacher store (`<dataDir>/teachers`): teacher packages (manifest `role: "teacher"`) deployed to this device,
   * installed and verified like models but never served; `current()` is the latest one deployed.
   */
  readonly teachers: ModelStore;
  readonly trustedKeys: readonly KeyObject[];
  /** trtexec on this device, if any. */
  readonly trtexec: string | undefined;
  /** The GPU's name as read at start (nvidia-smi or the Jetson model), part of the engine cache key; undefined without one. */
  readonly gpuName: string | undefined;
  /** The model serving now. */
  active(): LoadedModel | undefined;
  /** Seconds since the agent started. */
  uptimeSec(): number;
  /** Brings the package tar to `dest` (HTTP with resume, or MQTT chunks), verified against the command's size and SHA-256. */
  fetchPackage(cmd: DeployCommand, dest: string, ctx: CommandContext): Promise<void>;
  /** Loads and warms up a stored version beside the serving one. */
  load(stored: StoredVersion, purpose?: 'deploy' | 'restore'): Promise<LoadedModel>;
  /** The simulator's rewrite of a benchmark report (identity on a real device). */
  transformBench(bench: BenchMessage): BenchMessage;
  /** Makes a loaded model the active one: the store's pointer, then the serving slot, then the status. */
  activate(loaded: LoadedModel, how: 'activate' | 'rollback'): Promise<void>;
  publishBench(msg: BenchMessage): Promise<void>;
  publishStatus(): Promise<void>;
}
