import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** Exit codes of `kd-trainer adapt` (docs/adaptation.md, "Exit codes and output"). */
export const ADAPT_EXIT = { accepted: 0, error: 2, rejected: 3, interrupted: 130 } as const;

/** The recipe options the agent passes through to `kd-trainer adapt` (the command's `recipe` over `adapt:`'s defaults). */
export interface AdaptChildRecipe {
  epochs?: number;
  imgsz?: number;
  lr0?: number;
  pseudoConf?: number;
  holdout?: number;
  timeBudgetSec?: number;
  minGain?: number;
  maxLoss?: number;
}

/** What {@link adaptChildArgs} needs: the job's files, its thread and batch settings, and the recipe. */
export interface AdaptChildArgsOptions {
  /** The capture folder. */
  frames: string;
  /** The teacher's ONNX file (in the teacher store). */
  teacher: string;
  /** The serving package's `.kdw`. */
  weights: string;
  /** The trainer's job folder (JOBDIR). */
  out: string;
  /** The serving package's `val/`, when it has one. */
  val?: string;
  /** The serving package's replay images (manifest `replay`), when it has them. */
  replay?: string;
  threads: number;
  batch: number;
  recipe: AdaptChildRecipe;
  /** More `kd-trainer adapt` options from the configuration (`adapt.extraArgs`), placed before the agent's own. */
  extraArgs?: readonly string[];
}

const RECIPE_FLAGS: Record<keyof AdaptChildRecipe, string> = {
  epochs: '--epochs', imgsz: '--img', lr0: '--lr0', pseudoConf: '--pseudo-conf', holdout: '--holdout',
  timeBudgetSec: '--time-budget', minGain: '--min-gain', maxLoss: '--max-loss',
};

/**
 * The arguments after the kd-trainer executable: `adapt --frames … --teacher … --weights … --out … [--val …] [--replay …] --json
 * --threads N --batch N [recipe options]`. An argument array: nothing in a path is ever read by a shell.
 */
export function adaptChildArgs(o: AdaptChildArgsOptions): string[] {
  const args = ['adapt', ...(o.extraArgs ?? []), '--frames', o.frames, '--teacher', o.teacher, '--weights', o.weights, '--out', o.out];
  if (o.val !== undefined) args.push('--val', o.val);
  if (o.replay !== undefined) args.push('--replay', o.replay);
  args.push('--json', '--threads', String(o.threads), '--batch', String(o.batch));
  for (const [key, flag] of Object.entries(RECIPE_FLAGS) as [keyof AdaptChildRecipe, string][]) {
    const v = o.recipe[key];
    if (v !== undefined) args.push(flag, String(v));
  }
  return args;
}

/** How a kd-trainer adapt child ended. */
export interface AdaptChildExit {
  /** The exit code, or null when a signal ended it. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** The `{"report": …}` line (adapt.json), when it printed one. */
  report?: Record<string, unknown>;
  /** The `{"cancelled": …}` line, when it printed one. */
  cancelled?: Record<string, unknown>;
  /** The error code of its last `kd-trainer: … [CODE]` stderr line (exit 2), when there is one. */
  code?: string;
  /** That line's message, without the prefix and the code. */
  message?: string;
  /** The last lines of its stderr. */
  stderrTail: string[];
}

/** Options of {@link startAdaptChild}. */
export interface AdaptChildOptions {
  /** kd-trainer's executable and first arguments (locateTrainer). */
  trainer: readonly string[];
  /** The arguments from {@link adaptChildArgs}. */
  args: readonly string[];
  /** `nice -n` increment (0: no nice). */
  nice: number;
  /** Caps UV_THREADPOOL_SIZE and OMP_NUM_THREADS at this. */
  threads: number;
  /** The child's working directory. */
  cwd?: string;
  /** Each `{"progress": …}` object, in order. */
  onProgress?: (progress: Record<string, unknown>) => void;
  /** Stderr lines kept for error messages (default 50). */
  tailLines?: number;
  /** Base environment (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** A running kd-trainer adapt child. */
export interface AdaptChild {
  readonly pid: number;
  readonly process: ChildProcess;
  /** Settles when the child has exited and its output has been read. */
  readonly done: Promise<AdaptChildExit>;
  /** Sends a signal (SIGINT asks kd-trainer to stop after the current step, save, and exit 130). */
  signal(sig: NodeJS.Signals): boolean;
}

/** The variable that names the process kd-trainer adapt must not outlive (its parent watch; docs/adaptation.md). */
export const PARENT_PID_ENV = 'KD_PARENT_PID';

/**
 * The environment of the child: the agent's, with the thread pools capped at `threads` and `KD_PARENT_PID` set to
 * `parentPid` (this process by default), so a child whose agent is killed stops at its next step instead of training
 * on as an orphan.
 */
export function adaptChildEnv(threads: number, base: NodeJS.ProcessEnv = process.env, parentPid: number = process.pid): NodeJS.ProcessEnv {
  const cap = String(Math.max(1, threads));
  const capped = (v: string | undefined): string => (v !== undefined && Number(v) > 0 && Number(v) < Number(cap) ? v : cap);
  return { ...base, UV_THREADPOOL_SIZE: capped(base.UV_THREADPOOL_SIZE), OMP_NUM_THREADS: capped(base.OMP_NUM_THREADS), [PARENT_PID_ENV]: String(parentPid) };
}

/** The code and message of kd-trainer's error line (`kd-trainer: message [CODE]`), searching from the end. */
export function trainerErrorLine(lines: readonly string[]): { code: string; message: string } | undefined {
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = /^kd-trainer: (.*) \[([A-Z][A-Z0-9_]{0,63})\]\s*$/.exec(lines[i]!);
    if (m !== null) return { code: m[2]!, message: m[1]! };
  }
  return undefined;
}

/**
 * Starts `kd-trainer adapt --json` as a child: `nice -n <nice>` before it (Linux priorities are per thread and the
 * child's threads inherit its start-up priority), an argument array with no shell, stdin closed. Stdout is read line
 * by line and only JSON lines are taken (`{"progress"}` to `onProgress`, then `{"report"}` or `{"cancelled"}`);
 * stderr is kept as a tail of lines. The promise `done` settles on exit, never rejects: a child that cannot start ends
 * with exitCode null and the reason in its tail.
 * @example
 * const child = startAdaptChild({ trainer: locateTrainer().argv, args: adaptChildArgs({...}), nice: 10, threads: 1 });
 * const exit = await child.done; // exitCode 0 accepted, 3 rejected, 130 interrupted, 2 error (exit.code)
 */
export function startAdaptChild(o: AdaptChildOptions): AdaptChild {
  if (!Array.isArray(o.trainer) || o.trainer.length === 0) throw new TypeError('trainer must be a non-empty argument array');
  const argv = o.nice > 0 ? ['nice', '-n', String(o.nice), ...o.trainer, ...o.args] : [...o.trainer, ...o.args];
  const child = spawn(argv[0]!, argv.slice(1), {
    shell: false, stdio: ['ignore', 'pipe', 'pipe'], env: adaptChildEnv(o.threads, o.env ?? process.env), ...(o.cwd ? { cwd: o.cwd } : {}),
  });
  const tailLines = o.tailLines ?? 50;
  const tail: string[] = [];
  let report: Record<string, unknown> | undefined;
  let cancelled: Record<string, unknown> | undefined;
  const out = createInterface({ input: child.stdout! });
  out.on('line', (line) => {
    if (!line.startsWith('{')) return;
    let obj: Record<string, unknown>;
    try {
      obj = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if (typeof obj.progress === 'object' && obj.progress !== null) o.onProgress?.(obj.progress as Record<string, unknown>);
    else if (typeof obj.report === 'object' && obj.report !== null) report = obj.report as Record<string, unknown>;
    else if (typeof obj.cancelled === 'object' && obj.cancelled !== null) cancelled = obj.cancelled as Record<string, unknown>;
  });
  const err = createInterface({ input: child.stderr! });
  err.on('line', (line) => {
    if (line.trim() === '') return;
    tail.push(line.length > 2000 ? `${line.slice(0, 2000)}…` : line);
    if (tail.length > tailLines) tail.shift();
  });
  // Created now: a reader may close before the child's 'close' event, and its output must be read to the end first.
  const closed = (rl: ReturnType<typeof createInterface>): Promise<void> => new Promise((resolve) => rl.once('close', () => resolve()));
  const streamsClosed = Promise.all([closed(out), closed(err)]);
  const done = new Promise<AdaptChildExit>((resolve) => {
    let settled = false;
    const finish = (exitCode: number | null, signal: NodeJS.Signals | null): void => {
      if (settled) return;
      settled = true;
      const line = trainerErrorLine(tail);
      resolve({
        exitCode, signal, stderrTail: [...tail],
        ...(report ? { report } : {}), ...(cancelled ? { cancelled } : {}), ...(line ? { code: line.code, message: line.message } : {}),
      });
    };
    child.once('error', (e) => {
      // Only a child that never started ends here; errors of a running one (a failed kill) end at 'close'.
      if (child.pid !== undefined) return;
      tail.push(`cannot start ${argv[0]}: ${e.message}`);
      finish(null, null);
    });
    child.once('close', (exitCode, signal) => {
      void streamsClosed.then(() => finish(exitCode, signal));
    });
  });
  return {
    pid: child.pid ?? 0,
    process: child,
    done,
    signal: (sig) => (child.exitCode === null && child.signalCode === null ? child.kill(sig) : false),
  };
}
