import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { silentLogger, type Logger } from '@kd-edge/core';
import {
  encodeFrame, FrameDecoder, MAX_FRAME_BYTES, parseReply, PROTOCOL_VERSION, type HelloReply, type InputRegion, type LoadedReply,
  type ResultReply, type RunnerErrorCode, type RunnerReply, type TensorRegion,
} from './protocol.js';
import { TrtRunnerError } from './trt-runner-error.js';

/** Options of {@link RunnerClient.start}. */
export interface RunnerClientOptions {
  /** Environment of the runner (default the agent's). */
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  /** Time for the process to start and answer `hello` (default 30 s: the stand-in loads Node and ONNX Runtime first). */
  handshakeTimeoutMs?: number;
  /** Default time for `infer` and `unload` answers (default 30 s). A request past it kills the runner. */
  requestTimeoutMs?: number;
  /** Default time for a `load` answer (default 10 min: deserializing a large engine on a Nano is slow). */
  loadTimeoutMs?: number;
  /** Lines of the runner's stderr kept for error messages (default 40). */
  stderrTailLines?: number;
}

/** How the runner process ended. */
export interface RunnerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True after {@link RunnerClient.close} (a requested exit), false for a crash, a kill or a timeout. */
  expected: boolean;
  /** Why the client thinks it ended, when it knows (timeout, protocol failure). */
  reason?: string;
  stderrTail: string;
}

/** An `infer` request without its id. */
export interface InferRequest {
  engine: string;
  /** Path of the shared-memory file. */
  shm: string;
  inputs: InputRegion[];
  outputs: TensorRegion[];
}

/** Options of one request. */
export interface RequestOptions {
  timeoutMs?: number;
}

/** Events of a {@link RunnerClient}. */
export interface RunnerClientEvents {
  /** The process ended; every waiting request has been rejected. */
  exit: [RunnerExit];
  /** The runner answered an error frame it could not attach to a request (id 0: a frame it could not read). */
  protocolError: [{ code: RunnerErrorCode; message: string }];
  /** One line the runner wrote to stderr. */
  stderr: [string];
}

interface Pending {
  resolve: (reply: RunnerReply) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
  what: string;
  /** Resolve with error frames too (requestRaw). */
  raw: boolean;
}

/**
 * One runner process (the native TensorRT runner or its stand-in) and the protocol over its stdin/stdout:
 * spawned with an argument array (no shell), `hello` checked, then `load`/`unload`/`infer` requests, each answered
 * or rejected with a {@link TrtRunnerError}. A request that times out kills the process, since a runner that stops
 * answering cannot be trusted with the next one. Restarts are the {@link RunnerSupervisor}'s job.
 * @example
 * const client = await RunnerClient.start(['/opt/kd/kd-trt-runner', '--shm-dir', '/dev/shm']);
 * const engine = await client.load('a', '/var/lib/kd-agent/engines/yolov5n.engine');
 * await client.close();
 */
export class RunnerClient extends EventEmitter<RunnerClientEvents> {
  /** What the runner said about itself in `hello`. */
  hello!: HelloReply;
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #log: Logger;
  readonly #pending = new Map<number, Pending>();
  readonly #decoder = new FrameDecoder(MAX_FRAME_BYTES);
  readonly #stderr: string[] = [];
  readonly #tailLines: number;
  readonly #requestTimeoutMs: number;
  readonly #loadTimeoutMs: number;
  readonly #exited: Promise<RunnerExit>;
  #nextId = 1;
  #exit: RunnerExit | undefined;
  #closing = false;
  #killing = false;
  #reason: string | undefined;
  #stderrPartial = '';

  private constructor(argv: readonly string[], options: RunnerClientOptions) {
    super();
    this.#log = options.logger ?? silentLogger;
    this.#tailLines = options.stderrTailLines ?? 40;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.#loadTimeoutMs = options.loadTimeoutMs ?? 600_000;
    this.#child = spawn(argv[0]!, argv.slice(1), { shell: false, stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env });
    // A write to a runner that just died fails with EPIPE; its exit is reported through 'close'.
    this.#child.stdin.on('error', (e) => this.#log.debug(`trt-runner: stdin: ${e.message}`));
    this.#child.stdout.on('data', (chunk: Buffer) => this.#onStdout(chunk));
    this.#child.stderr.on('data', (chunk: Buffer) => this.#onStderr(chunk));
    this.#exited = new Promise((resolve) => {
      let spawnError: Error | undefined;
      this.#child.once('error', (e) => {
        spawnError = e;
        // No 'close' follows a failed spawn of a missing file on every Node version; settle here too.
        if (this.#child.pid === undefined) this.#finish(null, null, `cannot start ${argv[0]}: ${e.message}`, resolve);
      });
      this.#child.once('close', (code, signal) => this.#finish(code, signal, spawnError ? `cannot start ${argv[0]}: ${spawnError.message}` : undefined, resolve));
    });
  }

  /**
   * Spawns `argv[0]` with the rest as its arguments and checks its `hello`. Throws TRT_RUNNER_SPAWN_FAILED when it
   * cannot start, TRT_RUNNER_HANDSHAKE when it answers but not with protocol 1, TRT_RUNNER_EXITED when it dies first.
   */
  static async start(argv: readonly string[], options: RunnerClientOptions = {}): Promise<RunnerClient> {
    if (!Array.isArray(argv) || argv.length === 0 || argv.some((a) => typeof a !== 'string' || a === '')) {
      throw new TypeError('argv must be a non-empty array of non-empty strings');
    }
    const client = new RunnerClient(argv, options);
    let reply: RunnerReply;
    try {
      reply = await client.#request({ type: 'hello', versions: [PROTOCOL_VERSION] }, options.handshakeTimeoutMs ?? 30_000, 'hello');
    } catch (e) {
      client.kill();
      await client.exited;
      const err = e as TrtRunnerError;
      if (err.code === 'TRT_RUNNER_EXITED' && client.#reason?.startsWith('cannot start')) {
        throw new TrtRunnerError('TRT_RUNNER_SPAWN_FAILED', client.#reason, { cause: e });
      }
      if (err.code === 'TRT_RUNNER_UNSUPPORTED_VERSION') throw new TrtRunnerError('TRT_RUNNER_HANDSHAKE', err.message, { cause: e });
      throw e;
    }
    if (reply.type !== 'hello' || reply.v !== PROTOCOL_VERSION) {
      client.kill();
      await client.exited;
      throw new TrtRunnerError('TRT_RUNNER_HANDSHAKE', `the runner answered hello with ${JSON.stringify(reply)}`);
    }
    client.hello = reply;
    client.#log.info(`trt-runner: ${reply.runner} (${reply.impl} ${reply.version}, api ${reply.api}) started, pid ${client.pid}`);
    return client;
  }

  /** The runner's process id. */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Whether the process has ended. */
  get exitedAlready(): boolean {
    return this.#exit !== undefined;
  }

  /** Whether requests can still be sent: not exited, not closing, not being killed (after a timeout or protocol failure). */
  get usable(): boolean {
    return this.#exit === undefined && !this.#closing && !this.#killing;
  }

  /** Resolves when the process has ended (never rejects). */
  get exited(): Promise<RunnerExit> {
    return this.#exited;
  }

  /** The last lines of the runner's stderr. */
  get stderrTail(): string {
    return this.#stderr.slice(-this.#tailLines).join('\n');
  }

  /** Loads (or, under an engine key already in use, replaces) an engine; the runner keeps the old one if this fails. */
  async load(engine: string, path: string, options: RequestOptions = {}): Promise<LoadedReply> {
    const reply = await this.#request({ type: 'load', engine, path }, options.timeoutMs ?? this.#loadTimeoutMs, `load ${engine}`);
    return this.#expect(reply, 'loaded');
  }

  /** Frees an engine. */
  async unload(engine: string, options: RequestOptions = {}): Promise<void> {
    this.#expect(await this.#request({ type: 'unload', engine }, options.timeoutMs ?? this.#requestTimeoutMs, `unload ${engine}`), 'unloaded');
  }

  /** Runs one inference; the inputs must already be in the shared-memory file, the outputs are there when this resolves. */
  async infer(request: InferRequest, options: RequestOptions = {}): Promise<ResultReply> {
    const reply = await this.#request({ type: 'infer', ...request }, options.timeoutMs ?? this.#requestTimeoutMs, `infer ${request.engine}`);
    return this.#expect(reply, 'result');
  }

  /**
   * Sends any message as a frame and resolves with the answer to its id as it is, error frames included (tests use
   * it to send malformed requests).
   */
  async requestRaw(message: Record<string, unknown>, options: RequestOptions = {}): Promise<RunnerReply> {
    return this.#request(message, options.timeoutMs ?? this.#requestTimeoutMs, `raw ${String(message.type)}`, false, true);
  }

  /** Writes bytes to the runner's stdin as they are (tests use it for broken frames). */
  writeRaw(bytes: Uint8Array): void {
    this.#child.stdin.write(bytes);
  }

  /** Kills the process (SIGKILL by default); waiting requests are rejected with TRT_RUNNER_EXITED. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.#exit !== undefined) return;
    if (signal === 'SIGKILL') this.#killing = true;
    this.#child.kill(signal);
  }

  /**
   * Asks the runner to shut down and waits for it to exit; kills it after `graceMs` (default 5 s). Later requests
   * throw TRT_RUNNER_CLOSED. Safe to call twice.
   */
  async close(graceMs = 5000): Promise<RunnerExit> {
    if (this.#exit !== undefined) return this.#exit;
    if (!this.#closing) {
      this.#closing = true;
      this.#request({ type: 'shutdown' }, graceMs, 'shutdown', true).catch(() => undefined);
      this.#child.stdin.end();
      const timer = setTimeout(() => this.kill(), graceMs);
      void this.#exited.finally(() => clearTimeout(timer));
    }
    return this.#exited;
  }

  #expect<T extends RunnerReply['type']>(reply: RunnerReply, type: T): Extract<RunnerReply, { type: T }> {
    if (reply.type !== type) this.#protocolFailure(`expected a '${type}' reply, got '${reply.type}'`);
    return reply as Extract<RunnerReply, { type: T }>;
  }

  #request(message: Record<string, unknown>, timeoutMs: number, what: string, internal = false, raw = false): Promise<RunnerReply> {
    if (this.#exit !== undefined) {
      return Promise.reject(new TrtRunnerError('TRT_RUNNER_EXITED', `${what}: the runner has exited (${describeExit(this.#exit)})`, { stderrTail: this.#exit.stderrTail }));
    }
    if (this.#closing && !internal) return Promise.reject(new TrtRunnerError('TRT_RUNNER_CLOSED', `${what}: the runner client is closed`));
    const id = this.#nextId++;
    const frame = encodeFrame({ ...message, id });
    return new Promise<RunnerReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new TrtRunnerError('TRT_RUNNER_TIMEOUT', `${what}: no answer from the runner within ${timeoutMs} ms; killing it`, { stderrTail: this.stderrTail }));
        this.#reason ??= `${what} timed out after ${timeoutMs} ms`;
        this.kill();
      }, timeoutMs);
      this.#pending.set(id, { resolve, reject, timer, what, raw });
      this.#child.stdin.write(frame);
    });
  }

  #onStdout(chunk: Buffer): void {
    for (const f of this.#decoder.push(chunk)) {
      if (f.kind === 'oversize') {
        this.#protocolFailure(`the runner sent a frame of ${f.length} bytes (limit ${MAX_FRAME_BYTES})`);
        return;
      }
      const reply = parseReply(f.body);
      if (reply === undefined) {
        this.#protocolFailure(`the runner sent an invalid reply: ${f.body.toString('utf8').slice(0, 200)}`);
        return;
      }
      if (reply.id === 0) {
        if (reply.type === 'error') {
          this.#log.warn(`trt-runner: error frame without a request: ${reply.code}: ${reply.message}`);
          this.emit('protocolError', { code: reply.code, message: reply.message });
        }
        continue;
      }
      const pending = this.#pending.get(reply.id);
      if (pending === undefined) {
        this.#log.debug(`trt-runner: reply to unknown request ${reply.id} ignored`);
        continue;
      }
      this.#pending.delete(reply.id);
      clearTimeout(pending.timer);
      if (reply.type === 'error' && !pending.raw) pending.reject(new TrtRunnerError(`TRT_RUNNER_${reply.code}`, `${pending.what}: ${reply.message}`));
      else pending.resolve(reply);
    }
  }

  /** The runner broke the protocol: nothing more it says can be trusted, so it is killed. */
  #protocolFailure(message: string): void {
    this.#reason ??= `protocol failure: ${message}`;
    this.#log.error(`trt-runner: ${message}`);
    const err = new TrtRunnerError('TRT_RUNNER_PROTOCOL', message, { stderrTail: this.stderrTail });
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#pending.delete(id);
      p.reject(err);
    }
    this.kill();
  }

  #onStderr(chunk: Buffer): void {
    const lines = (this.#stderrPartial + chunk.toString('utf8')).split('\n');
    this.#stderrPartial = lines.pop() ?? '';
    if (this.#stderrPartial.length > 4096) {
      lines.push(this.#stderrPartial);
      this.#stderrPartial = '';
    }
    for (const line of lines) {
      if (line === '') continue;
      this.#stderr.push(line);
      if (this.#stderr.length > this.#tailLines * 2) this.#stderr.splice(0, this.#stderr.length - this.#tailLines);
      this.#log.debug(`trt-runner[${this.pid}]: ${line}`);
      this.emit('stderr', line);
    }
  }

  #finish(code: number | null, signal: NodeJS.Signals | null, reason: string | undefined, resolve: (exit: RunnerExit) => void): void {
    if (this.#exit !== undefined) return;
    if (this.#stderrPartial !== '') this.#stderr.push(this.#stderrPartial);
    this.#reason ??= reason;
    const exit: RunnerExit = { code, signal, expected: this.#closing && this.#reason === undefined, stderrTail: this.stderrTail };
    if (this.#reason !== undefined) exit.reason = this.#reason;
    this.#exit = exit;
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#pending.delete(id);
      p.reject(new TrtRunnerError('TRT_RUNNER_EXITED', `${p.what}: the runner exited (${describeExit(exit)})`, { stderrTail: exit.stderrTail }));
    }
    if (!exit.expected) this.#log.warn(`trt-runner: pid ${this.pid} ${describeExit(exit)}`);
    resolve(exit);
    this.emit('exit', exit);
  }
}

/** `exited with code 1`, `was killed by SIGKILL`, plus the reason when known. */
export function describeExit(exit: Pick<RunnerExit, 'code' | 'signal' | 'reason'>): string {
  const how = exit.signal !== null ? `was killed by ${exit.signal}` : exit.code !== null ? `exited with code ${exit.code}` : 'did not start';
  return exit.reason !== undefined ? `${how}: ${exit.reason}` : how;
}
