import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Logger } from '@kd-edge/core/util';
import type { AgentPoolEvents, AgentPoolOptions } from './agent-pool.js';
import type { SimDeviceSpec } from './device-plan.js';
import type { ChildMessage, ParentMessage, SimLogLevel } from './simulator-ipc.js';
import { SimulatorError } from './simulator-error.js';

/** Events of a {@link ChildHost}: its pool's, plus the child ending when nobody asked it to. */
export interface ChildHostEvents extends AgentPoolEvents {
  exit: [code: number | null, signal: NodeJS.Signals | null];
}

/** Options of {@link ChildHost}. */
export interface ChildHostOptions {
  /** The child entry (default: simulator-child next to this module, in src/ or a tsup dist/). */
  entry?: string;
  /** Node flags of the child (default the parent's `process.execArgv`, plus a TypeScript loader for a .ts entry). */
  execArgv?: string[];
  logger?: Logger;
  logLevel?: SimLogLevel;
  /** How long stop() waits for the child to end before SIGKILL. */
  stopTimeoutMs?: number;
}

const STDERR_TAIL = 4096;

/**
 * One simulator child process running a share of the agents: forks the child entry with the parent's node flags,
 * hands it its devices, relays kill/restart, forwards its agents' events, and ends it on stop().
 */
export class ChildHost extends EventEmitter<ChildHostEvents> {
  #child: ChildProcess | undefined;
  #stderr = '';
  #requests = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  #nextRequest = 1;
  #exited: Promise<void> | undefined;
  #stopping = false;

  constructor(
    private readonly poolOptions: AgentPoolOptions,
    readonly specs: readonly SimDeviceSpec[],
    private readonly options: ChildHostOptions = {},
  ) {
    super();
  }

  /** The child's process id, once forked. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Forks the child and resolves when it has started all its agents. */
  async start(): Promise<void> {
    const entry = this.options.entry ?? resolveChildEntry();
    const child = fork(entry, [], {
      execArgv: childExecArgv(entry, this.options.execArgv ?? process.execArgv),
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'json',
    });
    this.#child = child;
    child.stderr?.on('data', (chunk: Buffer) => {
      this.#stderr = (this.#stderr + chunk.toString('utf8')).slice(-STDERR_TAIL);
    });
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const started = new Promise<void>((resolve, reject) => {
      child.on('message', (msg: ChildMessage) => {
        if (msg.type === 'started') resolve();
        else if (msg.type === 'failed') reject(new SimulatorError('FLEET_SIM_AGENT_START', msg.message));
        else this.#onMessage(msg);
      });
      child.once('exit', (code, signal) => {
        const err = new SimulatorError('FLEET_SIM_CHILD', `simulator child ${String(child.pid)} ended (${signal ?? `code ${String(code)}`})${this.#stderr ? `: ${this.#stderr.trim()}` : ''}`);
        reject(err);
        for (const r of this.#requests.values()) r.reject(err);
        this.#requests.clear();
        if (!this.#stopping) this.emit('exit', code, signal);
      });
      child.once('error', reject);
    });
    this.#send({ type: 'start', options: this.poolOptions, specs: [...this.specs], logLevel: this.options.logLevel ?? (this.options.logger ? 'info' : 'none') });
    await started;
  }

  /** Kills one of this child's devices (see AgentPool.kill). */
  kill(deviceId: string): Promise<void> {
    return this.#request('kill', deviceId);
  }

  /** Restarts one of this child's killed devices. */
  restart(deviceId: string): Promise<void> {
    return this.#request('restart', deviceId);
  }

  /** Asks the child to stop its agents cleanly and waits for it to end (SIGKILL after the timeout). */
  async stop(): Promise<void> {
    const child = this.#child;
    // Not forked at all (spawn error), or already ended: nothing to wait for.
    if (child === undefined || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    this.#stopping = true;
    this.#send({ type: 'stop' });
    const timer = setTimeout(() => child.kill('SIGKILL'), this.options.stopTimeoutMs ?? 30_000);
    await this.#exited;
    clearTimeout(timer);
  }

  #request(type: 'kill' | 'restart', deviceId: string): Promise<void> {
    const requestId = this.#nextRequest++;
    return new Promise<void>((resolve, reject) => {
      this.#requests.set(requestId, { resolve, reject });
      this.#send({ type, deviceId, requestId });
    });
  }

  #send(message: ParentMessage): void {
    if (this.#child?.connected) this.#child.send(message);
  }

  #onMessage(msg: ChildMessage): void {
    const log = this.options.logger;
    switch (msg.type) {
      case 'online':
        this.emit('online', msg.deviceId);
        return;
      case 'bench':
        this.emit('bench', msg.bench);
        return;
      case 'agentError':
        this.emit('agentError', msg.deviceId, Object.assign(new Error(msg.message), msg.code === undefined ? {} : { code: msg.code }));
        return;
      case 'done': {
        const r = this.#requests.get(msg.requestId);
        this.#requests.delete(msg.requestId);
        if (msg.error === undefined) r?.resolve();
        else r?.reject(Object.assign(new SimulatorError('FLEET_SIM_CHILD', msg.error.message), msg.error.code === undefined ? {} : { code: msg.error.code }));
        return;
      }
      case 'log':
        if (log && msg.level !== 'none') log[msg.level](msg.message);
        return;
      default:
        return;
    }
  }
}

/** Finds simulator-child next to this module: src/simulator/*.ts when run from source, dist/… when bundled by tsup. */
export function resolveChildEntry(from: string = import.meta.url): string {
  const candidates = ['./simulator-child.js', './simulator-child.ts', './simulator/simulator-child.js', '../simulator/simulator-child.js'];
  for (const c of candidates) {
    const file = fileURLToPath(new URL(c, from));
    if (existsSync(file)) return file;
  }
  throw new SimulatorError('FLEET_SIM_CHILD', `simulator-child not found next to ${fileURLToPath(from)} (build it as a tsup entry: src/simulator/simulator-child.ts)`);
}

/**
 * The child's node flags: the parent's, and for a TypeScript entry the tsx loader and the `source` export condition
 * (so workspace packages resolve to their src/) when the parent did not have them already.
 */
export function childExecArgv(entry: string, parent: readonly string[]): string[] {
  const args = [...parent];
  if (!entry.endsWith('.ts')) return args;
  if (!args.some((a) => a.includes('tsx'))) {
    const loader = createRequire(import.meta.url).resolve('tsx');
    args.unshift('--import', pathToFileURL(loader).href);
  }
  const hasSource = args.some((a, i) => a === '--conditions=source' || a === '-C=source' || ((a === '--conditions' || a === '-C') && args[i + 1] === 'source'));
  if (!hasSource) args.push('--conditions=source');
  return args;
}
