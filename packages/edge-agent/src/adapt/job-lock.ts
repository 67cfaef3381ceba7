import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

/**
 * The lock file kd-trainer adapt keeps in its job folder (`<JOBDIR>/lock`) while it works on it: JSON with the owner's
 * pid and its start time (field 22 of /proc/<pid>/stat, so a pid the kernel gave to another process since is not taken
 * for the owner). kd-trainer writes and removes it (its `adapt/job-lock.ts`); the agent only reads it, to stop a trainer
 * an earlier agent process left running before it starts its own.
 */
export const JOB_LOCK_FILE = 'lock';

/** The owner a job folder's lock names. */
export interface JobLockOwner {
  pid: number;
  /** Null where the trainer found no /proc (its pid alone is checked then). */
  startTime: string | null;
  since?: string;
  by?: string;
}

/** Reads a /proc file (tests point it elsewhere). */
export type ReadProc = (path: string) => Promise<string>;
const readProcFile: ReadProc = (path) => readFile(path, 'utf8');

/** State (field 3) and start time (field 22) of /proc/<pid>/stat, or undefined when the process is gone or there is no /proc. */
export async function procStat(pid: number, readProc: ReadProc = readProcFile): Promise<{ state: string; startTime: string } | undefined> {
  let stat: string;
  try {
    stat = await readProc(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
  // The command name (field 2) is parenthesised and may hold spaces and parentheses: count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19] === undefined ? undefined : { state: fields[0]!, startTime: fields[19] };
}

/** The job folder's lock owner, or undefined when there is no lock or it does not parse (a torn write: stale). */
export async function readJobLock(jobDir: string): Promise<JobLockOwner | undefined> {
  try {
    const o = JSON.parse(await readFile(join(jobDir, JOB_LOCK_FILE), 'utf8')) as Partial<JobLockOwner>;
    if (!Number.isSafeInteger(o.pid) || (o.pid as number) <= 0 || (o.startTime !== null && typeof o.startTime !== 'string')) return undefined;
    return { pid: o.pid!, startTime: o.startTime ?? null, ...(typeof o.since === 'string' ? { since: o.since } : {}), ...(typeof o.by === 'string' ? { by: o.by } : {}) };
  } catch {
    return undefined;
  }
}

/**
 * Whether process `pid` is alive and, when `startTime` is given, the one started then: signal 0 finds it, it is not a
 * zombie (exited, not reaped yet), and its /proc start time is `startTime` (else the pid was reused by a later process).
 */
export async function processAlive(pid: number, startTime: string | null, readProc: ReadProc = readProcFile): Promise<boolean> {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = await procStat(pid, readProc);
  if (stat === undefined) return true;
  if (stat.state === 'Z' || stat.state === 'X') return false;
  return startTime === null || stat.startTime === startTime;
}

/** Options of {@link stopProcess}. */
export interface StopProcessOptions {
  /** The process's start time: a pid now held by another process is left alone. */
  startTime: string | null;
  /** After SIGTERM, how long it may take to stop (a trainer saves its checkpoint) before SIGKILL. */
  graceMs: number;
  /** Milliseconds between looks (default 100). */
  pollMs?: number;
  readProc?: ReadProc;
}

/**
 * Stops a process and waits until it is gone: SIGTERM (kd-trainer adapt stops after its current step, checkpoint saved),
 * SIGKILL when it still runs after `graceMs`, then up to 10 s more for the kernel. Returns how it ended: `gone`
 * (it was not running, or was another process), `terminated`, `killed`, or `stuck` (still there after SIGKILL: a
 * process in uninterruptible sleep).
 */
export async function stopProcess(pid: number, o: StopProcessOptions): Promise<'gone' | 'terminated' | 'killed' | 'stuck'> {
  const alive = (): Promise<boolean> => processAlive(pid, o.startTime, o.readProc);
  const poll = o.pollMs ?? 100;
  const waitGone = async (ms: number): Promise<boolean> => {
    for (const end = Date.now() + ms; Date.now() < end;) {
      if (!(await alive())) return true;
      await delay(poll);
    }
    return !(await alive());
  };
  if (!(await alive())) return 'gone';
  const signal = (sig: NodeJS.Signals): boolean => {
    try {
      process.kill(pid, sig);
      return true;
    } catch {
      return false;
    }
  };
  if (!signal('SIGTERM')) return 'gone';
  if (await waitGone(o.graceMs)) return 'terminated';
  signal('SIGKILL');
  return (await waitGone(10_000)) ? 'killed' : 'stuck';
}
