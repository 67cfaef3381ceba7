import { EventEmitter } from 'node:events';
import { silentLogger, type Logger } from '@kd-edge/core';
import { resolveBackoffOptions, type BackoffOptions } from '../../mqtt/backoff.js';
import type { HelloReply, LoadedReply, ResultReply } from './protocol.js';
import { describeExit, RunnerClient, type InferRequest, type RequestOptions, type RunnerClientOptions, type RunnerExit } from './runner-client.js';
import { TrtRunnerError, type TrtRunnerErrorCode } from './trt-runner-error.js';

/** Options of {@link RunnerSupervisor}. */
export interface RunnerSupervisorOptions extends RunnerClientOptions {
  /** The runner's argv: executable, then arguments (no shell). */
  command: readonly string[];
  /** This many crashes within {@link crashWindowMs} and the supervisor gives up (default 3). */
  maxCrashes?: number;
  /** Window of the crash count in milliseconds (default 10 minutes). */
  crashWindowMs?: number;
  /** Delay before restart n (n = crashes in the window): `baseMs * factor^(n-1)`, at most `maxMs` (default 500 ms, ×2, 30 s). */
  backoff?: BackoffOptions;
  /** How often a request is sent again after the runner died under it (default 1; inference is idempotent). */
  retries?: number;
  /**
   * How long a request waits for a runner that is starting or restarting (default the handshake timeout plus the
   * longest backoff delay); the request's own timeout starts once it is sent.
   */
  readyTimeoutMs?: number;
  /** Clock for the crash window (default Date.now). */
  now?: () => number;
}

/** Where a supervisor is. */
export type RunnerSupervisorState = 'idle' | 'starting' | 'ready' | 'restarting' | 'failed' | 'closed';

/** One crash (or failed start) of the runner. */
export interface RunnerCrash {
  /** {@link RunnerSupervisorOptions.now} at the crash. */
  at: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  reason?: string;
  stderrTail: string;
}

/** The supervisor gave up: serve with ONNX Runtime. */
export interface RunnerFallback {
  code: 'TRT_RUNNER_GAVE_UP';
  /** One sentence naming why, for events and logs. */
  reason: string;
  crashes: RunnerCrash[];
}

/** Events of a {@link RunnerSupervisor}. */
export interface RunnerSupervisorEvents {
  /** A runner is up (first start or restart) and every engine it should hold is loaded again. */
  ready: [{ pid: number | undefined; hello: HelloReply; restarts: number; reloaded: string[] }];
  /** The runner crashed or failed to start; `restartInMs` is undefined when the supervisor gives up instead. */
  crash: [{ crash: RunnerCrash; crashesInWindow: number; restartInMs: number | undefined }];
  /** An engine could not be loaded again after a restart; requests on it fail with TRT_RUNNER_NO_ENGINE. */
  reloadError: [{ engine: string; path: string; error: Error }];
  /** Repeated crashes: the supervisor stopped restarting. The caller should serve with ONNX Runtime. */
  fallback: [RunnerFallback];
}

const RESTARTABLE: readonly TrtRunnerErrorCode[] = ['TRT_RUNNER_EXITED', 'TRT_RUNNER_TIMEOUT', 'TRT_RUNNER_PROTOCOL'];

interface Waiter {
  resolve: (client: RunnerClient) => void;
  reject: (e: Error) => void;
}

/**
 * Keeps one runner process alive: starts it, reloads its engines after a crash and restarts it with backoff, and
 * after `maxCrashes` crashes within `crashWindowMs` gives up with a `fallback` event naming why. Requests wait
 * while a restart is under way and an inference the crash interrupted is sent again (inference is idempotent).
 * @example
 * const sup = new RunnerSupervisor({ command: ['/opt/kd/kd-trt-runner'] });
 * sup.on('fallback', ({ reason }) => serveWithOnnxRuntime(reason));
 * await sup.start();
 */
export class RunnerSupervisor extends EventEmitter<RunnerSupervisorEvents> {
  readonly #options: RunnerSupervisorOptions;
  readonly #log: Logger;
  readonly #maxCrashes: number;
  readonly #windowMs: number;
  readonly #backoff: Required<BackoffOptions>;
  readonly #retries: number;
  readonly #now: () => number;
  readonly #readyTimeoutMs: number;
  /** Engines to hold, by key, in load order: reloaded after every restart. */
  readonly #engines = new Map<string, string>();
  #state: RunnerSupervisorState = 'idle';
  #client: RunnerClient | undefined;
  #crashes: RunnerCrash[] = [];
  #allCrashes = 0;
  #restarts = 0;
  #timer: NodeJS.Timeout | undefined;
  #waiters: Waiter[] = [];
  #fallback: RunnerFallback | undefined;

  constructor(options: RunnerSupervisorOptions) {
    super();
    if (!Array.isArray(options?.command) || options.command.length === 0) throw new TypeError('command must be a non-empty argv array');
    this.#options = options;
    this.#log = options.logger ?? silentLogger;
    this.#maxCrashes = options.maxCrashes ?? 3;
    if (!Number.isInteger(this.#maxCrashes) || this.#maxCrashes < 1) throw new RangeError(`maxCrashes must be an integer >= 1, got ${options.maxCrashes}`);
    this.#windowMs = options.crashWindowMs ?? 600_000;
    if (!(this.#windowMs > 0)) throw new RangeError(`crashWindowMs must be > 0, got ${options.crashWindowMs}`);
    this.#backoff = resolveBackoffOptions({ baseMs: 500, maxMs: 30_000, factor: 2, ...options.backoff });
    this.#retries = options.retries ?? 1;
    if (!Number.isInteger(this.#retries) || this.#retries < 0) throw new RangeError(`retries must be an integer >= 0, got ${options.retries}`);
    this.#now = options.now ?? Date.now;
    this.#readyTimeoutMs = options.readyTimeoutMs ?? (options.handshakeTimeoutMs ?? 30_000) + this.#backoff.maxMs;
  }

  /** Where the supervisor is. */
  get state(): RunnerSupervisorState {
    return this.#state;
  }

  /** The runner's `hello`, while one is up. */
  get hello(): HelloReply | undefined {
    return this.#state === 'ready' ? this.#client?.hello : undefined;
  }

  /** The current runner's process id, while one is up. */
  get pid(): number | undefined {
    return this.#state === 'ready' ? this.#client?.pid : undefined;
  }

  /** Crashes (and failed starts) so far, in or out of the window. */
  get crashCount(): number {
    return this.#allCrashes;
  }

  /** Restarts so far. */
  get restarts(): number {
    return this.#restarts;
  }

  /** Why the supervisor gave up, once it has. */
  get fallback(): RunnerFallback | undefined {
    return this.#fallback;
  }

  /** Starts the runner; resolves when it is ready, rejects with TRT_RUNNER_GAVE_UP if it never gets there. */
  async start(): Promise<void> {
    if (this.#state === 'idle') {
      this.#state = 'starting';
      void this.#spawn();
    }
    await this.#whenReady(Infinity);
  }

  /**
   * Loads an engine under `engine` (replacing what that key held) and keeps it loaded across restarts. Throws the
   * runner's error (TRT_RUNNER_LOAD_FAILED, …), TRT_RUNNER_GAVE_UP or TRT_RUNNER_CLOSED.
   */
  async load(engine: string, path: string, options: RequestOptions = {}): Promise<LoadedReply> {
    const reply = await this.#withRetry((c) => c.load(engine, path, options));
    this.#engines.delete(engine);
    this.#engines.set(engine, path);
    return reply;
  }

  /** Frees an engine and forgets it (a later restart does not load it again). */
  async unload(engine: string, options: RequestOptions = {}): Promise<void> {
    if (!this.#engines.delete(engine)) return;
    if (this.#state !== 'ready' || this.#client === undefined) return;
    try {
      await this.#client.unload(engine, options);
    } catch (e) {
      // A runner that died meanwhile holds nothing; one that never had it has nothing to free.
      const code = (e as TrtRunnerError).code;
      if (!RESTARTABLE.includes(code) && code !== 'TRT_RUNNER_NO_ENGINE') throw e;
    }
  }

  /** Runs one inference, waiting for a restart in progress and retrying once if the runner dies under it. */
  infer(request: InferRequest, options: RequestOptions = {}): Promise<ResultReply> {
    return this.#withRetry((c) => c.infer(request, options));
  }

  /** Stops the runner and refuses further requests. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearTimeout(this.#timer);
    this.#rejectWaiters(new TrtRunnerError('TRT_RUNNER_CLOSED', 'the runner supervisor is closed'));
    const client = this.#client;
    this.#client = undefined;
    if (client !== undefined) await client.close();
  }

  async #withRetry<T>(fn: (client: RunnerClient) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const client = await this.#whenReady(this.#readyTimeoutMs);
      try {
        return await fn(client);
      } catch (e) {
        const code = (e as TrtRunnerError).code;
        if (attempt >= this.#retries || !RESTARTABLE.includes(code) || this.#state === 'closed' || this.#state === 'failed') throw e;
        this.#log.warn(`trt-runner: ${(e as Error).message.split('\n')[0]}; sending it again after the restart`);
      }
    }
  }

  #whenReady(timeoutMs: number): Promise<RunnerClient> {
    if (this.#state === 'ready' && this.#client !== undefined && this.#client.usable) return Promise.resolve(this.#client);
    if (this.#state === 'failed') return Promise.reject(this.#gaveUpError());
    if (this.#state === 'closed') return Promise.reject(new TrtRunnerError('TRT_RUNNER_CLOSED', 'the runner supervisor is closed'));
    if (this.#state === 'idle') return Promise.reject(new TrtRunnerError('TRT_RUNNER_CLOSED', 'the runner supervisor has not been started'));
    return new Promise<RunnerClient>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter: Waiter = {
        resolve: (c) => {
          clearTimeout(timer);
          resolve(c);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      if (Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          reject(new TrtRunnerError('TRT_RUNNER_TIMEOUT', `the runner was not ready within ${timeoutMs} ms (state ${this.#state})`));
        }, timeoutMs);
      }
      this.#waiters.push(waiter);
    });
  }

  async #spawn(): Promise<void> {
    let client: RunnerClient;
    try {
      client = await RunnerClient.start(this.#options.command, this.#options);
    } catch (e) {
      const err = e as TrtRunnerError;
      this.#onCrash({ at: this.#now(), code: null, signal: null, reason: err.message.split('\n')[0], stderrTail: err.stderrTail ?? '' });
      return;
    }
    if (this.#state === 'closed' || this.#state === 'failed') {
      await client.close();
      return;
    }
    this.#client = client;
    client.once('exit', (exit) => {
      if (this.#client === client) this.#client = undefined;
      if (!exit.expected && this.#state !== 'closed' && this.#state !== 'failed') this.#onCrash(toCrash(exit, this.#now()));
    });
    const reloaded: string[] = [];
    for (const [engine, path] of [...this.#engines]) {
      try {
        await client.load(engine, path);
        reloaded.push(engine);
      } catch (e) {
        if (!client.usable) return; // its exit handler restarts it
        this.#engines.delete(engine);
        this.#log.error(`trt-runner: engine '${engine}' (${path}) did not load again after a restart: ${(e as Error).message}`);
        this.emit('reloadError', { engine, path, error: e as Error });
      }
    }
    if (!client.usable || this.#client !== client) return;
    const restarts = this.#restarts;
    this.#state = 'ready';
    this.emit('ready', { pid: client.pid, hello: client.hello, restarts, reloaded });
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.resolve(client);
  }

  #onCrash(crash: RunnerCrash): void {
    if (this.#state === 'closed' || this.#state === 'failed') return;
    this.#allCrashes++;
    this.#crashes = [...this.#crashes.filter((c) => crash.at - c.at < this.#windowMs), crash];
    const n = this.#crashes.length;
    if (n >= this.#maxCrashes) {
      this.emit('crash', { crash, crashesInWindow: n, restartInMs: undefined });
      this.#giveUp();
      return;
    }
    const { baseMs, factor, maxMs } = this.#backoff;
    const delay = Math.min(maxMs, baseMs * factor ** (n - 1));
    this.#log.warn(`trt-runner: ${describeExit(crash)}; restart ${this.#restarts + 1} in ${delay} ms (${n} of ${this.#maxCrashes} crashes in the window)`);
    this.#state = 'restarting';
    this.emit('crash', { crash, crashesInWindow: n, restartInMs: delay });
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      if (this.#state !== 'restarting') return;
      this.#restarts++;
      void this.#spawn();
    }, delay);
  }

  #giveUp(): void {
    const last = this.#crashes[this.#crashes.length - 1]!;
    const tail = last.stderrTail.split('\n').filter((l) => l !== '').slice(-3).join(' | ');
    const reason =
      `the TensorRT runner crashed ${this.#crashes.length} times within ${Math.round(this.#windowMs / 1000)} s ` +
      `(last: ${describeExit(last)}${tail ? `; stderr: ${tail}` : ''}); serve with ONNX Runtime`;
    this.#fallback = { code: 'TRT_RUNNER_GAVE_UP', reason, crashes: [...this.#crashes] };
    this.#state = 'failed';
    clearTimeout(this.#timer);
    this.#client?.kill();
    this.#client = undefined;
    this.#log.error(`trt-runner: giving up: ${reason}`);
    this.#rejectWaiters(this.#gaveUpError());
    this.emit('fallback', this.#fallback);
  }

  #gaveUpError(): TrtRunnerError {
    return new TrtRunnerError('TRT_RUNNER_GAVE_UP', this.#fallback?.reason ?? 'the TensorRT runner supervisor gave up');
  }

  #rejectWaiters(e: Error): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.reject(e);
  }
}

function toCrash(exit: RunnerExit, at: number): RunnerCrash {
  const crash: RunnerCrash = { at, code: exit.code, signal: exit.signal, stderrTail: exit.stderrTail };
  if (exit.reason !== undefined) crash.reason = exit.reason;
  return crash;
}
