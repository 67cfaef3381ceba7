import { spawn } from 'node:child_process';
import { silentLogger, type Logger } from '@kd-edge/core';
import { RuntimeError } from './runtime-error.js';

/** Options of {@link runTrtexec}. */
export interface RunTrtexecOptions {
  /** Kill trtexec after this long (default 30 minutes: INT8 builds on a Nano are slow). */
  timeoutMs?: number;
  /** Lines of output kept for error messages (default 40). */
  tailLines?: number;
  /** Environment of the child (default the agent's). */
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  logger?: Logger;
  /** What is being done, for error messages (default `trtexec`). */
  what?: string;
  /** Resolve with a non-zero exit code instead of throwing `RUNTIME_TRTEXEC_FAILED` (timeouts still throw). */
  allowFailure?: boolean;
}

/** What a finished trtexec run printed. */
export interface TrtexecRun {
  /** stdout and stderr interleaved as received (the middle is dropped past 2 MiB). */
  output: string;
  /** The last lines of {@link output}. */
  tail: string;
  exitCode: number;
  durationMs: number;
}

const HEAD_BYTES = 64 * 1024;
const TAIL_BYTES = 2 * 1024 * 1024;
const KILL_GRACE_MS = 5000;

/** The last `n` non-empty lines of `text`. */
export function outputTail(text: string, n = 40): string {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  return lines.slice(-n).join('\n');
}

/**
 * Runs trtexec with an argument array (no shell is involved, so nothing in a path or name is interpreted) and
 * resolves with its output when it exits 0 (or at all, with `allowFailure`). Throws `RUNTIME_TRTEXEC_NOT_FOUND` when it cannot start,
 * `RUNTIME_TRTEXEC_TIMEOUT` after `timeoutMs`, `RUNTIME_TRTEXEC_FAILED` on another exit, each with the output's tail.
 */
export function runTrtexec(executable: string, args: readonly string[], options: RunTrtexecOptions = {}): Promise<TrtexecRun> {
  if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) throw new TypeError('args must be an array of strings');
  const timeoutMs = options.timeoutMs ?? 30 * 60_000;
  if (!(timeoutMs > 0)) throw new RangeError(`timeoutMs must be > 0, got ${timeoutMs}`);
  const log = options.logger ?? silentLogger;
  const what = options.what ?? 'trtexec';
  const tailLines = options.tailLines ?? 40;
  const started = performance.now();
  log.debug(`${what}: ${executable} ${args.join(' ')}`);

  return new Promise<TrtexecRun>((resolve, reject) => {
    let head = '';
    let tail = '';
    let dropped = false;
    const collect = (chunk: Buffer): void => {
      const s = chunk.toString('utf8');
      if (head.length < HEAD_BYTES) {
        const take = s.slice(0, HEAD_BYTES - head.length);
        head += take;
        if (take.length === s.length) return;
        tail += s.slice(take.length);
      } else {
        tail += s;
      }
      if (tail.length > TAIL_BYTES * 2) {
        tail = tail.slice(-TAIL_BYTES);
        dropped = true;
      }
    };
    const text = (): string => head + (dropped ? '\n[... output dropped ...]\n' + tail.slice(-TAIL_BYTES) : tail);

    const child = spawn(executable, [...args], {
      shell: false,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: options.env ?? process.env,
    });
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);

    let timedOut = false;
    let aborted = false;
    let killTimer: NodeJS.Timeout | undefined;
    const stop = (): void => {
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
      killTimer.unref();
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, timeoutMs);
    const onAbort = (): void => {
      aborted = true;
      stop();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.signal?.aborted) onAbort();

    const cleanup = (): void => {
      clearTimeout(timer);
      if (killTimer !== undefined) clearTimeout(killTimer);
      options.signal?.removeEventListener('abort', onAbort);
    };
    child.once('error', (err: NodeJS.ErrnoException) => {
      cleanup();
      const code = err.code === 'ENOENT' || err.code === 'EACCES' ? 'RUNTIME_TRTEXEC_NOT_FOUND' : 'RUNTIME_TRTEXEC_FAILED';
      reject(new RuntimeError(code, `${what}: cannot start ${executable}: ${err.message}`, { cause: err }));
    });
    child.once('close', (code, signal) => {
      cleanup();
      const output = text();
      const durationMs = performance.now() - started;
      const last = outputTail(output, tailLines);
      if (timedOut) {
        reject(new RuntimeError('RUNTIME_TRTEXEC_TIMEOUT', `${what}: trtexec ran past ${timeoutMs} ms and was stopped`, { outputTail: last }));
      } else if (aborted) {
        reject(new RuntimeError('RUNTIME_TRTEXEC_FAILED', `${what}: trtexec was aborted`, { outputTail: last }));
      } else if (code !== 0 && !(options.allowFailure === true && code !== null)) {
        const how = code === null ? `was killed by ${signal}` : `exited with code ${code}`;
        reject(new RuntimeError('RUNTIME_TRTEXEC_FAILED', `${what}: trtexec ${how}`, { outputTail: last }));
      } else {
        resolve({ output, tail: last, exitCode: code ?? 0, durationMs });
      }
    });
  });
}
