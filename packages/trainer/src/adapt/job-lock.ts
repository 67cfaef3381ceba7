import { readFileSync } from 'node:fs';
import { link, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { AdaptError } from './adapt-error.js';

/** The lock file of a job folder: `<JOBDIR>/lock`. */
export const JOB_LOCK_FILE = 'lock';

/**
 * What the lock file holds (JSON): the owner's pid and its start time, field 22 of `/proc/<pid>/stat` (clock ticks
 * since boot), so that a pid the kernel gave to another process since is not taken for the owner. kd-agent reads the
 * same file (its `adapt/job-lock.ts`) to stop a trainer an earlier agent process left running.
 */
export interface JobLockOwner {
  pid: number;
  /** Null where there is no /proc (the pid alone is checked then). */
  startTime: string | null;
  /** When the lock was taken (ISO 8601), for people. */
  since: string;
  /** The command that took it (`kd-trainer adapt`), for people. */
  by: string;
}

/** The fields of /proc/<pid>/stat after the command name: [0] is the state (field 3), [19] the start time (field 22). */
function statFields(pid: number, readProc: (path: string) => string): string[] | undefined {
  let stat: string;
  try {
    stat = readProc(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
  // The command name (field 2) is parenthesised and may hold spaces and parentheses: count from the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

const readProcFile = (p: string): string => readFileSync(p, 'utf8');

/** The start time of process `pid` (field 22 of /proc/<pid>/stat), or undefined when it is gone or there is no /proc. */
export function processStartTime(pid: number, readProc: (path: string) => string = readProcFile): string | undefined {
  return statFields(pid, readProc)?.[19];
}

/** Whether a process with this pid exists (signal 0 checks without sending anything; EPERM: it exists, not ours). */
export function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether the owner a lock names still runs: its pid exists, is not a zombie (an exited process nobody has reaped
 * yet still answers signal 0), and, where /proc tells, was started when the lock says (a reused pid is another
 * process, and its lock is stale).
 */
export function lockOwnerAlive(owner: Pick<JobLockOwner, 'pid' | 'startTime'>, readProc: (path: string) => string = readProcFile): boolean {
  if (!Number.isSafeInteger(owner.pid) || owner.pid <= 0 || !pidExists(owner.pid)) return false;
  const fields = statFields(owner.pid, readProc);
  if (fields === undefined) return true;
  if (fields[0] === 'Z' || fields[0] === 'X') return false;
  return owner.startTime === null || fields[19] === owner.startTime;
}

/** The lock file's owner, or undefined when there is none or it does not parse (a torn write: stale). */
export async function readJobLock(dir: string): Promise<JobLockOwner | undefined> {
  try {
    const o = JSON.parse(await readFile(join(dir, JOB_LOCK_FILE), 'utf8')) as Partial<JobLockOwner>;
    if (!Number.isSafeInteger(o.pid) || (o.startTime !== null && typeof o.startTime !== 'string')) return undefined;
    return { pid: o.pid!, startTime: o.startTime ?? null, since: String(o.since ?? ''), by: String(o.by ?? '') };
  } catch {
    return undefined;
  }
}

/** A held job lock; {@link release} removes the file when it is still this process's. */
export interface JobLock {
  readonly file: string;
  readonly owner: JobLockOwner;
  release(): Promise<void>;
}

/** Options of {@link acquireJobLock}. */
export interface AcquireJobLockOptions {
  /** How long to wait for a live owner to exit before refusing (default 0: refuse at once). */
  waitMs?: number;
  /** Milliseconds between looks while waiting (default 200). */
  pollMs?: number;
  /** Named in the lock file. */
  by?: string;
  /** Called once when a live owner is found and waited for. */
  onWait?: (owner: JobLockOwner) => void;
}

/**
 * Takes the job folder's lock (`<dir>/lock`) for this process, so that two trainers never work on one job: the file
 * is written whole under a temporary name and linked into place (link(2) fails when the name exists, so two starts
 * cannot both create it). A lock whose owner is gone, or whose pid now belongs to a process started later, is stale
 * and replaced; a live owner is waited for up to `waitMs`, then the start is refused with AdaptError
 * 'ADAPT_JOB_LOCKED' naming it. Two processes replacing one stale lock at once both read the file back, and only
 * the one that finds itself there goes on.
 * @example
 * const lock = await acquireJobLock(paths.dir);
 * try { … } finally { await lock.release(); }
 */
export async function acquireJobLock(dir: string, options: AcquireJobLockOptions = {}): Promise<JobLock> {
  const file = join(dir, JOB_LOCK_FILE);
  const owner: JobLockOwner = {
    pid: process.pid, startTime: processStartTime(process.pid) ?? null, since: new Date().toISOString(), by: options.by ?? 'kd-trainer adapt',
  };
  const tmp = join(dir, `.${JOB_LOCK_FILE}.${process.pid}.tmp`);
  const deadline = Date.now() + (options.waitMs ?? 0);
  let waited = false;
  try {
    for (;;) {
      await writeFile(tmp, `${JSON.stringify(owner)}\n`);
      try {
        await link(tmp, file);
        return held(file, owner);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const other = await readJobLock(dir);
      const mine = other !== undefined && other.pid === owner.pid && other.startTime === owner.startTime;
      if (other !== undefined && !mine && lockOwnerAlive(other)) {
        if (Date.now() >= deadline) {
          throw new AdaptError('ADAPT_JOB_LOCKED', `${dir} is being worked on by process ${other.pid} (${other.by || 'kd-trainer adapt'}, since ${other.since || 'unknown'}); one process per job folder: wait for it, or stop it`);
        }
        if (!waited) options.onWait?.(other);
        waited = true;
        await delay(options.pollMs ?? 200);
        continue;
      }
      if (mine) {
        // This very process holds it: a second run of the library on the folder at once.
        throw new AdaptError('ADAPT_JOB_LOCKED', `${dir} is being worked on by this process (${owner.pid}) already`);
      }
      // Stale (its owner is gone, or the pid was reused, or a torn write): replace it, then make sure it is ours.
      await rename(tmp, file);
      const now = await readJobLock(dir);
      if (now?.pid === owner.pid && now.startTime === owner.startTime) return held(file, owner);
    }
  } finally {
    await rm(tmp, { force: true });
  }
}

function held(file: string, owner: JobLockOwner): JobLock {
  return {
    file, owner,
    release: async () => {
      // Only our own lock: a process that took a stale one over (after this one was stopped) keeps its own.
      const dir = file.slice(0, -JOB_LOCK_FILE.length - 1);
      const now = await readJobLock(dir);
      if (now?.pid === owner.pid && now.startTime === owner.startTime) await rm(file, { force: true });
    },
  };
}
