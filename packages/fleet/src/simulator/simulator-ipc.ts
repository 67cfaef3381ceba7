import type { SimDeviceSpec } from './device-plan.js';
import type { AgentPoolOptions, SimBench } from './agent-pool.js';

/** Parent → child messages of a multi-process simulator (JSON over the fork IPC channel). */
export type ParentMessage =
  | { type: 'start'; options: AgentPoolOptions; specs: SimDeviceSpec[]; logLevel: SimLogLevel }
  | { type: 'kill' | 'restart'; deviceId: string; requestId: number }
  | { type: 'stop' };

/** Child → parent messages of a multi-process simulator. */
export type ChildMessage =
  | { type: 'started' }
  | { type: 'online'; deviceId: string }
  | { type: 'bench'; bench: SimBench }
  | { type: 'agentError'; deviceId: string; message: string; code?: string }
  | { type: 'done'; requestId: number; error?: { message: string; code?: string } }
  | { type: 'log'; level: SimLogLevel; message: string }
  | { type: 'failed'; message: string; code?: string }
  | { type: 'stopped' };

/** The log levels a child forwards to the parent's logger. */
export type SimLogLevel = 'debug' | 'info' | 'warn' | 'error' | 'none';
