import { procStatSync, processAliveSync, type ReadProcSync } from '@kd-edge/core';

/**
 * The environment variable a parent process (kd-agent) sets to the pid that `kd-trainer adapt` must not outlive: when
 * that process is gone, the job stops as on SIGINT (checkpoint saved, exit 130) instead of training on as an orphan
 * beside the job a restarted agent starts.
 */
export const PARENT_PID_ENV = 'KD_PARENT_PID';

/** The pid in `KD_PARENT_PID`, or undefined when it is unset or not a positive integer. */
export function parentPidFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const v = env[PARENT_PID_ENV];
  if (v === undefined || !/^\d+$/.test(v.trim())) return undefined;
  const pid = Number(v);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

/** Options of {@link watchParent}. */
export interface ParentWatchOptions {
  /** The process this one must not outlive. */
  pid: number;
  /** Called once, with why, when it is gone. */
  onGone: (why: string) => void;
  /** Milliseconds between looks (default 1000). */
  intervalMs?: number;
  /** This process's parent pid now (default `process.ppid`, which changes when the parent dies and this one is re-parented). */
  ppid?: () => number;
  /** Reads /proc files (default fs.readFileSync); tests point it elsewhere. */
  readProc?: ReadProcSync;
}

/** A running {@link watchParent}. */
export interface ParentWatch {
  /** Why the parent counts as gone now, or undefined while it runs. */
  check(): string | undefined;
  stop(): void;
}

/**
 * Watches that process `pid` still runs, about once a second: gone when this process, started as its direct child, has
 * been re-parented (`process.ppid` changed: the parent died), or when `pid` no longer exists or now belongs to a process
 * started later (its /proc start time changed: the pid was reused). A parent that is not the direct one (a wrapper
 * script between them) is watched by its pid alone. `onGone` is called once; the timer does not keep the process alive.
 * @example
 * const pid = parentPidFromEnv();
 * if (pid !== undefined) watchParent({ pid, onGone: () => controller.abort() });
 */
export function watchParent(o: ParentWatchOptions): ParentWatch {
  if (!Number.isSafeInteger(o.pid) || o.pid <= 0) throw new RangeError(`pid must be a positive integer, got ${String(o.pid)}`);
  const ppid = o.ppid ?? (() => process.ppid);
  const direct = ppid() === o.pid;
  const startTime = procStatSync(o.pid, o.readProc)?.startTime ?? null;
  const check = (): string | undefined => {
    if (direct && ppid() !== o.pid) return `its parent process ${o.pid} exited (re-parented to ${ppid()})`;
    if (!processAliveSync(o.pid, startTime, o.readProc)) return `process ${o.pid} (${PARENT_PID_ENV}) is gone`;
    return undefined;
  };
  let timer: NodeJS.Timeout | undefined;
  const stop = (): void => {
    if (timer !== undefined) clearInterval(timer);
    timer = undefined;
  };
  timer = setInterval(() => {
    const why = check();
    if (why === undefined) return;
    stop();
    o.onGone(why);
  }, o.intervalMs ?? 1000);
  timer.unref();
  return { check, stop };
}
