import { link, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { JOB_LOCK_FILE, procStatSync, processAliveSync, readJobLock, type JobLockOwner, type ReadProcSync } from '@kd-edge/core';
import { AdaptError } from './adapt-error.js';

// The lock's contract (file name, owner JSON, /proc reads) is @kd-edge/core's, shared with kd-agent, which reads the
// lock to stop a trainer an earlier agent process left running; kd-trainer is the one that takes it.
export { JOB_LOCK_FILE, readJobLock } from '@kd-edge/core';
export type { JobLockOwner } from '@kd-edge/core';

/** The start time of process `pid` (field 22 of /proc/<pid>/stat), or undefined when it is gone or there is no /proc. */
export function processStartTime(pid: number, readProc?: ReadProcSync): string | undefined {
  return procStatSync(pid, readProc)?.startTime;
}

/**
 * Whether the owner a lock names still runs: its pid exists, is not a zombie (an exited process nobody has reaped
 * yet still answers signal 0), and, where /proc tells, was started when the lock says (a reused pid is another
 * process, and its lock is stale).
 */
export function lockOwnerAlive(owner: Pick<JobLockOwner, 'pid' | 'startTime'>, readProc?: ReadProcSync): boolean {
  return processAliveSync(owner.pid, owner.startTime, readProc);
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
